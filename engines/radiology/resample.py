"""Putting overlays onto the shown image's grid, Qt-free (run these in a worker: they touch whole volumes).

Label maps are resampled nearest-neighbour, comparison images linearly, always through patient coordinates
(``Geometry``), never by array shape alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from engines.radiology.geometry import Geometry
from engines.radiology.overlays import LabelMap, label_colour


def as_label_map(labels, geometry: Geometry | None, names: Mapping[int, str] | None,
                 display_geometry: Geometry) -> LabelMap:
    """A ``LabelMap`` from an ndarray ``[k, j, i]`` (with its geometry, the display grid if None), a
    SimpleITK image or a ``LabelMap`` (``names`` are added to its own)."""
    clean = {int(k): str(v) for k, v in (names or {}).items()}
    if isinstance(labels, LabelMap):
        if clean:
            labels.names.update(clean)
            for value in clean:
                labels.colours.setdefault(value, label_colour(value))
        return labels
    if hasattr(labels, "GetSize"):
        return LabelMap.from_sitk(labels, clean)
    arr = np.asarray(labels)
    if arr.ndim == 2:
        arr = arr[None]
    return LabelMap(arr, geometry or display_geometry, clean)


def is_on_grid(array_shape: Sequence[int], geometry: Geometry | None, display_geometry: Geometry,
               display_shape: Sequence[int]) -> bool:
    """Whether an array of ``array_shape`` with ``geometry`` (None: the display grid) needs no resampling."""
    return tuple(array_shape) == tuple(display_shape) and (geometry is None or geometry.same_grid(display_geometry))


@dataclass
class PlacedLabels:
    """A label map put onto the display grid, with what the session needs to know without scanning it again."""

    grid: LabelMap  # on the display grid
    source: LabelMap  # as given (its own geometry), for export
    source_has_labels: bool
    shown_has_labels: bool
    max_label: int


def place_labels(labels, geometry: Geometry | None, names: Mapping[int, str] | None, display_geometry: Geometry,
                 display_shape: Sequence[int]) -> PlacedLabels:
    """Resample a label map (any form :func:`as_label_map` takes) onto the display grid."""
    source = as_label_map(labels, geometry, names, display_geometry)
    grid = source.on_grid(display_geometry, display_shape)
    shown = np.ascontiguousarray(grid.labels)
    grid = LabelMap(shown, grid.geometry, dict(grid.names), dict(grid.colours), grid.source)
    max_label = int(shown.max(initial=0))
    source_has = max_label > 0 if shown is source.labels else bool(np.asarray(source.labels).any())
    return PlacedLabels(grid, source, source_has, max_label > 0, max_label)


def comparison_on_grid(image, geometry: Geometry | None, display_geometry: Geometry,
                       display_shape: Sequence[int]) -> np.ndarray:
    """Real values (float32 ``[k, j, i]``) of a comparison image on the display grid: ``image`` is a reader
    ``Volume``, a SimpleITK image, or an ndarray of real values with its ``geometry`` (the display grid if
    None). Other grids are resampled linearly through patient coordinates (0 outside the image)."""
    if hasattr(image, "voxels"):
        arr, geom = image.real(image.voxels), image.geometry
    elif hasattr(image, "GetSize"):
        import SimpleITK as sitk

        arr, geom = sitk.GetArrayFromImage(image).astype(np.float32), Geometry.from_sitk(image)
        if arr.ndim == 2:
            arr = arr[None]
    else:
        arr, geom = np.asarray(image, dtype=np.float32), geometry or display_geometry
    if not is_on_grid(arr.shape, geom, display_geometry, display_shape):
        import SimpleITK as sitk

        src = geom.to_sitk(np.asarray(arr, dtype=np.float32))
        ref = sitk.Image([int(display_shape[2]), int(display_shape[1]), int(display_shape[0])], sitk.sitkFloat32)
        display_geometry.apply_to_sitk(ref)
        arr = sitk.GetArrayFromImage(sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, 0.0))
    return np.ascontiguousarray(arr, dtype=np.float32)
