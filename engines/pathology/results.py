"""What a slide analysis returns: a heatmap and detections in level-0 coordinates, a slide summary, the input
checks and the scores (a typed result, engines.core.results)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.core.results import DetectionResult


@dataclass
class Heatmap:
    """A raster over the slide: ``values[i, j]`` covers level-0 pixels x in [x0 + j*cell, x0 + (j+1)*cell).

    NaN means "not analysed" (background, outside tissue) and is drawn transparent.
    """

    values: np.ndarray  # float32 (rows, cols), probabilities in [0, 1] or NaN
    cell: float  # level-0 pixels per heatmap pixel
    origin: tuple[float, float] = (0.0, 0.0)
    label: str = "probability"

    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in level-0 pixels."""
        rows, cols = self.values.shape
        return (self.origin[0], self.origin[1], self.origin[0] + cols * self.cell, self.origin[1] + rows * self.cell)


@dataclass
class Detections:
    """N objects in level-0 pixels: centroids, boxes, scores, classes and (optionally) outlines."""

    xy: np.ndarray  # float32 (N, 2)
    boxes: np.ndarray  # float32 (N, 4) x0, y0, x1, y1
    scores: np.ndarray  # float32 (N,)
    classes: np.ndarray  # int16 (N,)
    class_names: list[str] = field(default_factory=lambda: ["positive"])
    polygons: list[np.ndarray] | None = None  # each float32 (k, 2), level-0 pixels
    areas_um2: np.ndarray | None = None

    @classmethod
    def empty(cls, class_names: list[str] | None = None) -> "Detections":
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int16), class_names or ["positive"], [], np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @classmethod
    def concat(cls, parts: list["Detections"], class_names: list[str]) -> "Detections":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(class_names)
        polys = None
        if all(p.polygons is not None for p in parts):
            polys = [poly for p in parts for poly in p.polygons]
        areas = None
        if all(p.areas_um2 is not None for p in parts):
            areas = np.concatenate([p.areas_um2 for p in parts])
        return cls(np.concatenate([p.xy for p in parts]), np.concatenate([p.boxes for p in parts]),
                   np.concatenate([p.scores for p in parts]), np.concatenate([p.classes for p in parts]),
                   class_names, polys, areas)


@dataclass(init=False, eq=False)
class SlideAnalysis(DetectionResult):
    """The result of one engine on one slide, ready for a view to draw and a pathologist to read.

    A typed engine result (engines.core.results.DetectionResult): besides the slide's heatmap, detections and
    summary it carries the input checks, the scores (``confidence``: the mean calibrated score of the
    detections; ``ood``: the network's out-of-distribution score against its card) and where it ran.
    The detections live in ``detections`` (level-0 pixels); ``findings`` stays for the reader's findings.
    """

    engine_id: str = ""
    slide_path: str = ""
    dimensions: tuple[int, int] = (0, 0)
    mpp: float | None = None
    heatmap: Heatmap | None = None
    detections: Detections | None = None
    tissue_mask: np.ndarray | None = None  # bool, thumbnail grid
    tissue_cell: float = 1.0  # level-0 pixels per tissue-mask pixel
    summary: dict[str, Any] = field(default_factory=dict)

    def __init__(self, engine_id: str, slide_path: str, dimensions: tuple[int, int], mpp: float | None,
                 heatmap: Heatmap, detections: Detections, tissue_mask: np.ndarray, tissue_cell: float,
                 summary: dict[str, Any] | None = None, checks: list | None = None, *, weights: str | None = None,
                 device: str = "cpu", scores: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                 findings: list | None = None, source: Any = None) -> None:
        DetectionResult.__init__(self, engine=engine_id, weights=weights, device=device, checks=list(checks or []),
                                 scores=dict(scores or {}), extra=dict(extra or {}), findings=list(findings or []),
                                 source=source)
        self.engine_id, self.slide_path, self.dimensions, self.mpp = engine_id, slide_path, dimensions, mpp
        self.heatmap, self.detections, self.tissue_mask, self.tissue_cell = heatmap, detections, tissue_mask, \
            tissue_cell
        self.summary = dict(summary or {})
