"""Haemorrhage and skull-fracture detection on non-contrast head CT (seed 5.6).

``HaemorrhageDetectorEngine`` ("head-ct-haemorrhage"): a small 3-D convolutional network (a two-level 3-D
U-Net, ~250 k parameters) that labels every voxel of the head, resampled to a 2 x 2 x 2.5 mm working grid, as
background or one of six finding types. It was trained on 24^3-32^3 patches of simulated head CTs
(engines.radiology_ai.head_ct_sim): first with voxel masks (strong labels), then fine-tuned with only the case's
finding types (weak labels, multiple-instance learning over a case's patches), as the seed describes.
Connected regions of the voxel probabilities become findings: a box in patient coordinates (LPS mm), the
finding type, a score calibrated by temperature scaling on validation cases, and a mask on the input grid.

``HaemorrhageThresholdEngine`` ("head-ct-haemorrhage-threshold"): the classical baseline, voxels of 50-90 HU
inside the intracranial space (found from the skull) after a 3x3 median, grouped into connected components.

Both check the input first (a CT of the head, axial, slice spacing in range): an MR or a chest CT is refused.
Both run prepare (read, contract, working grid) -> infer (the network on the engine template, or the
threshold) -> finish (findings) and return a ``DetectionResult``: ``findings``
(engines.radiology.findings.Finding) and ``source``, with ``boxes``, ``shown``, ``threshold``, a ``label_map``
(value = finding number) for SEG export, the input ``volume`` and the checks readable as keys; the network's
result also carries an out-of-distribution check from the energy score of its voxel logits.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.checks import Checks
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.model_engine import ModelEngine, PipelineEngine
from engines.core.results import DetectionResult

ARCH = "haemorrhage-unet3d@1"
WEIGHTS_NAME = "head-ct-haemorrhage"
WORK_MM = (2.0, 2.0, 2.5)  # (i, j, k)
CLASSES = ("background", "intraparenchymal haemorrhage", "epidural haemorrhage", "subdural haemorrhage",
           "subarachnoid haemorrhage", "intraventricular haemorrhage", "skull fracture")
SLICE_MM_RANGE = (0.4, 6.0)  # trained on 2.5-5 mm; thicker than 6 mm warns, thicker than 10 mm is refused
MIN_SLICES = 8
DEFAULT_THRESHOLD = 0.5
BASELINE_TYPE = "haemorrhage (50-90 HU)"
ENCIRCLING_SHARE = 0.75
CANDIDATE_VOXEL_P = 0.3
FRACTURE_VOXEL_P = 0.15  # fractures are lines one or two voxels wide: their probability rarely reaches 0.3
FRACTURE_TOP_VOXELS = 3
OUTPUT_SUFFIXES = (".json", ".dcm", ".nii.gz", ".nii", ".mha", ".nrrd")


# -- working grid and features (shared by training, evaluation and the engine) ----------------------------
def to_work_grid(hu: np.ndarray, spacing_ijk: Sequence[float]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """HU ``[k, j, i]`` resampled (linear, anti-aliased when shrinking) to about WORK_MM; returns the array and
    its exact spacing (i, j, k): corner voxel centres stay where they were."""
    from scipy import ndimage

    hu = np.asarray(hu, np.float32)
    sp_kji = np.asarray(spacing_ijk, float)[::-1]
    target = np.asarray(WORK_MM, float)[::-1]
    shape = np.maximum(2, np.rint((np.asarray(hu.shape) - 1) * sp_kji / target).astype(int) + 1)
    factors = (shape - 1) / np.maximum(np.asarray(hu.shape) - 1, 1)
    sigma = [max(0.0, (1 / f - 1) / 2) if f < 1 else 0.0 for f in factors]
    src = ndimage.gaussian_filter(hu, sigma) if any(s > 0.05 for s in sigma) else hu
    if np.allclose(factors, 1.0):
        work = src
    else:
        work = ndimage.zoom(src, factors, order=1, grid_mode=False)
    spacing = tuple(float(v) for v in (sp_kji * (np.asarray(hu.shape) - 1) / np.maximum(shape - 1, 1))[::-1])
    return work.astype(np.float32), spacing


def labels_to_work_grid(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Integer labels resampled (nearest) onto a working grid of ``shape`` made by :func:`to_work_grid`."""
    from scipy import ndimage

    factors = (np.asarray(shape) - 1) / np.maximum(np.asarray(labels.shape) - 1, 1)
    out = ndimage.zoom(labels, factors, order=0, grid_mode=False)
    return out[tuple(slice(0, s) for s in shape)].astype(np.uint8)


