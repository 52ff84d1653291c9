"""The layers a radiology session holds over its image, Qt-free: label maps (with how they are drawn) and
detection boxes. Both live on the open volume's display grid ``[k, j, i]``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False)
class LabelLayer:
    """A label map on the image grid, with how it is drawn. Compared by identity: two layers with the same
    labels are still two layers."""

    name: str
    labels: np.ndarray  # [k, j, i] on the current volume's display grid
    names: dict[int, str]
    colours: dict[int, tuple[int, int, int]]
    visible: bool = True
    opacity: float = 0.45
    outline: bool = False
    hidden_labels: set[int] = field(default_factory=set)
    source: Any = None  # the LabelMap as given (its own geometry), for export
    unsaved: bool = False  # edited by the user since it was last exported
    stats: dict | None = None  # value -> engines.radiology.labelstats.LabelStat, once computed

    _lut: np.ndarray | None = None
    _lut_key: tuple | None = None
    _max_label: int | None = None

    def lut(self) -> np.ndarray:
        """RGBA table by label value (hidden labels transparent); rebuilt only when visibility changes."""
        key = (tuple(sorted(self.hidden_labels)), tuple(sorted(self.colours.items())))
        if self._lut is None or key != self._lut_key:
            if self._max_label is None:
                self._max_label = int(self.labels.max(initial=0))
            n = max(256, self._max_label + 1)
            lut = np.zeros((n, 4), dtype=np.ubyte)
            for value, rgb in self.colours.items():
                if 0 < value < n and value not in self.hidden_labels:
                    lut[value] = (*rgb, 255)
            self._lut, self._lut_key = lut, key
        return self._lut

    def add_label(self, value: int) -> None:
        """Make ``value`` one of the layer's labels (the brush painted a value it did not have)."""
        from engines.radiology.overlays import label_colour

        if value and value not in self.names:
            self.names[value] = f"label {value}"
            self.colours[value] = label_colour(value)
            self._max_label = None
            self._lut = None


@dataclass(eq=False)
class BoxLayer:
    """Detection boxes; their voxel bounds on the shown grid are computed once, so drawing thousands of
    boxes per slice is one vectorized test, not a loop over boxes."""

    name: str
    boxes: list  # engines.radiology.overlays.Box
    threshold: float = 0.5
    visible: bool = True
    lo: np.ndarray | None = None  # (N, 3) min (i, j, k) on the display grid
    hi: np.ndarray | None = None
    scores: np.ndarray | None = None

    def index(self, geometry) -> None:
        bounds = [b.index_bounds(geometry) for b in self.boxes]
        self.lo = np.array([b[0] for b in bounds]).reshape(-1, 3)
        self.hi = np.array([b[1] for b in bounds]).reshape(-1, 3)
        self.scores = np.array([b.score for b in self.boxes], dtype=float)

    def rects_on(self, geometry, axis: int, here: int, h: int, v: int) -> list[tuple[float, float, float, float]]:
        """(h0, v0, h1, v1) in view millimetres of the boxes above the threshold that cut slice ``here`` of
        voxel axis ``axis`` (``h``/``v``: the view's horizontal and vertical voxel axes)."""
        if not self.visible or not self.boxes:
            return []
        if self.lo is None:
            self.index(geometry)
        cut = ((self.scores >= self.threshold) & (self.lo[:, axis] - 0.5 <= here) & (here <= self.hi[:, axis] + 0.5))
        lo, hi = self.lo[cut], self.hi[cut]
        sp = geometry.spacing
        return list(zip(lo[:, h] * sp[h] + sp[h] / 2, lo[:, v] * sp[v] + sp[v] / 2,
                        hi[:, h] * sp[h] + sp[h] / 2, hi[:, v] * sp[v] + sp[v] / 2))


def to_boxes(boxes, geometry) -> list:
    """``overlays.Box`` objects from boxes or dicts with ``min_lps_mm``/``max_lps_mm`` (or ``min_index``/
    ``max_index`` in (i, j, k) of ``geometry``), ``label`` and ``score``."""
    from engines.radiology.overlays import Box

    items = []
    for b in boxes:
        if isinstance(b, Box):
            items.append(b)
        elif "min_lps_mm" in b:
            items.append(Box(tuple(b["min_lps_mm"]), tuple(b["max_lps_mm"]), str(b.get("label", "finding")),
                             float(b.get("score", 1.0))))
        else:
            items.append(Box.from_index(b["min_index"], b["max_index"], geometry, str(b.get("label", "finding")),
                                        float(b.get("score", 1.0))))
    return items


def outline(labels: np.ndarray) -> np.ndarray:
    """Keep only the border pixels of each labelled region of a 2-D label slice (for drawing)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return np.where(edge, labels, 0).astype(labels.dtype, copy=False)
