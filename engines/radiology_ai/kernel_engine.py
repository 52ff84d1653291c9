"""CT kernel conversion engine (seed 5.9): a CT series reconstructed with one kernel -> as if with another.

Two trained networks, one per direction, each with one output head per step of the kernel ladder
(``engines.radiology_ai.kernels.KERNELS``, smooth to sharp: hann, hamming, cosine, shepp-logan, ramp, edge):

* ``sharpen`` (smooth -> sharp): input like the 'hann' kernel, targets hamming ... edge (default edge = SHARP);
* ``smooth`` (sharp -> smooth): input like the 'edge' kernel, targets ramp ... hann (default hann = SMOOTH).

Slices are converted in the acquisition plane, a few at a time, on the device given to ``load``. The result
is a new Volume on the same grid with a derived SeriesDescription; the input travels with it as ``source``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.radiology_ai.common import VOLUME_SUFFIXES

KERNELS = ("hann", "hamming", "cosine", "shepp-logan", "ramp", "edge")  # == kernels.KERNELS (light import)
DIRECTIONS = {"sharpen": ("ct-kernel-sharpen", "hann", KERNELS[1:]),
              "smooth": ("ct-kernel-smooth", "edge", tuple(reversed(KERNELS[:-1])))}
ARCH = "kernel-conversion-se-resnet@1"  # == nets.KERNEL_ARCH (nets imports torch)
MIN_SIZE = 32


def target_label(kernel: str) -> str:
    return {"edge": "SHARP", "hann": "SMOOTH"}.get(kernel, kernel.upper())


class KernelConversionEngine(Engine):
    """Convert a CT series between reconstruction kernels with the SE residual network (both directions)."""

    id = "ct-kernel-conversion"

    def __init__(self) -> None:
        super().__init__()
        self._models: dict[str, Any] = {}

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="CT kernel conversion (SE residual CNN)", task="image-to-image", workspace="radiology",
            inputs="a CT in HU (DICOM series/file or NIfTI/MHA/NRRD); options: direction=sharpen|smooth, "
                   "target=<kernel> (sharpen: hamming, cosine, shepp-logan, ramp, edge; smooth: ramp, "
                   "shepp-logan, cosine, hamming, hann), batch=<slices per step>",
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
        self._models = {}
        self.device = device

    def unload(self) -> None:
        self._models = {}
        self.device = None

    def model(self, direction: str):
        if direction not in DIRECTIONS:
            raise EngineError(f"direction must be 'sharpen' or 'smooth', not '{direction}'")
        if direction not in self._models:
            from engines.radiology_ai.common import build_model

            self._models[direction] = build_model(DIRECTIONS[direction][0], ARCH, self.device or "cpu")[0]
        return self._models[direction]

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

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> dict[str, Any]:
        from engines.radiology.reader import Volume
        from engines.radiology_ai.common import acquisition_axis, from_slices, input_volume, missing_slices, to_slices
        from engines.radiology_ai.contracts import ct_kernel_checks

        cancel = cancel or CancelToken()
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
        progress(0.05, f"converting {len(slices)} slices from the {target_label(src_kernel).lower()} kernel to the "
                       f"{target_label(target).lower()} kernel")
        out = self.convert(np.clip(slices, -1024, 3071), direction, target, head, request,
                           progress=lambda f, m: progress(0.05 + 0.93 * (f or 0), m), cancel=cancel)
        out = np.clip(from_slices(out, axis), -1024, 3071)
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
        progress(1.0, "done")
        return {"volume": converted, "source": source, "image": converted, "geometry": source.geometry,
                "direction": direction, "from_kernel": src_kernel, "to_kernel": target,
                "series_description": meta["series_description"], "checks": checks.items}

    def convert(self, slices: np.ndarray, direction: str, target: str, head: int, request: Mapping[str, Any], *,
                progress: ProgressFn, cancel: CancelToken) -> np.ndarray:
        """HU slices [n, rows, cols] in the source kernel -> HU slices in ``target`` (the network's head)."""
        from engines.radiology_ai.kernel_eval import run_net

        model = self.model(direction)
        cancel.raise_if_cancelled()
        batch = max(1, int(request.get("batch", 4) or 4))
        return run_net(model, slices, head, self.device or "cpu", batch, progress=progress, cancel=cancel)

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
                progress: ProgressFn, cancel: CancelToken) -> np.ndarray:
        from engines.radiology_ai.baselines import LinearBaselines

        method = str(request.get("method", "wiener") or "wiener").lower()
        if method not in ("wiener", "spatial"):
            raise EngineError(f"method must be 'wiener' or 'spatial', not '{method}'")
        fit = LinearBaselines.from_dict(self._params()["directions"][direction]["targets"][target])
        out = np.empty(slices.shape, dtype=np.float32)
        for n, sl in enumerate(slices):
            cancel.raise_if_cancelled()
            out[n] = fit.frequency(sl) if method == "wiener" else fit.spatial(sl)
            progress((n + 1) / len(slices), f"filtered {n + 1}/{len(slices)} slices")
        return out

    def method_note(self) -> str:
        return " (linear)"
