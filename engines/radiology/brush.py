"""Brush rasterisation on a label slice, pure numpy (the session calls it; no Qt, no state).

Positions are in pixel units of the 2-D slice (row, column), pixel ``n``'s centre at ``n``; the radius is in
millimetres and the pixel spacing may differ between rows and columns, so a round brush stays round in the
patient on anisotropic slices.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def paint_disc(target: np.ndarray, centre_rc: Sequence[float], radius_mm: float, spacing_rc: Sequence[float],
               value: int) -> tuple[int, int, int, int] | None:
    """Set every pixel of ``target`` whose centre lies within ``radius_mm`` of ``centre_rc`` to ``value``, in place.

    Returns the touched block (row0, row1, col0, col1), end exclusive, or None when the disc misses the slice."""
    cr, cc = float(centre_rc[0]), float(centre_rc[1])
    sr, sc = float(spacing_rc[0]), float(spacing_rc[1])
    r = max(float(radius_mm), 0.0)
    rows, cols = target.shape
    r0, r1 = max(0, int(np.floor(cr - r / sr))), min(rows, int(np.ceil(cr + r / sr)) + 1)
    c0, c1 = max(0, int(np.floor(cc - r / sc))), min(cols, int(np.ceil(cc + r / sc)) + 1)
    if r0 >= r1 or c0 >= c1:
        return None
    rr, cc_ = np.mgrid[r0:r1, c0:c1]
    disc = ((rr - cr) * sr) ** 2 + ((cc_ - cc) * sc) ** 2 <= r * r
    target[r0:r1, c0:c1][disc] = value
    return r0, r1, c0, c1


def paint_segment(target: np.ndarray, start_rc: Sequence[float] | None, end_rc: Sequence[float], radius_mm: float,
                  spacing_rc: Sequence[float], value: int) -> bool:
    """Paint discs from ``start_rc`` to ``end_rc`` (one disc when ``start_rc`` is None) no more than half a
    radius apart, so a fast drag leaves a continuous stroke, not a row of dots. True when a pixel was touched."""
    end = np.asarray(end_rc, dtype=float)
    if start_rc is None:
        points = [end]
    else:
        start = np.asarray(start_rc, dtype=float)
        step_mm = max(min(spacing_rc), radius_mm / 2.0)
        length_mm = float(np.hypot((end[0] - start[0]) * spacing_rc[0], (end[1] - start[1]) * spacing_rc[1]))
        n = max(1, int(np.ceil(length_mm / step_mm)))
        points = [start + (end - start) * (t / n) for t in range(1, n + 1)]
    touched = False
    for p in points:
        touched |= paint_disc(target, p, radius_mm, spacing_rc, value) is not None
    return touched
