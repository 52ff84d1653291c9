"""Typed engine results: what an engine returns, by kind, instead of dicts with magic keys.

Every result carries the engine's input checks (``checks``: engines.core.checks.Check items), its scores
(``scores``: calibrated confidence, out-of-distribution score and its reference) and where it was computed
(``engine``, ``weights``, ``device``). Views and writers read attributes. During the move from dicts, a
result still answers ``result["key"]`` and ``result.get("key")`` for its fields and for anything in ``extra``;
new code should use the attributes.
"""
from __future__ import annotations

from collections.abc import Mapping as _MappingABC
from dataclasses import dataclass, field, fields
from typing import Any, Iterator, Mapping


@dataclass
class EngineResult:
    """Fields every result has."""

    engine: str = ""
    weights: str | None = None
    device: str = "cpu"
    checks: list = field(default_factory=list)
    #: e.g. {"confidence": 0.91, "ood": {"score": 3.2, "p99": 4.1, "name": "energy"}}
    scores: dict[str, Any] = field(default_factory=dict)
    #: engine-specific values that have no field yet (read through ``result["name"]``)
    extra: dict[str, Any] = field(default_factory=dict)

    # -- the transitional mapping view --------------------------------------------------------------
    def _names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "extra"]

    def __getitem__(self, key: str) -> Any:
        if key != "extra" and key in self._names():
            return getattr(self, key)
        if key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.extra or (key != "extra" and key in self._names()))

    def keys(self) -> list[str]:
        return self._names() + list(self.extra)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[Any]:
        return [self[k] for k in self.keys()]

    def warning_lines(self) -> list[str]:
        """The checks that warn or refuse, one plain line each (for the log, `run` and banners)."""
        from engines.core.checks import warning_lines

        return warning_lines(self)


# views written for dict results test ``isinstance(result, Mapping)``: a typed result passes as one
_MappingABC.register(EngineResult)


@dataclass
class SegmentationResult(EngineResult):
    """A label map on the input's grid, with per-voxel probability of the foreground."""

    label_map: Any = None  # engines.radiology.overlays.LabelMap
    labels: Any = None  # the label array (uint8), same as label_map.labels
    probability: Any = None  # float32 array, or None
    label_names: Mapping[int, str] = field(default_factory=dict)
    geometry: Any = None
    source: Any = None  # the input volume (for SEG references)
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"lesions": 3}
    volumes_ml: dict[str, float] = field(default_factory=dict)


@dataclass
class ImageResult(EngineResult):
    """A derived image (a converted CT kernel, a filtered slice) on the input's grid."""

    volume: Any = None  # engines.radiology.reader.Volume
    source: Any = None


@dataclass
class DetectionResult(EngineResult):
    """Findings with positions and scores (boxes in patient mm, slide detections in level-0 pixels)."""

    findings: list = field(default_factory=list)
    source: Any = None


@dataclass
class TextAnswer(EngineResult):
    """An answer to a question about an image, or a pronunciation: the text and how sure the model is."""

    text: str = ""
    confidence: float | None = None
    alternatives: list[tuple[str, float]] = field(default_factory=list)

