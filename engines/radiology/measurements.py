"""Rulers and ROIs drawn on a slice, Qt-free: each belongs to the plane and slice it was drawn on.

A view speaks in its own millimetres: ``h`` along the image's horizontal voxel axis, ``v`` along the
vertical one, 0 at the first voxel's edge (so voxel ``n``'s centre is at ``(n + 0.5) * spacing``). The
functions here turn such points into continuous voxel indices ``(i, j, k)`` and patient coordinates (LPS mm)
through the volume's ``Geometry``, and measure there: a ruler's length is the patient-space distance, an ROI
is snapped to whole pixels so its statistics describe exactly the rectangle that is drawn.

``MeasurementSet`` holds them with listeners (``fn(event, measurement)``, event ``"added"``, ``"removed"``
or ``"cleared"``), like the other session models of the workstation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from engines.radiology.geometry import Geometry

# plane -> (voxel axis normal to it, horizontal voxel axis, vertical voxel axis); axes 0, 1, 2 = i, j, k
PLANE_AXES: dict[str, tuple[int, int, int]] = {"axial": (2, 0, 1), "coronal": (1, 0, 2), "sagittal": (0, 1, 2)}


@dataclass(frozen=True)
class RoiStats:
    """Real values (HU for CT) of the pixels inside an ROI."""

    mean: float
    sd: float
    min: float
    max: float
    area_mm2: float
    n: int


@dataclass
class Measurement:
    """A ruler or an ROI on one slice of one plane.

    ``start_ijk``/``end_ijk`` are continuous voxel indices (a ruler's end points; an ROI's opposite corners,
    on pixel edges), ``start_lps``/``end_lps`` the same points in patient millimetres."""

    kind: str  # "ruler" or "roi"
    plane: str
    slice_index: int
    start_ijk: tuple[float, float, float]
    end_ijk: tuple[float, float, float]
    start_lps: tuple[float, float, float]
    end_lps: tuple[float, float, float]
    length_mm: float | None = None
    stats: RoiStats | None = None
    unit: str = ""
    name: str = ""
    id: int = 0

    def is_on(self, plane: str, slice_index: int) -> bool:
        return self.plane == plane and self.slice_index == slice_index

    def value_text(self) -> str:
        if self.kind == "ruler":
            return f"{self.length_mm:.1f} mm"
        s = self.stats
        if s is None:
            return "no pixels"
        unit = f" {self.unit}" if self.unit else ""
        return (f"mean {s.mean:.1f} SD {s.sd:.1f} min {s.min:.0f} max {s.max:.0f}{unit}, "
                f"area {s.area_mm2:.1f} mm² ({s.n} px)")

    def view_points_mm(self, spacing: Sequence[float]) -> tuple[tuple[float, float], tuple[float, float]]:
        """The two points in the millimetres of the view of its plane (for drawing)."""
        _normal, h, v = PLANE_AXES[self.plane]
        return tuple(((p[h] + 0.5) * spacing[h], (p[v] + 0.5) * spacing[v])  # type: ignore[return-value]
                     for p in (self.start_ijk, self.end_ijk))


def view_mm_to_index(plane: str, slice_index: int, h_mm: float, v_mm: float,
                     spacing: Sequence[float]) -> tuple[float, float, float]:
    """The continuous voxel index (i, j, k) of a point of a plane's view on the given slice."""
    normal, h, v = PLANE_AXES[plane]
    out = [0.0, 0.0, 0.0]
    out[normal] = float(slice_index)
    out[h] = h_mm / spacing[h] - 0.5
    out[v] = v_mm / spacing[v] - 0.5
    return tuple(out)  # type: ignore[return-value]


def _lps(geometry: Geometry, ijk) -> tuple[float, float, float]:
    return tuple(float(x) for x in geometry.index_to_lps(ijk))  # type: ignore[return-value]


def make_ruler(plane: str, slice_index: int, a_mm: Sequence[float], b_mm: Sequence[float],
               geometry: Geometry) -> Measurement:
    """A ruler between two view points; its length is their distance in patient space."""
    a = view_mm_to_index(plane, slice_index, a_mm[0], a_mm[1], geometry.spacing)
    b = view_mm_to_index(plane, slice_index, b_mm[0], b_mm[1], geometry.spacing)
    pa, pb = _lps(geometry, a), _lps(geometry, b)
    length = float(np.linalg.norm(np.subtract(pb, pa)))
    return Measurement("ruler", plane, int(slice_index), a, b, pa, pb, length_mm=length)


