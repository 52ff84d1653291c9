"""Classical CT tissue labelling by Hounsfield thresholds and connected components (no weights).

Body outline (largest connected region above -300 HU, holes filled slice by slice), air/lung inside the
body (below -400 HU, closed to the body) and bone (above 250 HU, small specks removed). It runs on any CT in
seconds on a CPU, so the overlay path, SEG export and engine comparison are real without a trained model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.model_engine import as_token

LABELS = {1: "body (soft tissue)", 2: "air / lung inside the body", 3: "bone"}
OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd", ".dcm")


class CtTissueThresholdEngine(Engine):
    """Body, lung/air and bone label map of a CT by HU thresholds; keeps the input geometry."""

    id = "ct-tissue-threshold"

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="CT tissue threshold (body, lung, bone)", task="segmentation", workspace="radiology",
            inputs="a CT in HU: DICOM series folder or file, NIfTI/MHA/NRRD",
            outputs="label map 1 body, 2 air/lung, 3 bone on the input grid (.nii.gz/.mha/.nrrd, or .dcm as "
                    "DICOM SEG when the input is a DICOM series)",
            labels=tuple(LABELS.values()),
            description="Classical baseline: thresholds -300 HU (body), -400 HU (air inside the body), 250 HU "
                        "(bone) with connected components. No weights; research use only, not for diagnosis.",
            extra={"self_test_out": "labels.nii.gz"})

    input_key = "image_path"
    input_noun = "CT (a series folder or a volume file)"
    sample_id = "ct-series"

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> dict[str, Any]:
        from scipy import ndimage

        from engines.radiology.geometry import Geometry

        cancel = as_token(cancel)
        volume = request.get("volume")
        image = request.get("image") if volume is None else None  # the workspace builds "image" only on demand
        if volume is None and image is None:
            progress(0.02, "reading the CT")
            volume = open_volume(Path(request["image_path"]), progress=progress, cancel=cancel)
        if volume is not None:
            hu = volume.real(volume.voxels)
            geometry = volume.geometry
        else:
            import SimpleITK as sitk

            hu = sitk.GetArrayFromImage(image).astype(np.float32)
            if hu.ndim == 2:
                hu = hu[None]
            geometry = Geometry.from_sitk(image)
        if hu.min() > -500:
            raise EngineError("this image does not look like a CT in Hounsfield units (no air below -500): "
                              "the thresholds would be meaningless")
        labels = np.zeros(hu.shape, dtype=np.uint8)
        progress(0.3, "body outline")
        body = hu > -300
        lab, n = ndimage.label(body)
        cancel.raise_if_cancelled()
        if n:
            sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
            body = lab == (1 + int(np.argmax(sizes)))
        for k in range(body.shape[0]):
            if k % 16 == 0:
                cancel.raise_if_cancelled()
                progress(0.3 + 0.4 * k / body.shape[0], f"filling the body outline ({k}/{body.shape[0]})")
            body[k] = ndimage.binary_fill_holes(body[k])
        labels[body] = 1
        progress(0.75, "air and lung inside the body")
        air = body & (hu < -400)
        air = ndimage.binary_opening(air, iterations=1)
        labels[air] = 2
        cancel.raise_if_cancelled()
        progress(0.85, "bone")
        bone = body & (hu > 250)
        lab, n = ndimage.label(bone)
        if n:
            sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
            keep = np.zeros(n + 1, dtype=bool)
            keep[1:] = sizes >= int(request.get("min_voxels", 20))
            bone = keep[lab]
        labels[bone] = 3
        progress(1.0, "done")
        voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
        volumes = {LABELS[v]: round(float(np.sum(labels == v)) * voxel_ml, 1) for v in LABELS}
        return {"labels": labels, "geometry": geometry, "label_names": dict(LABELS), "volumes_ml": volumes,
                "volume": volume}

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        from engines.radiology.overlays import LabelMap, write_label_file, write_seg

        out = Path(out)
        name = out.name.lower()
        if not any(name.endswith(s) for s in OUTPUT_SUFFIXES):
            raise EngineError(f"--out must end with one of {', '.join(OUTPUT_SUFFIXES)}")
        label_map = LabelMap(result["labels"], result["geometry"], dict(result["label_names"]), source=self.id)
        if name.endswith(".dcm"):
            return [write_seg(label_map, result.get("volume"), out, algorithm=self.id)]
        return write_label_file(label_map, out)


def open_volume(path: Path, *, progress: ProgressFn = no_progress, cancel: CancelToken | None = None):
    """The first image series of a DICOM path, or a NIfTI/MHA/NRRD volume, as a reader Volume."""
    from engines.radiology.reader import is_volume_file, load_series, load_volume_file, scan_dicom

    if not path.exists():
        raise EngineError(f"{path}: no such file or folder")
    if is_volume_file(path):
        return load_volume_file(path, progress=progress)
    scan = scan_dicom(path, cancel=cancel)
    series = scan.image_series()
    if not series:
        raise EngineError(f"{path}: no image series found")
    best = max(series, key=lambda s: len(s.slices))
    return load_series(best, cancel=cancel)
