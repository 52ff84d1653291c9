"""Lesion segmentation on diffusion-weighted MR with a squeeze-and-excitation U-Net (seed 5.5).

``prepare`` reads the volume, checks the diffusion-MR contract, normalises it, turns the axial slices of the
display grid (LPS order) to the orientation the network was trained in (radiological RAS arrays: both
in-plane axes reversed), resamples them in-plane to the trained 2.4 mm pixels and pads them to a multiple of 8;
``infer`` runs the U-Net over the slices (the template's batching, threads and out-of-memory fallback) and
returns its logits; ``finish`` turns them into calibrated lesion probabilities (softmax(logits / T), T from the
model card), brings them back to the input grid and labels them: a ``SegmentationResult`` (1 = lesion) with the
input's geometry, lesion count and volume, the contract checks, and an out-of-distribution check from the
energy score of the logits. The training and evaluation scripts run these same three steps
(``evaluate_volume``), so the model card measures the path users run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.core.engine import EngineError, EngineInfo
from engines.core.model_engine import ModelEngine
from engines.core.results import SegmentationResult

ARCH = "unet2d-se@1"  # == nets.UNET_ARCH
LABELS = {1: "lesion (DWI bright)"}
OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd", ".dcm")
MIN_SLICES = 8
TRAINED_MM = 2.4
HEAD_LEVEL = 0.1  # normalised intensity above which a pixel counts as head (for the OOD summary)


@dataclass
class LesionInputs:
    """What ``prepare`` hands to ``infer`` and ``finish``."""

    volume: Any
    checks: Any
    threshold: float
    slices: np.ndarray  # [n, 1, H8, W8] float32: normalised, RAS order, 2.4 mm, padded to a multiple of 8
    net_hw: tuple[int, int]  # rows, cols before the padding
    zoomed: bool
    batch: int | None = None
    precision: str = "auto"  # request option: auto (bfloat16 on a CPU with native bfloat16) | float32 | bfloat16


class LesionSegmentationSEEngine(ModelEngine):
    """DWI lesion label map with the SE U-Net; ``weights`` may name the no-SE model for comparison."""

    _precision = "float32"  # of the forward pass now running (set per request by infer)

    id = "lesion-segmentation-se"
    weights_name = "lesion-unet-se"
    architecture = ARCH
    model_noun = "the SE lesion U-Net"
    cpu_batch = 8

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="DWI lesion segmentation (SE U-Net)", task="segmentation", workspace="radiology",
            inputs="a diffusion-weighted MR volume (b=1000-like), axial, at least 8 slices: DICOM series or "
                   "NIfTI/MHA/NRRD; options threshold=<0..1> (default 0.5), precision=auto|float32|bfloat16 (auto: "
                   "bfloat16 on CPUs with native bfloat16, the same Dice on the held-out set)",
            outputs="label map 1 = lesion on the input grid (.nii.gz/.mha/.nrrd, or .dcm as DICOM SEG when the "
                    "input is a DICOM series)",
            labels=("background", LABELS[1]), weights=self.weights_name,
            description="Infarct segmentation on diffusion MR: 2-D U-Net with channel squeeze-and-excitation in every encoder and decoder "
                        "block, trained on simulated DWI (MNI152 anatomy, infarct-like lesions). Research use "
                        "only, not for diagnosis.",
            extra={"self_test_out": "lesions.nii.gz"})

    def build_network(self, card):
        from engines.radiology_ai.common import network_from_card

        return network_from_card(card)

    def load(self, device: str) -> None:
        from engines.radiology_ai.common import load_channels_last

        load_channels_last(self, device)

    def forward(self, x):
        from engines.radiology_ai.common import channels_last

        x = channels_last(x)
        if self._precision == "bfloat16":
            import torch

            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self.network(x).float()
        return self.network(x)

    input_key = "image_path"
    input_noun = "DWI volume (a series folder or a volume file)"
    sample_id = "dwi-lesions"

    def preflight(self, request: Mapping[str, Any]):
        """The diffusion-MR contract (tags, modality, intensity profile) without running the network."""
        from engines.radiology_ai.common import preflight_volume
        from engines.radiology_ai.contracts import dwi_checks

        return preflight_volume(request, dwi_checks)

    # -- prepare -> infer -> finish -------------------------------------------------------------------
    def prepare(self, request: Mapping[str, Any], *, progress, cancel) -> LesionInputs:
        from scipy import ndimage

        from engines.radiology_ai.common import acquisition_axis, input_volume, missing_slices
        from engines.radiology_ai.contracts import dwi_checks
        from engines.radiology_ai.dwi_sim import normalise

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
        net = normalise(np.clip(vox, 0, None))[:, ::-1, ::-1]  # display LPS -> trained RAS array order
        zj, zi = sy / TRAINED_MM, sx / TRAINED_MM
        zoomed = abs(zj - 1) > 0.02 or abs(zi - 1) > 0.02
        if zoomed:
            net = ndimage.zoom(net, (1, zj, zi), order=1)
        h, w = net.shape[1:]
        padded = np.pad(net, ((0, 0), (0, (-h) % 8), (0, (-w) % 8)))[:, None].astype(np.float32)
        batch = request.get("batch")
        from engines.radiology_ai.kernel_engine import resolve_precision

        precision = resolve_precision(request.get("precision"), self.device or "cpu")  # refuses unknown values
        return LesionInputs(volume, checks, threshold, np.ascontiguousarray(padded), (h, w), zoomed,
                            int(batch) if batch else None, precision)

    def infer(self, inputs: LesionInputs, *, progress, cancel) -> np.ndarray:
        """Logits [n, 2, h, w] of every slice on the network's grid (RAS order, 2.4 mm, padding cut off)."""
        h, w = inputs.net_hw
        n = len(inputs.slices)
        self._precision = inputs.precision
        out = self.forward_batches(inputs.slices, progress=progress, cancel=cancel, batch=inputs.batch,
                                   message="segmenting slices",
                                   post=lambda t: t[:, :, :h, :w].float().cpu().numpy())
        progress(0.95, f"segmented {n}/{n} slices")
        return np.stack(out)

    def lesion_probability(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated lesion probability softmax(logits / T)[1] on the network grid."""
        z = logits.astype(np.float32) / np.float32(self.temperature)
        return (1.0 / (1.0 + np.exp(z[:, 0] - z[:, 1]))).astype(np.float32)

    def ood_score(self, logits: np.ndarray, inputs: LesionInputs, temperature: float | None = None) -> float:
        """The input's energy score: mean over the head's pixels of -T·logsumexp(logits / T)."""
        from engines.core.calibration import energy_score

        h, w = inputs.net_hw
        head = inputs.slices[:, 0, :h, :w] > HEAD_LEVEL
        energy = energy_score(logits, self.temperature if temperature is None else temperature, axis=1)
        return float(energy[head].mean()) if head.any() else float(energy.mean())

    def finish(self, outputs: np.ndarray, inputs: LesionInputs, request: Mapping[str, Any]) -> SegmentationResult:
        from scipy import ndimage

        from engines.radiology.overlays import LabelMap

        volume = inputs.volume
        nk, nj, ni = volume.shape
        p = self.lesion_probability(outputs)
        if p.shape[1:] != (nj, ni):
            p = ndimage.zoom(p, (1, nj / p.shape[1], ni / p.shape[2]), order=1)[:, :nj, :ni]
            p = np.pad(p, ((0, 0), (0, nj - p.shape[1]), (0, ni - p.shape[2])))
        prob = np.ascontiguousarray(p[:, ::-1, ::-1], dtype=np.float32)  # back to display LPS order
        labels = (prob >= inputs.threshold).astype(np.uint8)
        _, n = ndimage.label(labels, np.ones((3, 3, 3)))
        voxel_ml = float(np.prod(volume.geometry.spacing)) / 1000.0
        label_map = LabelMap(labels, volume.geometry, dict(LABELS), source=self.id)
        checks = list(inputs.checks.items)
        score = self.ood_score(outputs, inputs)
        ood = self.ood_check(score, what="this DWI volume")
        if ood is not None:
            checks.append(ood)
        ref = (getattr(self.card, "calibration", None) or {}).get("ood") or {}
        marked = prob[labels > 0]
        scores = {"confidence": round(float(marked.mean()), 4) if marked.size else None,
                  "temperature": round(self.temperature, 4),
                  "ood": {"name": "energy", "score": round(score, 4), "p95": ref.get("p95"), "p99": ref.get("p99")}}
        return SegmentationResult(
            engine=self.id, weights=self.weights_name, device=self.network_device or "cpu", checks=checks,
            scores=scores, label_map=label_map, labels=labels, probability=prob, label_names=dict(LABELS),
            geometry=volume.geometry, source=volume, counts={"lesions": int(n)},
            volumes_ml={"lesions": round(float(labels.sum()) * voxel_ml, 2)},
            extra={"lesions": int(n), "volume": volume})

    def evaluate_volume(self, volume, *, threshold: float = 0.5) -> tuple[SegmentationResult, np.ndarray, LesionInputs]:
        """The user path on one in-memory volume, for the evaluation and calibration scripts: the result, the
        network's logits and the prepared inputs (for temperature fitting and the energy reference)."""
        from engines.core.engine import no_progress
        from engines.core.model_engine import as_token

        with self._lock:
            self.ensure_loaded()
            request = {"volume": volume, "threshold": threshold}
            cancel = as_token(None)
            inputs = self.prepare(request, progress=no_progress, cancel=cancel)
            logits = self._run_infer(inputs, no_progress, cancel)
            return self.finish(logits, inputs, request), logits, inputs

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
    model_noun = "the lesion U-Net without SE"

    def info(self) -> EngineInfo:
        base = super().info()
        return EngineInfo(
            id=self.id, title="DWI lesion segmentation (U-Net without SE)", task=base.task, workspace="radiology",
            inputs=base.inputs, outputs=base.outputs, labels=base.labels, weights=self.weights_name,
            description="Ablation of the lesion model: the same 2-D U-Net and training, without squeeze-and-excitation "
                        "blocks. Research use only, not for diagnosis.",
            extra={"self_test_out": "lesions-plain.nii.gz"})