def features(hu: np.ndarray) -> np.ndarray:
    """Two input channels: a blood/brain window (-40..160 HU) and a bone window (-200..2000 HU)."""
    a = (np.clip(hu, -40.0, 160.0) - 40.0) / 40.0
    b = np.clip(hu, -200.0, 2000.0) / 1000.0
    return np.stack([a, b]).astype(np.float32)


def head_crop(hu: np.ndarray, margin: int = 2) -> tuple[slice, slice, slice]:
    """The bounding box of the head (voxels above -300 HU) with a margin."""
    body = hu > -300
    if not body.any():
        return (slice(0, hu.shape[0]), slice(0, hu.shape[1]), slice(0, hu.shape[2]))
    idx = np.argwhere(body)
    lo, hi = np.maximum(idx.min(0) - margin, 0), np.minimum(idx.max(0) + margin + 1, hu.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def make_net(width: int = 12, in_channels: int = 2, classes: int = len(CLASSES)):
    """The 3-D network (torch is imported here, never at module import)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    def conv(cin, cout, stride=1, dilation=1):
        return [nn.Conv3d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]

    class HaemorrhageNet3D(nn.Module):
        """Stem at the working resolution, two stride-2 levels (the deeper one dilated), skip connections."""

        def __init__(self) -> None:
            super().__init__()
            w = width
            self.stem = nn.Sequential(*conv(in_channels, w))
            self.down1 = nn.Sequential(*conv(w, 2 * w, stride=2), *conv(2 * w, 2 * w))
            self.down2 = nn.Sequential(*conv(2 * w, 4 * w, stride=2), *conv(4 * w, 4 * w), *conv(4 * w, 4 * w, dilation=2))
            self.up1 = nn.Sequential(*conv(6 * w, 2 * w), *conv(2 * w, 2 * w))
            self.up0 = nn.Sequential(*conv(3 * w, w))
            self.head = nn.Conv3d(w, classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s0 = self.stem(x)
            s1 = self.down1(s0)
            s2 = self.down2(s1)
            u1 = self.up1(torch.cat([F.interpolate(s2, size=s1.shape[2:], mode="trilinear", align_corners=False),
                                     s1], 1))
            u0 = self.up0(torch.cat([F.interpolate(u1, size=s0.shape[2:], mode="trilinear", align_corners=False),
                                     s0], 1))
            return self.head(u0)

    return HaemorrhageNet3D()


def run_net(model, work_hu: np.ndarray, device: str = "cpu", cancel: CancelToken | None = None,
            progress: ProgressFn = no_progress, slab: int = 48, temperature: float = 1.0
            ) -> tuple[np.ndarray, float]:
    """Class probabilities ``[C, k, j, i]`` of a working-grid HU volume (the head's box only; slabs of
    ``slab`` slices with 8 slices of overlap, so memory stays bounded on long series), and the mean energy score
    -T·logsumexp(logits / T) of the voxels inside the head (above -300 HU): the out-of-distribution score."""
    import torch

    crop = head_crop(work_hu)
    sub = work_hu[crop]
    feats = features(sub)
    inside = sub > -300
    nk = sub.shape[0]
    prob = np.zeros((len(CLASSES),) + sub.shape, np.float32)
    prob[0] = 1.0
    over = 8
    starts = list(range(0, max(1, nk - over), slab - 2 * over)) if nk > slab else [0]
    energy_sum, energy_n = 0.0, 0
    with torch.inference_mode():
        for n, s in enumerate(starts):
            if cancel is not None:
                cancel.raise_if_cancelled()
            a, b = max(0, s - over if s else 0), min(nk, s + slab)
            x = torch.from_numpy(np.ascontiguousarray(feats[:, a:b]))[None].to(device)
            logits = model(x)[0].float()
            p = logits.softmax(0).cpu().numpy()
            energy = (-temperature * torch.logsumexp(logits / temperature, 0)).cpu().numpy()
            keep_a = 0 if s == 0 else over
            prob[:, a + keep_a:b] = p[:, keep_a:]
            kept = inside[a + keep_a:b]
            energy_sum += float(energy[keep_a:][kept].sum())
            energy_n += int(kept.sum())
            progress((n + 1) / len(starts), f"network: slab {n + 1}/{len(starts)}")
    full = np.zeros((len(CLASSES),) + work_hu.shape, np.float32)
    full[0] = 1.0
    full[(slice(None),) + crop] = prob
    return full, (energy_sum / energy_n if energy_n else float("nan"))


# -- findings from probabilities ------------------------------------------------------------------------
def candidates(prob: np.ndarray, voxel_p: float = CANDIDATE_VOXEL_P, min_voxels: int = 2,
               hu: np.ndarray | None = None, fracture_p: float = FRACTURE_VOXEL_P) -> list[dict[str, Any]]:
    """Connected regions of the network's probabilities on the working grid: haemorrhage (classes 1-5, typed
    by the class with most probability in the region) and fractures (class 6) separately. Each: ``mask``
    (bool, working grid), ``type``, ``raw`` score (haemorrhage: mean of the region's 8 most probable voxels).
    Fractures are thin lines whose probability is spread over one or two voxels across: their regions are cut
    at ``fracture_p``, a single voxel is a region, and the score is the mean of its FRACTURE_TOP_VOXELS most
    probable voxels. With the working-grid ``hu``, a region that encircles the brain (its box spans more than
    ENCIRCLING_SHARE of the head's width and of its length) is dropped: that shell is the skull's inner table
    in partial volume, which the network can mistake for an extra-axial collection (or the skull itself, for
    a fracture); real collections, even large subdural ones, lie over one side, and a fracture line is at
    most a few centimetres long."""
    from scipy import ndimage

    out = []
    st = np.ones((3, 3, 3))
    head = head_crop(hu, margin=0) if hu is not None else None
    for classes, cut, least, top in (((1, 2, 3, 4, 5), voxel_p, min_voxels, 8),
                                     ((6,), fracture_p, 1, FRACTURE_TOP_VOXELS)):
        p = prob[list(classes)].sum(0)
        lab, n = ndimage.label(p >= cut, st)
        if n == 0:
            continue
        objects = ndimage.find_objects(lab)
        for num, sl in enumerate(objects, start=1):
            m = lab[sl] == num
            if m.sum() < least:
                continue
            if head is not None and all(
                    (sl[a].stop - sl[a].start) > ENCIRCLING_SHARE * (head[a].stop - head[a].start) for a in (1, 2)):
                continue
            vals = p[sl][m]
            raw = float(np.sort(vals)[-top:].mean())
            sums = [float(prob[c][sl][m].sum()) for c in classes]
            t = classes[int(np.argmax(sums))]
            mask = np.zeros(p.shape, bool)
            mask[sl] = m
            out.append({"mask": mask, "type": int(t), "raw": raw})
    return out


def calibrated(raw: float | np.ndarray, temperature: float, bias: float = 0.0) -> float | np.ndarray:
    """Temperature scaling of a probability: sigmoid(logit(raw) / T + bias) (bias 0 for haemorrhage; the
    fracture scores have their own T and bias, fitted on the validation cases' fracture candidates)."""
    r = np.clip(raw, 1e-6, 1 - 1e-6)
    return 1.0 / (1.0 + np.exp(-(np.log(r / (1 - r)) / max(float(temperature), 1e-3) + float(bias))))


# -- input contract ------------------------------------------------------------------------------------
def head_ct_checks(volume, hu: np.ndarray) -> Checks:
    """The detector's contract: a CT in HU (an MR is refused), axial, slice spacing within range, and a head
    (a skull around brain-density tissue; lungs, as in a chest CT, are refused)."""
    from scipy import ndimage

    from engines.radiology_ai.common import acquisition_axis
    from engines.radiology_ai.contracts import dicom_header

    checks = Checks()
    modality = (volume.modality or "").upper()
    ds = dicom_header(volume)
    if modality and modality != "CT":
        checks.refuse("modality", f"this series is {modality}; the haemorrhage detector needs a non-contrast CT of "
                                  f"the head")
    if hu.ndim != 3 or hu.shape[0] < MIN_SLICES:
        n = hu.shape[0] if hu.ndim == 3 else 0
        checks.refuse("slices", f"the volume has {n} slice(s); the detector needs a head CT of at least "
                                f"{MIN_SLICES} axial slices")
    sample = hu[:: max(1, hu.shape[0] // 16), ::2, ::2]
    if float(sample.min()) > -500:
        checks.refuse("hu-range", "this image does not look like a CT in Hounsfield units (no air below -500 HU); "
                                  "the detector works on head CT only")
    checks.passed("modality", "CT" if modality else "CT judged from its values (air at about -1000 HU)")
    if acquisition_axis(volume) != 0:
        checks.refuse("plane", "the series is not axial: the detector was trained on axial head CT")
    checks.passed("plane", "axial")
    dz = float(volume.geometry.spacing[2])
    if dz > 10.0:
        checks.refuse("slice-spacing", f"the slices are {dz:.1f} mm apart; the detector needs at most 6 mm "
                                       f"(trained on 2.5-5 mm)")
    if not SLICE_MM_RANGE[0] <= dz <= SLICE_MM_RANGE[1]:
        checks.warn("slice-spacing", f"the slices are {dz:.2f} mm apart, outside the {SLICE_MM_RANGE[0]:g}-"
                                     f"{SLICE_MM_RANGE[1]:g} mm the detector is made for (trained on 2.5-5 mm): "
                                     f"small findings may be missed")
    else:
        checks.passed("slice-spacing", f"{dz:.2f} mm")
    body_part = str(ds.get("BodyPartExamined", "") or "").upper() if ds is not None else ""
    if body_part and not any(w in body_part for w in ("HEAD", "BRAIN", "SKULL", "CRAN")):
        checks.warn("body-part", f"the series is tagged BodyPartExamined {body_part}, not HEAD")
    # anatomy: lungs (air inside the body) mean a chest/abdomen CT; a head has a skull around brain tissue
    step = max(1, int(round(4.0 / max(volume.geometry.spacing[0], 0.1))))
    v = hu[:, ::step, ::step]
    voxel_ml = float(np.prod(volume.geometry.spacing)) * step * step / 1000.0
    body = v > -300
    filled = np.stack([ndimage.binary_fill_holes(s) for s in body])
    inner_air = filled & (v < -400)
    lung_ml = float(inner_air.sum()) * voxel_ml
    width_mm = max((np.ptp(np.nonzero(s.any(0))[0]) + 1) * step * volume.geometry.spacing[0] if s.any() else 0
                   for s in body)
    bone = v > 300
    ring = np.stack([ndimage.binary_fill_holes(s) & ~s for s in ndimage.binary_closing(bone, iterations=1)])
    brainlike = ring & (v > -10) & (v < 100)
    brain_ml = float(brainlike.sum()) * voxel_ml
    if lung_ml > 150.0:
        checks.refuse("anatomy", f"this looks like a chest or body CT ({lung_ml:.0f} ml of air inside the body, as "
                                 f"in lungs); the detector needs a CT of the head")
    if width_mm > 280.0:
        checks.warn("anatomy", f"the body is {width_mm:.0f} mm wide, wider than a head")
    if brain_ml < 100.0:
        checks.warn("anatomy", f"no skull around brain-density tissue was found ({brain_ml:.0f} ml); is this a "
                               f"CT of the head?")
    else:
        checks.passed("anatomy", f"a skull around {brain_ml:.0f} ml of brain-density tissue")
    return checks


# -- results ---------------------------------------------------------------------------------------------
def findings_from_regions(regions: list[dict[str, Any]], *, work_geometry, volume, hu: np.ndarray,
                          temperature: float | None, source: str) -> tuple[list, np.ndarray]:
    """Findings (sorted by score) with boxes in LPS mm from the working grid, masks on the input grid, and
    a label map on the input grid (value = finding number)."""
    from engines.radiology.findings import Finding, MaskPatch
    from engines.radiology.geometry import resample_labels

    from engines.radiology.overlays import Box

    regions = sorted(regions, key=lambda r: -r["raw"])
    labels_in = np.zeros(volume.shape, np.uint16 if len(regions) > 250 else np.uint8)
    findings = []
    voxel_ml = float(np.prod(volume.geometry.spacing)) / 1000.0
    half = 0.5
    for n, r in enumerate(regions, start=1):
        idx = np.argwhere(r["mask"])  # k, j, i on the working grid
        lo, hi = idx.min(0)[::-1] - half, idx.max(0)[::-1] + half  # (i, j, k), voxel edges
        type_name = r.get("type_name") or CLASSES[r["type"]]
        box = Box.from_index(lo, hi, work_geometry, label=type_name, score=1.0)
        sub_lo, sub_hi = idx.min(0), idx.max(0) + 1
        sl = tuple(slice(int(a), int(b)) for a, b in zip(sub_lo, sub_hi))
        # the mask on the input grid, through patient coordinates
        local = np.zeros(r["mask"].shape, np.uint8)
        local[sl] = r["mask"][sl]
        on_input = resample_labels(local, work_geometry, volume.geometry, volume.shape) > 0
        if not on_input.any():  # smaller than an input voxel: keep the voxel nearest its centre
            c = np.rint(volume.geometry.lps_to_index(work_geometry.index_to_lps(idx.mean(0)[::-1]))).astype(int)
            c = np.clip(c[::-1], 0, np.asarray(volume.shape) - 1)
            on_input[tuple(c)] = True
        labels_in[on_input & (labels_in == 0)] = n
        ii = np.argwhere(on_input)
        mlo, mhi = ii.min(0), ii.max(0) + 1
        patch = MaskPatch(tuple(int(v) for v in mlo), on_input[tuple(slice(a, b) for a, b in zip(mlo, mhi))].copy())
        score = (float(calibrated(r["raw"], r.get("temperature", temperature), r.get("bias", 0.0)))
                 if temperature is not None else float(r["raw"]))
        centre = work_geometry.index_to_lps(idx.mean(0)[::-1])
        k_centre = int(round(float(volume.geometry.lps_to_index(centre)[2])))
        findings.append(Finding(
            id=f"F{n}", type=type_name, score=round(score, 4), lo_mm=tuple(float(v) for v in box.lo_mm),
            hi_mm=tuple(float(v) for v in box.hi_mm), volume_ml=round(float(on_input.sum()) * voxel_ml, 3),
            mean_hu=round(float(hu[on_input].mean()), 1), slice_index=k_centre,
            centre_mm=tuple(round(float(v), 3) for v in centre), source=source, mask=patch))
    findings.sort(key=lambda f: -f.score)
    return findings, labels_in


@dataclass
class HeadCtInputs:
    """What ``prepare`` hands to ``infer`` and ``finish``."""

    volume: Any
    hu: np.ndarray
    checks: Checks
    threshold: float
    work: np.ndarray
    work_geometry: Any
    started: float


class _HeadCtFindings:
    """What the detector and its threshold baseline share: input, contract, working grid, result, writing."""

    input_key = "image_path"
    input_noun = "head CT (a DICOM series folder or a NIfTI/MHA/NRRD volume)"
    sample_id = "head-ct-haemorrhage"

    def sample_paths(self) -> list[Path]:
        """The simulated head CT sample (generated once into the user data folder, like engines.core.samples)."""
        from engines.core.atomic import atomic_write_text
        from engines.core.paths import samples_dir
        from engines.radiology_ai.head_ct_sim import make_sample

        root = samples_dir() / self.sample_id
        marker = root / ".complete"
        if not marker.exists():
            import shutil

            if root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True)
            made = make_sample(root)
            atomic_write_text(marker, str(made.relative_to(root)) + "\n")
        return [root / marker.read_text(encoding="utf-8").strip()]

    def preflight(self, request: Mapping[str, Any]):
        """The head-CT contract (modality, plane, slice spacing, anatomy) without running the detector."""
        from engines.radiology_ai.common import preflight_volume

        return preflight_volume(request, head_ct_checks)

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> HeadCtInputs:
        """Read the CT, check the head-CT contract, resample to the working grid."""
        from engines.radiology.geometry import Geometry
        from engines.radiology_ai.common import input_volume, missing_slices

        threshold = self._threshold(request)
        started = time.perf_counter()
        progress(0.0, "reading the CT")
        volume = input_volume(request, progress=lambda f, m: progress(None, m), cancel=cancel)
        hu = np.asarray(volume.real(volume.voxels), dtype=np.float32)
        checks = head_ct_checks(volume, hu)
        if missing_slices(volume):
            raise EngineError(f"the series has {missing_slices(volume)} missing slice(s): load the complete series")
        progress(0.1, "resampling to the working grid")
        work, spacing = to_work_grid(hu, volume.geometry.spacing)
        work_geometry = Geometry(spacing, volume.geometry.origin, volume.geometry.direction)
        return HeadCtInputs(volume, hu, checks, threshold, work, work_geometry, started)

    def _threshold(self, request) -> float:
        raw = request.get("threshold", DEFAULT_THRESHOLD) if hasattr(request, "get") else DEFAULT_THRESHOLD
        try:
            t = float(raw if raw not in (None, "") else DEFAULT_THRESHOLD)
        except (TypeError, ValueError):
            raise EngineError(f"threshold must be a number between 0 and 1, not '{raw}'") from None
        if not 0.0 <= t <= 1.0:
            raise EngineError(f"threshold must be between 0 and 1, not {t:g}")
        return t

    def _result(self, findings, labels_in, inputs: HeadCtInputs, *, checks=None, scores=None,
                extra=None) -> DetectionResult:
        from engines.radiology.overlays import Box, LabelMap

        volume, threshold = inputs.volume, inputs.threshold
        names = {n: f"{f.id} {f.type}" for n, f in enumerate(findings_by_number(findings, labels_in), start=1)}
        label_map = LabelMap(labels_in, volume.geometry, names or {1: "finding"}, source=self.id)
        shown = [f for f in findings if f.score >= threshold]
        boxes = [Box(f.lo_mm, f.hi_mm, f.type, f.score) for f in shown]
        return DetectionResult(
            engine=self.id, weights=self.info().weights, device=getattr(self, "network_device", None) or "cpu",
            checks=list(checks if checks is not None else inputs.checks.items), scores=dict(scores or {}),
            findings=findings, source=volume,
            extra={"shown": shown, "threshold": threshold, "boxes": boxes, "label_map": label_map,
                   "geometry": volume.geometry, "volume": volume,
                   "seconds": round(time.perf_counter() - inputs.started, 2), **(extra or {})})

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        from engines.radiology.overlays import write_boxes_json, write_label_file

        out = Path(out)
        name = out.name.lower()
        if not any(name.endswith(s) for s in OUTPUT_SUFFIXES):
            raise EngineError(f"--out must end with one of {', '.join(OUTPUT_SUFFIXES)} (.json: boxes and findings; "
                              f".dcm: a DICOM SR measurement report with the masks as DICOM SEG beside it)")
        findings = result["findings"]
        shown = [f for f in findings if f.score >= result["threshold"]]
        if name.endswith(".json"):
            meta = {"engine": result["engine"], "weights": result.get("weights"), "threshold": result["threshold"],
                    "seconds": result.get("seconds"), "findings": [f.to_dict() for f in shown],
                    "below_threshold": len(findings) - len(shown)}
            return [write_boxes_json(result["boxes"], out, meta)]
        if name.endswith(".dcm"):
            from engines.radiology.sr import write_findings_sr

            return write_findings_sr(shown, result["source"], out, algorithm=result["engine"])
        lm = result["label_map"]
        return write_label_file(lm, out)


def findings_by_number(findings, labels_in) -> list:
    """Findings in label-map order (label n = finding ``F<n>``)."""
    by_id = {f.id: f for f in findings}
    return [by_id[f"F{n}"] for n in range(1, len(findings) + 1) if f"F{n}" in by_id]


class HaemorrhageDetectorEngine(_HeadCtFindings, ModelEngine):
    """Head-CT haemorrhage and fracture findings from the 3-D patch network (boxes, types, scores, masks)."""

    id = "head-ct-haemorrhage"
    aliases = ("haemorrhage", "hemorrhage")
    weights_name = WEIGHTS_NAME
    architecture = ARCH
    model_noun = "the haemorrhage detector"

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Head CT haemorrhage and fracture detector (3-D CNN)", task="detection",
            workspace="radiology",
            inputs="a non-contrast CT of the head, axial, slice spacing 0.4-6 mm: DICOM series or NIfTI/MHA/NRRD; "
                   "option threshold=<0..1> (default 0.5) for the findings shown and written",
            outputs="findings (box in LPS mm, type, calibrated score, mask): .json boxes, .dcm DICOM SR (TID 1500) "
                    "with a DICOM SEG beside it, or a label map (.nii.gz/.mha/.nrrd)",
            labels=CLASSES, weights=WEIGHTS_NAME,
            description="A 3-D convolutional network on small patches at 2 x 2 x 2.5 mm, pre-trained with "
                        "voxel masks, fine-tuned with case-level labels (multiple-instance learning), on simulated "
                        "head CTs (MNI152 anatomy, CT physics with several kernels and doses). Research use only, "
                        "not for diagnosis.",
            extra={"self_test_out": "haemorrhage-boxes.json"})

    def build_network(self, card):
        a = card.arch_args
        return make_net(width=int(a["width"]), in_channels=int(a["in_channels"]), classes=int(a["classes"]))

    @property
    def temperature(self) -> float:
        """The finding scores' temperature (sigmoid(logit(raw) / T)), fitted on the validation cases."""
        cal = getattr(self.card, "calibration", None) or {}
        arch = getattr(self.card, "arch_args", None) or {}
        return float(cal.get("temperature", arch.get("temperature", 1.0)))

    @property
    def fracture_calibration(self) -> tuple[float, float]:
        """(T, bias) of the fracture scores: sigmoid(logit(raw) / T + bias), fitted on the validation cases'
        fracture candidates (their precision differs from the haemorrhage candidates'); without a fit the
        haemorrhage temperature and no bias."""
        cal = (getattr(self.card, "calibration", None) or {}).get("fracture") or {}
        return float(cal.get("temperature", self.temperature)), float(cal.get("bias", 0.0))

    @property
    def fracture_voxel_p(self) -> float:
        """The voxel probability that starts a fracture region: FRACTURE_VOXEL_P for weights whose card fitted a
        fracture calibration, else the haemorrhage cut (weights without a fracture fit score their faint fracture
        voxels near 0: dozens of 0.00 "fractures" along the skull would fill the review list and the report)."""
        cal = (getattr(self.card, "calibration", None) or {}).get("fracture") or {}
        return float(cal.get("voxel_p", FRACTURE_VOXEL_P if cal else CANDIDATE_VOXEL_P))

    def infer(self, inputs: HeadCtInputs, *, progress: ProgressFn, cancel: CancelToken):
        return run_net(self.network, inputs.work, self.device or "cpu", cancel,
                       lambda f, m: progress(0.15 + 0.7 * (f or 0), m))

    def finish(self, outputs, inputs: HeadCtInputs, request: Mapping[str, Any]) -> DetectionResult:
        prob, energy = outputs
        regions = candidates(prob, hu=inputs.work, fracture_p=self.fracture_voxel_p)
        t_frac, b_frac = self.fracture_calibration
        for r in regions:
            if r["type"] == 6:
                r.update(temperature=t_frac, bias=b_frac)
        findings, labels_in = findings_from_regions(regions, work_geometry=inputs.work_geometry,
                                                    volume=inputs.volume, hu=inputs.hu,
                                                    temperature=self.temperature, source=self.id)
        checks = list(inputs.checks.items)
        ood = self.ood_check(energy, what="this head CT")
        if ood is not None:
            checks.append(ood)
        ref = (getattr(self.card, "calibration", None) or {}).get("ood") or {}
        scores = {"temperature": round(self.temperature, 4),
                  "confidence": max((f.score for f in findings), default=None),
                  "ood": {"name": "energy", "score": round(float(energy), 4), "p95": ref.get("p95"),
                          "p99": ref.get("p99")}}
        return self._result(findings, labels_in, inputs, checks=checks, scores=scores,
                            extra={"probability_work": prob, "work_geometry": inputs.work_geometry})

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> DetectionResult:
        result = super().predict(request, progress=progress, cancel=cancel)
        progress(1.0, f"{len(result['shown'])} finding(s) at score >= {result['threshold']:g} "
                      f"({len(result.findings)} candidate(s))")
        return result


class HaemorrhageThresholdEngine(_HeadCtFindings, PipelineEngine):
    """The classical baseline: 50-90 HU inside the intracranial space, connected components."""

    id = "head-ct-haemorrhage-threshold"
    LOW, HIGH = 50.0, 90.0
    MIN_ML = 0.05

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Head CT haemorrhage by threshold (50-90 HU, baseline)", task="detection",
            workspace="radiology",
            inputs="a non-contrast CT of the head, axial: DICOM series or NIfTI/MHA/NRRD; option threshold=<0..1>",
            outputs="findings (box in LPS mm, score from the region's size, mask): .json, .dcm (SR + SEG)",
            labels=("background", "haemorrhage (50-90 HU)"),
            description="Classical baseline: a 3x3 median per slice, voxels of 50-90 HU inside the intracranial "
                        "space (enclosed by bone above 300 HU, 2 mm from it), 3-D connected components of at least "
                        "0.05 ml; score 1 - exp(-volume / 1 ml). No weights, no types, no fractures. Research use "
                        "only, not for diagnosis.",
            extra={"self_test_out": "haemorrhage-threshold-boxes.json"})

    def infer(self, inputs: HeadCtInputs, *, progress: ProgressFn, cancel: CancelToken) -> list[dict[str, Any]]:
        return threshold_regions(inputs.work, inputs.work_geometry.spacing, self.LOW, self.HIGH, self.MIN_ML)

    def finish(self, outputs, inputs: HeadCtInputs, request: Mapping[str, Any]) -> DetectionResult:
        findings, labels_in = findings_from_regions(outputs, work_geometry=inputs.work_geometry,
                                                    volume=inputs.volume, hu=inputs.hu, temperature=None,
                                                    source=self.id)
        return self._result(findings, labels_in, inputs)

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> DetectionResult:
        result = super().predict(request, progress=progress, cancel=cancel)
        progress(1.0, f"{len(result['shown'])} region(s) of 50-90 HU")
        return result


def intracranial_mask(work: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Inside the skull (filled bone ring per slice, bone > 300 HU), at least 2 mm away from the bone."""
    from scipy import ndimage

    bone = work > 300
    closed = ndimage.binary_closing(bone, np.ones((1, 3, 3)), iterations=1)
    inside = np.stack([ndimage.binary_fill_holes(s) for s in closed]) & ~closed
    far = ndimage.distance_transform_edt(~bone, sampling=tuple(spacing[::-1])) > 2.0
    return inside & far


def threshold_regions(work: np.ndarray, spacing, low=50.0, high=90.0, min_ml=0.05) -> list[dict[str, Any]]:
    from scipy import ndimage

    med = ndimage.median_filter(work, size=(1, 3, 3))
    cand = (med >= low) & (med <= high) & intracranial_mask(work, spacing)
    lab, n = ndimage.label(cand, np.ones((3, 3, 3)))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = []
    for num, sl in enumerate(ndimage.find_objects(lab), start=1):
        m = lab[sl] == num
        ml = float(m.sum()) * voxel_ml
        if ml < min_ml:
            continue
        mask = np.zeros(work.shape, bool)
        mask[sl] = m
        out.append({"mask": mask, "type": 1, "type_name": BASELINE_TYPE, "raw": float(1 - np.exp(-ml / 1.0))})
    return out


def model_card(args, *, temperature: float, metrics: dict, steps: int, train_s: float, sets: dict,
               fracture: dict | None = None):
    """The model card the training script saves with the weights."""
    import sys

    from engines.core.weights import ModelCard

    return ModelCard(
        name=WEIGHTS_NAME, architecture=ARCH,
        calibration={"temperature": round(temperature, 4), **({"fracture": fracture} if fracture else {}),
                     "split": "validation cases (train_haemorrhage.py's calibration)"},
        arch_args={"width": args.width, "in_channels": 2, "classes": len(CLASSES), "temperature": round(temperature, 4)},
        task="detection of haemorrhage (intraparenchymal, epidural, subdural, subarachnoid, intraventricular) and "
             "skull fractures on non-contrast head CT; voxel classes grouped into findings",
        labels=list(CLASSES),
        inputs={"modality": "CT (HU)", "body part": "head", "plane": "axial", "working_grid_mm": list(WORK_MM),
                "slice_mm_trained": [2.5, 5.0], "features": "HU windows -40..160 and -200..2000",
                "patch": [args.patch] * 3},
        training_data=("Simulated head CTs (engines.radiology_ai.head_ct_sim): nilearn's MNI152 2009 anatomy with "
                       "individual pose, warps, atrophy and ventricle size, a built skull and scalp, inserted "
                       "findings with voxel masks, then projection, Poisson noise and filtered back-projection. "
                       + "; ".join(f"{k}: seeds {v[0]}-{v[0] + v[1] - 1}, kernels {'/'.join(v[2])}, "
                                   f"{v[3][0]:.0e}-{v[3][1]:.0e} photons/ray, {'/'.join(str(s) for s in v[4])} mm "
                                   f"slices" for k, v in sets.items())
                       + ". Strong labels: voxel masks of the 'strong' and 'focus' sets (the focus set's findings "
                         "are drawn from subdural, fracture and epidural only); weak labels: only the finding types "
                         "of the 'weak' set's cases; 'test_focus' is held out like 'test' and reported beside it."),
        training_command=(f"flock /tmp/csi-training.lock {Path(sys.executable).name} "
                          f"scripts/radiology_ai/train_haemorrhage.py train --minutes {args.minutes:g} "
                          f"--strong-share {args.strong_share:g} --batch {args.batch} --patch {args.patch} "
                          f"--width {args.width} --lr {args.lr:g} --seed {args.seed}"
                          f" --rim-share {getattr(args, 'rim_share', 0):g}"
                          f" --fracture-share {getattr(args, 'fracture_share', 0):g}"
                          f" --subdural-share {getattr(args, 'subdural_share', 0):g}"
                          f" --class-weights {getattr(args, 'class_weights', '0.3,1,1,1,1.5,1,2')}"
                          + (f" --init {args.init}" if getattr(args, "init", None) else "")),
        metrics={"held_out": metrics.get("table"), "detail": metrics.get("detail"),
                 **({"held_out_with_test_focus": metrics["table_with_extra"],
                     "detail_with_test_focus": metrics.get("detail_with_extra")} if metrics.get("table_with_extra")
                    else {}),
                 "steps": steps,
                 "train_seconds": round(train_s), "threads": 1, "temperature": round(temperature, 4),
                 "evaluation_command": "scripts/radiology_ai/eval_haemorrhage.py"},
        limits=("Trained only on simulated head CTs of one template anatomy at 2 mm pixels, without skull base, "
                "metal, motion, beam hardening or mass effect; real scans differ. Types are those of the "
                "simulation. Fractures are lines 0.6-2.5 mm wide at 2 mm pixels: a drop of a few hundred HU "
                f"in the bone, subtle and often missed. {train_s / 60:.0f} minutes of training on one CPU thread."),
    )


def describe_findings(findings) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=1)


def sample_hit_score(engine) -> float:
    """The highest score among ``engine``'s findings that overlap the true haemorrhage of the sample case
    (head_ct_sim.sample_case: held-out anatomy, one intraparenchymal haemorrhage), 0 when none does: the small
    held-out figure the model card records (``test_sample_hit_score``) and the tests reproduce."""
    from engines.radiology.reader import Volume
    from engines.radiology_ai.head_ct_sim import sample_case

    case = sample_case()
    result = engine.predict({"volume": Volume(case.hu, case.geometry(), modality="CT"), "threshold": 0.0})
    truth = case.instances > 0
    return max((f.score for f in result.findings if (f.mask.full(truth.shape) & truth).any()), default=0.0)
