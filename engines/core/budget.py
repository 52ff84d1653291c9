"""A memory budget for what a file claims: readers check a declared size before they allocate it.

A header can claim any size (65535 x 65535 pixels, 2^31 frames); numpy would then fail with
``MemoryError: Unable to allocate 8.00 GiB`` or, worse, the kernel would kill the process while the
pages are touched. ``check_allocation`` turns such a claim into one plain sentence before any allocation.
The budget is a quarter of the machine's memory unless ``CSI_MEMORY_BUDGET_BYTES`` says otherwise.
"""
from __future__ import annotations

import os

from engines.core.engine import EngineError
from engines.core.filetypes import display_name

BUDGET_ENV = "CSI_MEMORY_BUDGET_BYTES"


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def memory_budget() -> int:
    """The most bytes one reader may allocate for one object: a quarter of RAM (at least 256 MiB)."""
    override = os.environ.get(BUDGET_ENV, "").strip()
    if override:
        try:
            return max(0, int(float(override)))
        except ValueError:
            pass
    ram = physical_memory()
    return max(256 << 20, ram // 4) if ram else 4 << 30


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_allocation(nbytes: int, what: str, path: str | os.PathLike | None = None) -> None:
    """Raise :class:`EngineError` with a plain sentence when ``nbytes`` for ``what`` exceeds the budget."""
    budget = memory_budget()
    if nbytes <= budget:
        return
    where = f"{display_name(path)}: " if path is not None else ""
    raise EngineError(f"{where}{what} would need {human_bytes(nbytes)} of memory, more than the "
                      f"{human_bytes(budget)} the workstation allows for one file (a quarter of this machine's "
                      f"memory); the file is refused")