def roi_pixels(plane: str, a_mm: Sequence[float], b_mm: Sequence[float], spacing: Sequence[float],
               shape_rc: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel block (row0, row1, col0, col1), end exclusive, that a dragged rectangle covers on a slice
    of ``shape_rc``: every pixel it touches, at least one, clipped to the image."""
    _normal, h, v = PLANE_AXES[plane]
    rows, cols = shape_rc

    def span(x0: float, x1: float, step: float, n: int) -> tuple[int, int]:
        lo, hi = sorted((x0 / step, x1 / step))
        c0 = int(np.clip(np.floor(lo), 0, max(0, n - 1)))
        c1 = int(np.clip(np.ceil(hi), c0 + 1, n))
        return c0, c1

    c0, c1 = span(a_mm[0], b_mm[0], spacing[h], cols)
    r0, r1 = span(a_mm[1], b_mm[1], spacing[v], rows)
    return r0, r1, c0, c1


def make_roi(plane: str, slice_index: int, a_mm: Sequence[float], b_mm: Sequence[float], geometry: Geometry,
             slice_real: np.ndarray, unit: str = "") -> Measurement:
    """An ROI over the pixels a dragged rectangle covers on ``slice_real`` (the slice of ``plane`` at
    ``slice_index`` in real values, rows along the view's vertical axis). The stored corners are the
    snapped pixel edges, so what is drawn is what is measured."""
    _normal, h, v = PLANE_AXES[plane]
    r0, r1, c0, c1 = roi_pixels(plane, a_mm, b_mm, geometry.spacing, slice_real.shape)
    region = np.asarray(slice_real[r0:r1, c0:c1], dtype=np.float64)
    sh, sv = geometry.spacing[h], geometry.spacing[v]
    stats = None
    if region.size:
        stats = RoiStats(float(region.mean()), float(region.std()), float(region.min()), float(region.max()),
                         float(region.size * sh * sv), int(region.size))
    a = view_mm_to_index(plane, slice_index, c0 * sh, r0 * sv, geometry.spacing)
    b = view_mm_to_index(plane, slice_index, c1 * sh, r1 * sv, geometry.spacing)
    return Measurement("roi", plane, int(slice_index), a, b, _lps(geometry, a), _lps(geometry, b), stats=stats,
                       unit=unit)


Listener = Callable[[str, "Measurement | None"], None]


@dataclass
class MeasurementSet:
    """The measurements of the open image, in the order they were drawn."""

    items: list[Measurement] = field(default_factory=list)
    _listeners: list[Listener] = field(default_factory=list, repr=False)
    _next_id: int = 1
    _counts: dict[str, int] = field(default_factory=dict, repr=False)

    def subscribe(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def _emit(self, event: str, m: Measurement | None) -> None:
        for fn in list(self._listeners):
            fn(event, m)

    def add(self, m: Measurement) -> Measurement:
        """Keep ``m``, giving it an id and (if unnamed) a name such as 'Ruler 2'."""
        m.id = self._next_id
        self._next_id += 1
        if not m.name:
            n = self._counts.get(m.kind, 0) + 1
            self._counts[m.kind] = n
            m.name = f"{'Ruler' if m.kind == 'ruler' else 'ROI'} {n}"
        self.items.append(m)
        self._emit("added", m)
        return m

    def remove(self, measurement_id: int) -> Measurement | None:
        for n, m in enumerate(self.items):
            if m.id == measurement_id:
                del self.items[n]
                self._emit("removed", m)
                return m
        return None

    def clear(self) -> None:
        """Forget every measurement (a new image); the numbering starts again."""
        self.items.clear()
        self._counts.clear()
        self._emit("cleared", None)

    def get(self, measurement_id: int) -> Measurement | None:
        return next((m for m in self.items if m.id == measurement_id), None)

    def on_slice(self, plane: str, slice_index: int) -> list[Measurement]:
        return [m for m in self.items if m.is_on(plane, slice_index)]

    def __iter__(self) -> Iterator[Measurement]:
        return iter(list(self.items))

    def __len__(self) -> int:
        return len(self.items)
