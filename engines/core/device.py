"""One device resolver for every engine: explicit choice, else CUDA, else MPS, else CPU.

torch is imported only when a device is actually resolved, never at module import.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from engines.core.engine import EngineError

log = logging.getLogger(__name__)

VALID_PREFIXES = ("auto", "cpu", "cuda", "mps")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")  # what a user may write


@dataclass(frozen=True)
class DeviceInfo:
    device: str  # the torch device string: "cpu", "cuda", "cuda:1", "mps"
    label: str  # what the status bar shows: "CUDA: NVIDIA H100" / "CPU, 2 threads"
    note: str = ""  # why an explicit request was not honoured, if it was not


def _cpu_label() -> str:
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:
        threads = os.cpu_count() or 1
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"


def resolve_device(preferred: str | None = None) -> DeviceInfo:
    """Resolve ``preferred`` ("auto", "cpu", "cuda", "cuda:N", "mps"; None reads CSI_DEVICE, else auto).

    An explicit device that is not available falls back to the automatic choice and says why in ``note``.
    """
    chosen = preferred or os.environ.get("CSI_DEVICE") or "auto"
    if not isinstance(chosen, str) or not DEVICE_PATTERN.match(chosen.strip().lower()):
        raise EngineError(f"unknown device {str(chosen)!r}: use auto, cpu, cuda, cuda:N or mps")
    preferred = chosen.strip().lower()
    try:
        import torch
    except ImportError:
        return DeviceInfo("cpu", _cpu_label(), "torch is not installed")

    note = ""
    if preferred == "cpu":
        return DeviceInfo("cpu", _cpu_label())
    if preferred.startswith("cuda"):
        if torch.cuda.is_available():
            index = int(preferred.split(":", 1)[1]) if ":" in preferred else 0
            if index < torch.cuda.device_count():
                return DeviceInfo(f"cuda:{index}" if ":" in preferred else "cuda",
                                  f"CUDA: {torch.cuda.get_device_name(index)}")
            note = f"{preferred} does not exist ({torch.cuda.device_count()} CUDA device(s))"
        else:
            note = "CUDA was requested but no CUDA device is available"
    elif preferred == "mps":
        if _mps_available(torch):
            return DeviceInfo("mps", "Apple MPS")
        note = "MPS was requested but is not available"

    if torch.cuda.is_available():
        return DeviceInfo("cuda", f"CUDA: {torch.cuda.get_device_name(0)}", note)
    if _mps_available(torch):
        return DeviceInfo("mps", "Apple MPS", note)
    return DeviceInfo("cpu", _cpu_label(), note)


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA (or MPS) out-of-memory error, whatever torch version raised it."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in text


def free_accelerator_memory() -> None:
    """Release cached GPU memory after an out-of-memory error, so the next attempt starts clean."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        mps = getattr(torch, "mps", None)
        if mps is not None and _mps_available(torch):
            mps.empty_cache()
    except ImportError:
        pass
