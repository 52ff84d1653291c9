"""Lesion segmentation on diffusion-weighted MR with a squeeze-and-excitation U-Net (seed 5.5).

Axial slices of the display grid (LPS order) are turned to the orientation the network was trained in
(radiological RAS arrays: both in-plane axes reversed), resampled in-plane to the trained 2.4 mm pixels,
segmented a few at a time, and the lesion probabilities brought back to the input grid. The result is a label
map (1 = lesion) with the input's geometry, with lesion count and volume.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress

ARCH = "unet2d-se@1"  # == nets.UNET_ARCH
LABELS = {1: "lesion (DWI bright)"}
OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd", ".dcm")
MIN_SLICES = 8
TRAINED_MM = 2.4


class LesionSegmentationSEEngine(Engine):
    """DWI lesion label map with the SE U-Net; ``weights`` may name the no-SE model for comparison."""

    id = "lesion-segmentation-se"
    weights_name = "lesion-unet-se"

    def __init__(self) -> None:
        super().__init__()
        self._model = None
        self._card = None

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="DWI lesion segmentation (SE U-Net)", task="segmentation", workspace="radiology",
            inputs="a diffusion-weighted MR volume (b=1000-like), axial, at least 8 slices: DICOM series or "
                   "NIfTI/MHA/NRRD; option threshold=<0..1> (default 0.5)",
            outputs="label map 1 = lesion on the input grid (.nii.gz/.mha/.nrrd, or .dcm as DICOM SEG when the "
                    "input is a DICOM series)",
            labels=("background", LABELS[1]), weights=self.weights_name,
            description="Infarct segmentation on diffusion MR: 2-D U-Net with channel squeeze-and-excitation in every encoder and decoder "
                        "block, trained on simulated DWI (MNI152 anatomy, infarct-like lesions). Research use "
                        "only, not for diagnosis.",
            extra={"self_test_out": "lesions.nii.gz"})

    def load(self, device: str) -> None:
        from engines.radiology_ai.common import build_model

        self._model, self._card = build_model(self.weights_name, ARCH, device)
        self.device = device

    def unload(self) -> None:
        self._model = None
        self.device = None

    input_key = "image_path"
    input_noun = "DWI volume (a series folder or a volume file)"
    sample_id = "dwi-lesions"

    def preflight(self, request: Mapping[str, Any]):
        """The diffusion-MR contract (tags, modality, intensity profile) without running the network."""
        from engines.core.checks import Check, Checks, InputRefused
        from engines.radiology_ai.common import input_volume
        from engines.radiology_ai.contracts import dwi_checks

        try:
            volume = input_volume(request)
            return dwi_checks(volume, np.asarray(volume.real(volume.voxels), dtype=np.float32))
        except InputRefused as exc:
            return Checks(list(exc.checks))
        except EngineError as exc:
            return Checks([Check("input", "refused", str(exc))])

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> dict[str, Any]:
        import torch
        from scipy import ndimage

        from engines.radiology.overlays import LabelMap
        from engines.radiology_ai.common import acquisition_axis, input_volume, missing_slices
        from engines.radiology_ai.contracts import dwi_checks
        from engines.radiology_ai.dwi_sim import normalise

        cancel = cancel or CancelToken()
        if self._model is None:
            raise EngineError(f"{self.id}: load the engine before predicting")
        progress(0.0, "reading the volume")
        volume = input_volume(request, progress=lambda f, m: progress(None, m), cancel=cancel)
        vox = np.asarray(volume.real(volume.voxels), dtype=np.float32)
        checks = dwi_checks(volume, vox)  # raises InputRefused for a CT, an ADC map or another MR sequence
        cancel.raise_if_cancelled()
        if vox.ndim != 3 or vox.shape[0] < MIN_SLICES:
            raise EngineError(f"the volume has {vox.shape[0] if vox.ndim == 3 else 0} slice(s); lesion "
                              f"segmentation needs an axial volume of at least {MIN_SLICES} slices (its intensity "
                              f"normalisation and lesion counting are per volume)")
        if missing_slices(volume):
            raise EngineError(f"the series has {missing_slices(volume)} missing slice(s): load the complete series")
        if acquisition_axis(volume) != 0:
            raise EngineError("the series is not axial: the model segments axial slices")
        if float(vox.max()) <= float(vox.min()):
            raise EngineError("the volume is blank (all voxels have one value)")
        threshold = float(request.get("threshold", 0.5) or 0.5)
        sx, sy = float(volume.geometry.spacing[0]), float(volume.geometry.spacing[1])
        norm = normalise(np.clip(vox, 0, None))
        nk, nj, ni = norm.shape
        zj, zi = sy / TRAINED_MM, sx / TRAINED_MM
        prob = np.zeros(norm.shape, dtype=np.float32)
        batch = max(1, int(request.get("batch", 8) or 8))
        device = self.device or "cpu"
        with torch.inference_mode():
            for start in range(0, nk, batch):
                cancel.raise_if_cancelled()
                chunk = norm[start:start + batch, ::-1, ::-1]  # display LPS -> trained RAS array order
                if abs(zj - 1) > 0.02 or abs(zi - 1) > 0.02:
                    chunk = ndimage.zoom(chunk, (1, zj, zi), order=1)
                h, w = chunk.shape[1:]
                ph, pw = (-h) % 8, (-w) % 8
                x = torch.from_numpy(np.pad(chunk, ((0, 0), (0, ph), (0, pw)))[:, None].copy()).to(device)
                p = self._model(x).softmax(1)[:, 1, :h, :w].float().cpu().numpy()
                if p.shape[1:] != (nj, ni):
                    p = ndimage.zoom(p, (1, nj / p.shape[1], ni / p.shape[2]), order=1)[:, :nj, :ni]
                    p = np.pad(p, ((0, 0), (0, nj - p.shape[1]), (0, ni - p.shape[2])))
                prob[start:start + batch] = p[:, ::-1, ::-1]
                done = min(nk, start + batch)
                progress(0.05 + 0.9 * done / nk, f"segmented {done}/{nk} slices")
        labels = (prob >= threshold).astype(np.uint8)
        lab, n = ndimage.label(labels, np.ones((3, 3, 3)))
        voxel_ml = float(np.prod(volume.geometry.spacing)) / 1000.0
        label_map = LabelMap(labels, volume.geometry, dict(LABELS), source=self.id)
        progress(1.0, f"{n} lesion(s)")
        return {"label_map": label_map, "labels": labels, "geometry": volume.geometry, "label_names": dict(LABELS),
                "probability": prob, "lesions": int(n),
                "volumes_ml": {"lesions": round(float(labels.sum()) * voxel_ml, 2)}, "volume": volume,
                "source": volume, "weights": self.weights_name, "checks": checks.items}

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        from engines.radiology.overlays import write_label_file, write_seg

        out = Path(out)
        name = out.name.lower()
        if not any(name.endswith(s) for s in OUTPUT_SUFFIXES):
            raise EngineError(f"--out must end with one of {', '.join(OUTPUT_SUFFIXES)}")
        label_map = result["label_map"]
        if name.endswith(".dcm"):
            if not label_map.labels.any():
                raise EngineError("no lesion was found: an empty DICOM SEG is not written (write .nii.gz instead)")
            return [write_seg(label_map, result.get("source"), out, algorithm=self.id)]
        return write_label_file(label_map, out)


class LesionSegmentationPlainEngine(LesionSegmentationSEEngine):
    """The same U-Net without SE blocks (the ablation of seed 5.5), to compare side by side in the workspace."""

    id = "lesion-segmentation-plain"
    weights_name = "lesion-unet-plain"

    def info(self) -> EngineInfo:
        base = super().info()
        return EngineInfo(
            id=self.id, title="DWI lesion segmentation (U-Net without SE)", task=base.task, workspace="radiology",
            inputs=base.inputs, outputs=base.outputs, labels=base.labels, weights=self.weights_name,
            description="Ablation of the lesion model: the same 2-D U-Net and training, without squeeze-and-excitation "
                        "blocks. Research use only, not for diagnosis.",
            extra={"self_test_out": "lesions-plain.nii.gz"})
