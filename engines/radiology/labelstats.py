"""Per-label statistics of a label map on its image, Qt-free (run it off the GUI thread).

For each label value: its voxel count, its volume in millilitres, the mean and SD of the image's real
values (HU for CT) under it, and the centre of its largest connected component (scipy.ndimage), snapped to a
voxel of that component so that jumping there always lands on the label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engines.core.engine import CancelToken

_CHUNK_SLICES = 16  # sums run over slabs, so no float copy of a whole volume is ever made


@dataclass(frozen=True)
class LabelStat:
    value: int
    voxels: int
    volume_ml: float
    mean: float | None  # real units; None without an image
    sd: float | None
    centre_ijk: tuple[int, int, int]  # in the largest connected component
    components: int = 1


def label_statistics(labels: np.ndarray, spacing: Sequence[float], stored: np.ndarray | None = None,
                     slope: float = 1.0, intercept: float = 0.0, *, cancel: CancelToken | None = None,
                     progress=None) -> dict[int, LabelStat]:
    """Statistics of every non-zero label of ``labels`` ([k, j, i], integer) on a grid of ``spacing``
    (i, j, k mm). ``stored`` (same shape) with ``slope``/``intercept`` gives the image values."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise ValueError("label values must be integers")
    if labels.size and int(labels.min(initial=0)) < 0:
        raise ValueError("label values must not be negative")
    if stored is not None and stored.shape != labels.shape:
        raise ValueError(f"labels {labels.shape} and image {stored.shape} are not on the same grid")
    n = int(labels.max(initial=0)) + 1
    counts = np.zeros(n, dtype=np.int64)
    sums = np.zeros(n)
    squares = np.zeros(n)
    for k0 in range(0, labels.shape[0], _CHUNK_SLICES):
        if cancel is not None:
            cancel.raise_if_cancelled()
        lab = labels[k0:k0 + _CHUNK_SLICES].ravel().astype(np.intp, copy=False)
        counts += np.bincount(lab, minlength=n)
        if stored is not None:
            vals = stored[k0:k0 + _CHUNK_SLICES].ravel().astype(np.float64)
            sums += np.bincount(lab, weights=vals, minlength=n)
            squares += np.bincount(lab, weights=vals * vals, minlength=n)
    present = [v for v in range(1, n) if counts[v]]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    boxes = _bounding_boxes(labels, present)
    out: dict[int, LabelStat] = {}
    for done, value in enumerate(present):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(done / max(1, len(present)), f"label {value}")
        mean = sd = None
        if stored is not None:
            m = sums[value] / counts[value]
            var = max(0.0, squares[value] / counts[value] - m * m)
            mean, sd = float(m * slope + intercept), float(np.sqrt(var) * abs(slope))
        centre, parts = _largest_component_centre(labels, value, boxes[value])
        out[value] = LabelStat(value, int(counts[value]), float(counts[value] * voxel_ml), mean, sd, centre, parts)
    return out


def _bounding_boxes(labels: np.ndarray, values: list[int]) -> dict[int, tuple[slice, ...]]:
    from scipy import ndimage

    if not values:
        return {}
    if labels.dtype.kind == "b" or labels.dtype.itemsize > 4:
        labels = labels.astype(np.int32)
    found = ndimage.find_objects(labels, max_label=max(values))
    return {v: found[v - 1] for v in values}


def _largest_component_centre(labels: np.ndarray, value: int, box: tuple[slice, ...]) -> tuple[tuple[int, int, int], int]:
    from scipy import ndimage

    mask = labels[box] == value
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(np.argmax(sizes))
    centre = np.asarray(ndimage.center_of_mass(mask))
    voxel = tuple(int(c) for c in np.rint(centre))
    if not mask[voxel]:  # a curved or hollow shape: the nearest voxel that belongs to it
        points = np.argwhere(mask)
        voxel = tuple(int(c) for c in points[np.argmin(((points - centre) ** 2).sum(axis=1))])
    k, j, i = (int(c) + s.start for c, s in zip(voxel, box))
    return (i, j, k), int(count)


def empty_layer_problem(name: str, source_has_labels: bool, shown_has_labels: bool, user_created: bool) -> str | None:
    """What to tell the user about a label layer with nothing to show, or None when all is well. A layer
    the user just created to paint on is empty by design."""
    if shown_has_labels or user_created:
        return None
    if source_has_labels:
        return (f"Label layer '{name}' is empty on this image: its labels fall outside it (different patient "
                f"position or frame of reference?)")
    return f"Label layer '{name}' has no labelled voxels"
