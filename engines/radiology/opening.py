"""What opening a path in the radiology workspace reads, Qt-free (a worker runs it; so can a script or a test).

``read_path`` dispatches on the kind of file and returns a plain dict the session applies:

* ``{"kind": "volume", "volume": Volume, "placed": [PlacedLabels], "auto_window": (w, l)}`` - a NIfTI/MHA/NRRD
  volume or a volume folder (its label maps put on the volume's grid);
* ``{"kind": "scan", "scan": StudyScan, "thumbs": {...}, "volume": Volume | None, "auto_window": ...}`` - DICOM;
* ``{"kind": "labels", "placed": PlacedLabels, "problems": [...]}`` - an RT structure set or a label volume,
  put on the shown image's grid (``target``);
* ``{"kind": "seg", "label_map": LabelMap, "placed": PlacedLabels | None, "ref_uid": str}`` - a DICOM SEG (placed
  on ``target`` when given);
* ``{"kind": "sr", "lines": [...], "findings": [...], "ref_uid": str}`` - a structured report's content, and
  the findings of a measurement report (boxes, scores, review states) with the series it references.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from engines.core.engine import CancelToken, EngineError
from engines.core.model_engine import as_token
from engines.radiology.resample import place_labels



def auto_window(volume) -> tuple[float, float]:
    """The 'Auto' window of a volume: the reader's 1-99 % window over a sample of every slab, leaving out the
    padding at the minimum value (the air outside a CT's field of view would widen it)."""
    from engines.radiology.reader import percentile_window

    sample = volume.voxels[:: max(1, volume.shape[0] // 24), ::4, ::4]
    real = np.asarray(volume.real(sample)).ravel()
    if real.size and np.any(real > real.min()):
        real = real[real > real.min()]
    return percentile_window(real)


def initial_window(volume, auto: tuple[float, float] | None = None) -> tuple[float, float]:
    """(width, level) a volume opens with: its header's window, CT soft tissue, else the auto window."""
    default = volume.meta.get("window")
    if default:
        return (float(default[1]), float(default[0]))
    if volume.modality == "CT":
        return (400.0, 40.0)
    return auto if auto is not None else auto_window(volume)


def read_path(path: str | Path, target=None, *, progress: Callable = lambda f, m="": None,
              cancel: CancelToken | None = None, on_preview: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Read ``path`` for the workspace; ``target`` = (geometry, shape) of the shown image, or None."""
    from engines.core.filetypes import classify
    from engines.radiology import reader
    from engines.radiology.overlays import LabelMap, read_seg

    path = Path(path)
    cancel = as_token(cancel)
    kind = classify(path)
    if kind == "dicom-rtstruct":
        from engines.radiology.overlays import read_rtstruct

        if target is None:
            raise EngineError(f"{path.name} is an RT structure set: open its image series first, the "
                              f"contours are drawn on it")
        label_map, problems = read_rtstruct(path, *target)
        return {"kind": "labels", "placed": place_labels(label_map, None, None, *target), "problems": problems}
    if kind == "dicom-sr":
        from engines.radiology.overlays import read_sr_text
        from engines.radiology.sr import read_findings_sr

        try:  # a measurement report with image regions (ours or another tool's TID 1500): its findings too
            findings, ref_uid = read_findings_sr(path)
        except EngineError:
            findings, ref_uid = [], ""
        return {"kind": "sr", "lines": read_sr_text(path), "findings": findings, "ref_uid": ref_uid}
    if kind == "dicom-seg":
        label_map, ref_uid = read_seg(path)
        placed = place_labels(label_map, None, None, *target) if target is not None else None
        return {"kind": "seg", "label_map": label_map, "placed": placed, "ref_uid": ref_uid}
    if reader.is_volume_file(path):
        volume = reader.load_volume_file(path, progress=progress)
        if target is not None and reader.looks_like_label_map(volume):
            from engines.radiology.overlays import _read_names_sidecar

            label_map = LabelMap(np.ascontiguousarray(volume.voxels), volume.geometry,
                                 _read_names_sidecar(path), source=path.name)
            return {"kind": "labels", "placed": place_labels(label_map, None, None, *target), "problems": []}
        return {"kind": "volume", "volume": volume, "placed": [], "auto_window": auto_window(volume)}
    if kind == "volume-folder":
        volume, label_maps = reader.load_volume_folder(path, progress=progress, cancel=cancel)
        placed = [place_labels(lm, None, None, volume.geometry, volume.shape) for lm in label_maps]
        return {"kind": "volume", "volume": volume, "placed": placed, "auto_window": auto_window(volume)}
    if on_preview is not None:
        preview = reader.quick_preview(path)
        if preview is not None:
            on_preview(preview)
    scan = reader.scan_dicom(path, progress=lambda f, m: progress(None if f is None else 0.2 * f, m), cancel=cancel)
    thumbs = reader.series_thumbnails(scan, cancel=cancel)
    images = scan.image_series()
    if not images:
        return {"kind": "scan", "scan": scan, "thumbs": thumbs, "volume": None, "auto_window": None}
    best = max(images, key=lambda s: len(s.slices))
    volume = read_series(best, progress=lambda f, m: progress(None if f is None else 0.2 + 0.8 * f, m),
                         cancel=cancel, on_preview=on_preview)
    return {"kind": "scan", "scan": scan, "thumbs": thumbs, "volume": volume, "auto_window": auto_window(volume)}


def read_series(series, *, progress: Callable = lambda f, m="": None, cancel: CancelToken | None = None,
                on_preview: Callable[[dict], None] | None = None):
    """One series of a scanned study as a Volume; ``on_preview`` gets its first decoded slice."""
    from engines.radiology import reader

    first = None if on_preview is None else (lambda arr, vol: on_preview(reader.preview_of(arr, vol)))
    return reader.load_series(series, progress=progress, cancel=cancel, on_first_slice=first)


def blank_volume_for(label_map, name: str, ref_uid: str):
    """A blank image on a SEG's own grid, for a SEG opened without its referenced series."""
    from engines.radiology.reader import Volume

    return Volume(voxels=np.zeros(label_map.labels.shape, dtype=np.int16), geometry=label_map.geometry,
                  modality="SEG", meta={"series_description": f"{name} (its own grid)", "window": (0.5, 1)},
                  findings=[f"the referenced series {ref_uid or '(not named)'} is not open: the segmentation is "
                            f"shown on its own grid over a blank image"],
                  source_geometry=label_map.geometry, source_shape=label_map.labels.shape)
