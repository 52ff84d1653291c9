"""CT kernel conversion engine (seed 5.9): a CT series reconstructed with one kernel -> as if with another.

Two trained networks, one per direction, each with one output head per step of the kernel ladder
(``engines.radiology_ai.kernels.KERNELS``, smooth to sharp: hann, hamming, cosine, shepp-logan, ramp, edge):

* ``sharpen`` (smooth -> sharp): input like the 'hann' kernel, targets hamming ... edge (default edge = SHARP);
* ``smooth`` (sharp -> smooth): input like the 'edge' kernel, targets ramp ... hann (default hann = SMOOTH).

``prepare`` reads the CT, checks the contract (modality, HU range, the recorded kernel against the direction)
and cuts the volume into acquisition-plane slices; ``infer`` converts them with the direction's network (a
``KernelNetwork``: the engine template owns its weights, device cache, threads, batching and out-of-memory
fallback; only the target head is computed); ``finish`` builds an ``ImageResult``: a new Volume on the same grid
with a derived SeriesDescription, the input as ``source``, the checks, and an out-of-distribution check from the
size of the network's correction against its validation scans. The linear baseline is the same engine with
``convert`` replaced by the fitted filters.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.model_engine import ModelEngine, PipelineEngine
from engines.core.results import ImageResult
from engines.radiology_ai.common import VOLUME_SUFFIXES

KERNELS = ("hann", "hamming", "cosine", "shepp-logan", "ramp", "edge")  # == kernels.KERNELS (light import)
DIRECTIONS = {"sharpen": ("ct-kernel-sharpen", "hann", KERNELS[1:]),
              "smooth": ("ct-kernel-smooth", "edge", tuple(reversed(KERNELS[:-1])))}
ARCH = "kernel-conversion-se-resnet@1"  # == nets.KERNEL_ARCH (nets imports torch)
MIN_SIZE = 32
HU_SCALE = 1000.0  # == kernel_eval.HU_SCALE: the networks see HU / 1000


def target_label(kernel: str) -> str:
    return {"edge": "SHARP", "hann": "SMOOTH"}.get(kernel, kernel.upper())


@dataclass
class KernelInputs:
    """What ``prepare`` hands to ``infer`` and ``finish``."""

    source: Any
    checks: Any
    direction: str
    target: str
    head: int
    axis: int
    slices: np.ndarray  # HU [n, rows, cols] in the acquisition plane, clipped to -1024..3071
    request: Mapping[str, Any]


class KernelNetwork(ModelEngine):
    """One direction's network on the engine template. ``predict({"slices": HU [n, h, w], "head": k})`` gives
    the HU slices of head ``k`` (the template applies the thread policy and inference mode)."""

    architecture = ARCH
    cpu_batch = 1  # one 512² slice per pass: batches of 4 ran ~1.6x slower per slice (cache; benchmarks/engines)
    gpu_batch = 16

    def __init__(self, direction: str) -> None:
        super().__init__()
        self.direction = direction
        self.weights_name = DIRECTIONS[direction][0]
        self.id = f"ct-kernel-conversion/{direction}"
        self.model_noun = f"the {direction} kernel network"
        self._head = -1
        self._precision = "float32"

    def info(self) -> EngineInfo:
        return EngineInfo(self.id, f"CT kernel network ({self.direction})", "image-to-image", "radiology",
                          "HU slices", "HU slices", weights=self.weights_name)

    def build_network(self, card):
        from engines.radiology_ai.common import network_from_card

        return network_from_card(card)

    def load(self, device: str) -> None:
        from engines.radiology_ai.common import load_channels_last

        load_channels_last(self, device)

    def prepare(self, request: Mapping[str, Any], *, progress, cancel) -> Mapping[str, Any]:
        return request

    def forward(self, x):
        import torch

        from engines.radiology_ai.common import channels_last

        x = channels_last(x)
        if self._precision == "bfloat16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self.network.convert(x, self._head).float()
        return self.network.convert(x, self._head)

    def infer(self, inputs: Mapping[str, Any], *, progress, cancel) -> np.ndarray:
        self._head = int(inputs["head"])
        self._precision = resolve_precision(inputs.get("precision"), self.device or "cpu")
        items = np.asarray(inputs["slices"], dtype=np.float32)[:, None] / np.float32(HU_SCALE)
        out = self.forward_batches(items, progress=progress, cancel=cancel, span=(0.0, 1.0),
                                   batch=inputs.get("batch"), message="converting slices",
                                   post=lambda t: t[:, 0].float().cpu().numpy() * np.float32(HU_SCALE))
        return np.stack(out)


class KernelConversionEngine(PipelineEngine):
    """Convert a CT series between reconstruction kernels with the SE residual network (both directions)."""

    id = "ct-kernel-conversion"

    def __init__(self) -> None:
        super().__init__()
        self._nets: dict[str, KernelNetwork] = {}

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="CT kernel conversion (SE residual CNN)", task="image-to-image", workspace="radiology",
            inputs="a CT in HU (DICOM series/file or NIfTI/MHA/NRRD); options: direction=sharpen|smooth, "
                   "target=<kernel> (sharpen: hamming, cosine, shepp-logan, ramp, edge; smooth: ramp, "
                   "shepp-logan, cosine, hamming, hann), batch=<slices per step>, precision=auto|float32|bfloat16 "
                   "(auto: bfloat16 on CPUs with native bfloat16, within 2 HU RMS of float32)",
            outputs="the converted series on the same grid ('converted to SHARP'): a DICOM series folder "
                    "(new UIDs, same positions) or .nii.gz/.mha/.nrrd",
            labels=KERNELS, weights="ct-kernel-sharpen",
            description="CT kernel conversion: residual CNN with simplified squeeze-and-excitation blocks, one head per "
                        "kernel of the ladder (progressive learning, auxiliary losses), trained on physics-made "
                        "pairs (radon, Poisson noise, iradon per kernel). Research use only, not for diagnosis.",
            extra={"self_test_out": "converted.nii.gz", "also_weights": "ct-kernel-smooth",
                   "directions": {d: {"source": s, "targets": list(t)} for d, (_, s, t) in DIRECTIONS.items()}})

    def weights_status(self) -> str:
        from engines.core.weights import WeightsStore

        problems = [f"{n}: {s}" for n in ("ct-kernel-sharpen", "ct-kernel-smooth")
                    if (s := WeightsStore.default().status(n)) != "ok"]
        return "; ".join(problems) if problems else "ok"

    # -- life cycle ---------------------------------------------------------------------------------
    def load(self, device: str) -> None:
        """Record the device; each direction's network is read on first use (both are small)."""
        if device != self.device:
            self.unload()
        self.device = device

    def unload(self) -> None:
        for net in self._nets.values():
            net.unload()
        self._nets = {}
        self.device = None

    def network_engine(self, direction: str) -> KernelNetwork:
        """The direction's network engine, loaded on this engine's device (the resolved default before load)."""
        if direction not in DIRECTIONS:
            raise EngineError(f"direction must be 'sharpen' or 'smooth', not '{direction}'")
        net = self._nets.get(direction)
        if net is None:
            net = self._nets[direction] = KernelNetwork(direction)
        if self.device is not None and not net.loaded:
            net.load(self.device)
        net.ensure_loaded()
        self.device = net.device
        return net

    def use_network(self, direction: str, network, card, device: str = "cpu") -> "KernelConversionEngine":
        """Run ``network`` (a training script's model, with its card) for ``direction`` instead of the shipped
        weights, through the same prepare/infer/finish."""
        from engines.radiology_ai.common import attach_network

        self._nets[direction] = attach_network(KernelNetwork(direction), network, card, device)
        self.device = device
        return self

    def model(self, direction: str):
        """The direction's torch network (loaded)."""
        return self.network_engine(direction).network

    @property
    def network_device(self) -> str | None:
        devices = [n.network_device for n in self._nets.values() if n.network_device]
        return devices[-1] if devices else None

    # -- headless -----------------------------------------------------------------------------------
    input_key = "image_path"
    input_noun = "CT (a series folder or a volume file)"
    sample_id = "ct-kernel-pair"

    @staticmethod
    def resolve(request: Mapping[str, Any]) -> tuple[str, str, int]:
        """(direction, target kernel, head index) from the request's options."""
        direction = str(request.get("direction", "") or "").lower()
        target = str(request.get("target", "") or "").lower()
        if target in ("sharp",):
            target = "edge"
        if target in ("smooth",):
            target = "hann"
        if not direction:
            direction = "smooth" if target in ("hann",) else "sharpen"
        if direction not in DIRECTIONS:
            raise EngineError(f"direction must be 'sharpen' or 'smooth', not '{direction}'")
        targets = DIRECTIONS[direction][2]
        target = target or targets[-1]
        if target not in targets:
            raise EngineError(f"'{target}' is not a target of the {direction} direction (choose one of "
                              f"{', '.join(targets)})")
        return direction, target, targets.index(target)

    def preflight(self, request: Mapping[str, Any]):
        """The CT contract (modality, HU range, ConvolutionKernel against the direction) without converting."""
        from engines.core.checks import InputRefused
        from engines.radiology_ai.common import input_volume
        from engines.radiology_ai.contracts import ct_kernel_checks

        try:
            direction, _target, _head = self.resolve(request)
            source = input_volume(request)
            hu = np.asarray(source.real(source.voxels[:: max(1, source.voxels.shape[0] // 8)]), dtype=np.float32)
            return ct_kernel_checks(source, hu, direction, DIRECTIONS[direction][1])
        except InputRefused as exc:
            from engines.core.checks import Checks

            return Checks(list(exc.checks))
        except EngineError as exc:
            from engines.core.checks import Check, Checks

            return Checks([Check("input", "refused", str(exc))])

    # -- prepare -> infer -> finish -------------------------------------------------------------------
    def prepare(self, request: Mapping[str, Any], *, progress, cancel) -> KernelInputs:
        from engines.radiology_ai.common import acquisition_axis, input_volume, missing_slices, to_slices
        from engines.radiology_ai.contracts import ct_kernel_checks

        direction, target, head = self.resolve(request)
        progress(0.0, "reading the CT")
        source = input_volume(request, progress=lambda f, m: progress(None, m), cancel=cancel)
        hu = np.asarray(source.real(source.voxels), dtype=np.float32)
        src_kernel = DIRECTIONS[direction][1]
        # raises InputRefused for an MR or values that are not HU; warns on a kernel that does not fit
        checks = ct_kernel_checks(source, hu, direction, src_kernel)
        missing = missing_slices(source)
        if missing:
            raise EngineError(f"the series has {missing} missing slice(s) (gaps along the slice normal): the "
                              f"blank slices would be exported as converted images; load the complete series")
        axis = acquisition_axis(source)
        slices = to_slices(hu, axis)
        if min(slices.shape[1:]) < MIN_SIZE:
            raise EngineError(f"slices of {slices.shape[2]}x{slices.shape[1]} pixels are too small for kernel "
                              f"conversion (at least {MIN_SIZE}x{MIN_SIZE})")
        return KernelInputs(source, checks, direction, target, head, axis, np.clip(slices, -1024, 3071), request)

    def infer(self, inputs: KernelInputs, *, progress, cancel) -> np.ndarray:
        src_kernel = DIRECTIONS[inputs.direction][1]
        progress(0.05, f"converting {len(inputs.slices)} slices from the {target_label(src_kernel).lower()} kernel "
                       f"to the {target_label(inputs.target).lower()} kernel")
        return self.convert(inputs.slices, inputs.direction, inputs.target, inputs.head, inputs.request,
                            progress=lambda f, m: progress(0.05 + 0.93 * (f or 0), m), cancel=cancel)

    def finish(self, outputs: np.ndarray, inputs: KernelInputs, request: Mapping[str, Any]) -> ImageResult:
        from engines.radiology.reader import Volume
        from engines.radiology_ai.common import from_slices

        source, direction, target = inputs.source, inputs.direction, inputs.target
        src_kernel = DIRECTIONS[direction][1]
        checks = list(inputs.checks.items)
        scores: dict[str, Any] = {}
        if self.weights_of(direction):
            scores["precision"] = resolve_precision(request.get("precision"), self.device or "cpu")
        ood = self.correction_check(outputs, inputs)
        if ood is not None:
            scores["ood"], check = ood
            checks.append(check)
        out = np.clip(from_slices(outputs, inputs.axis), -1024, 3071)
        stored = np.rint(out + 1024.0).astype(np.int16)
        old = str(source.meta.get("series_description", "") or "CT")
        meta = dict(source.meta)
        meta.update(series_description=f"{old} converted to {target_label(target)}{self.method_note()}"[:64],
                    kernel_conversion={"direction": direction, "from": src_kernel, "to": target},
                    window=source.meta.get("window"))
        converted = Volume(voxels=stored, geometry=source.geometry, slope=1.0, intercept=-1024.0, modality="CT",
                           meta=meta, findings=list(source.findings), series=None,
                           source_geometry=source.source_geometry, source_shape=source.source_shape,
                           source_path=None, invert=source.invert)
        return ImageResult(
            engine=self.id, weights=self.weights_of(direction), device=self.network_device or self.device or "cpu",
            checks=checks, scores=scores, volume=converted, source=source,
            extra={"image": converted, "geometry": source.geometry, "direction": direction,
                   "from_kernel": src_kernel, "to_kernel": target,
                   "series_description": meta["series_description"]})

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> ImageResult:
        result = super().predict(request, progress=progress, cancel=cancel)
        progress(1.0, "done")
        return result

    def weights_of(self, direction: str) -> str | None:
        return DIRECTIONS[direction][0]

    def correction_check(self, outputs: np.ndarray, inputs: KernelInputs):
        """(score dict, check) comparing the network's mean correction |output - input| (HU, inside the body)
        with the card's validation percentiles; None without a reference."""
        from engines.core.calibration import ood_check

        net = self._nets.get(inputs.direction)
        card = net.card if net is not None else None
        ref = ((getattr(card, "calibration", None) or {}).get("ood") or {}).get(f"head{inputs.head}")
        if not ref:
            return None
        score = correction_score(outputs, inputs.slices)

        check = ood_check(score, SimpleNamespace(calibration={"ood": ref}), what="this CT")
        return {"name": ref.get("name", "correction"), "score": round(score, 3), "p95": ref.get("p95"),
                "p99": ref.get("p99")}, check

    def convert(self, slices: np.ndarray, direction: str, target: str, head: int, request: Mapping[str, Any], *,
                progress, cancel) -> np.ndarray:
        """HU slices [n, rows, cols] in the source kernel -> HU slices in ``target`` (the network's head)."""
        net = self.network_engine(direction)
        batch = request.get("batch")
        return net.predict({"slices": slices, "head": head, "batch": int(batch) if batch else None,
                            "precision": request.get("precision")}, progress=progress, cancel=cancel)

    def method_note(self) -> str:
        return ""

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        from engines.radiology_ai.common import write_derived_series, write_volume_file

        out = Path(out)
        name = out.name.lower()
        if any(name.endswith(s) for s in VOLUME_SUFFIXES):
            return write_volume_file(result["volume"], out)
        return write_derived_series(
            result["volume"], result["source"], out, description=result["series_description"],
            derivation=f"CSI Workstation ct-kernel-conversion {result['from_kernel']} -> {result['to_kernel']} "
                       f"(research use only, not for diagnosis)")


class LinearKernelConversionEngine(KernelConversionEngine):
    """The classical peer: the Wiener-style radial filter (or Gaussian / unsharp masking) fitted on the same
    training pairs (resources/models/radiology_ai/ct-kernel-linear.json). Same options, plus method=wiener|spatial."""

    id = "ct-kernel-conversion-linear"

    def __init__(self, fits: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """``fits``: {direction: {target: LinearBaselines}} to run instead of the shipped filter file (a
        training script evaluating the filters it has just fitted)."""
        super().__init__()
        self._fits = fits

    def info(self) -> EngineInfo:
        base = super().info()
        return EngineInfo(
            id=self.id, title="CT kernel conversion (linear filter baseline)", task="image-to-image",
            workspace="radiology", inputs=base.inputs + ", method=wiener|spatial", outputs=base.outputs,
            labels=KERNELS, weights=None,
            description="Classical kernel conversion: the MSE-optimal radial transfer function between two "
                        "kernels (Wiener-style, fitted on the training pairs) or tuned Gaussian smoothing / unsharp "
                        "masking. No network. Research use only, not for diagnosis.",
            extra={"self_test_out": "converted-linear.nii.gz"})

    def weights_status(self) -> str:
        try:
            self._params()
        except EngineError as exc:
            return str(exc)
        return "none needed"

    def load(self, device: str) -> None:
        self.device = device

    def weights_of(self, direction: str) -> str | None:
        return None

    def correction_check(self, outputs: np.ndarray, inputs: KernelInputs):
        return None

    @staticmethod
    def _params() -> dict:
        import json

        from engines.core.paths import resources_dir

        path = resources_dir() / "models" / "radiology_ai" / "ct-kernel-linear.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EngineError(f"the fitted filters are missing or unreadable ({path.name}: {exc})") from None
        if data.get("format") != "csi-workstation/ct-kernel-linear@1":
            raise EngineError(f"{path.name} is not a CSI Workstation kernel filter file")
        return data

    def convert(self, slices: np.ndarray, direction: str, target: str, head: int, request: Mapping[str, Any], *,
                progress, cancel) -> np.ndarray:
        from engines.radiology_ai.baselines import LinearBaselines

        method = str(request.get("method", "wiener") or "wiener").lower()
        if method not in ("wiener", "spatial"):
            raise EngineError(f"method must be 'wiener' or 'spatial', not '{method}'")
        fit = (self._fits[direction][target] if self._fits else
               LinearBaselines.from_dict(self._params()["directions"][direction]["targets"][target]))
        out = np.empty(slices.shape, dtype=np.float32)
        for n, sl in enumerate(slices):
            cancel.raise_if_cancelled()
            out[n] = fit.frequency(sl) if method == "wiener" else fit.spatial(sl)
            progress((n + 1) / len(slices), f"filtered {n + 1}/{len(slices)} slices")
        return out

    def method_note(self) -> str:
        return " (linear)"


PRECISIONS = ("auto", "float32", "bfloat16")
#: the bfloat16 path's allowed difference from float32 (HU over the body; measured: eval_kernel_conversion.py)
BF16_TOLERANCE_HU = {"rms": 2.0, "max": 25.0}


def resolve_precision(choice: Any, device: str) -> str:
    """'float32' or 'bfloat16' for a request's ``precision`` option. 'auto' (the default): bfloat16 on a CPU
    with native bfloat16 arithmetic (AVX-512 BF16 / AMX), where it is ~3x faster and stays within
    BF16_TOLERANCE_HU of float32; float32 elsewhere (the reference path)."""
    choice = str(choice or "auto").lower()
    if choice not in PRECISIONS:
        raise EngineError(f"precision must be one of {', '.join(PRECISIONS)}, not '{choice}'")
    if choice != "auto":
        return choice
    if not str(device).startswith("cpu"):
        return "float32"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def cpu_has_native_bf16() -> bool:
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def correction_score(converted: np.ndarray, source: np.ndarray) -> float:
    """Mean |converted - source| in HU over the body (source above -500 HU): how much the network changed."""
    body = source > -500
    diff = np.abs(np.asarray(converted, np.float32) - np.asarray(source, np.float32))
    return float(diff[body].mean()) if body.any() else float(diff.mean())
