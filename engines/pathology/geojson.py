"""Annotations and detections as GeoJSON in QuPath's conventions (level-0 pixel coordinates, y down).

QuPath writes a FeatureCollection (or a bare list) of Features whose ``properties`` hold ``objectType``
("annotation" or "detection"), ``classification`` ({"name", "color": [r, g, b]}), ``name``, ``isLocked``
and ``measurements``. Rectangles and ellipses are written as polygons, as QuPath does; our own
``csiShape`` property lets the workstation restore the tool that drew them.
"""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.atomic import atomic_write_text
from engines.core.engine import EngineError
from engines.pathology.results import Detections

SHAPES = ("rectangle", "ellipse", "polygon", "freehand", "point")
DEFAULT_COLORS = {"positive": (200, 40, 40), "negative": (40, 90, 200), "tumor": (200, 0, 0),
                  "stroma": (150, 200, 150), "region": (0, 160, 160)}


@dataclass(slots=True)
class Annotation:
    """One user annotation in level-0 pixels. ``points`` is the outline (closed implicitly) or one point."""

    shape: str
    points: list[tuple[float, float]]
    name: str = ""
    cls: str = ""
    color: tuple[int, int, int] | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    object_type: str = "annotation"
    measurements: dict[str, float] = field(default_factory=dict)

    def area_px(self) -> float:
        if len(self.points) < 3:
            return 0.0
        x = np.array([p[0] for p in self.points])
        y = np.array([p[1] for p in self.points])
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def rectangle_points(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def ellipse_points(x0: float, y0: float, x1: float, y1: float, n: int = 64) -> list[tuple[float, float]]:
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _color(cls: str, color) -> list[int]:
    if color is not None:
        return [int(c) for c in color]
    if cls in DEFAULT_COLORS:
        return list(DEFAULT_COLORS[cls])
    h = abs(hash(cls)) % 360  # stable within a run only; QuPath keeps its own class colours
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h / 360, 0.7, 0.85)
    return [int(r * 255), int(g * 255), int(b * 255)]


def annotation_to_feature(a: Annotation) -> dict[str, Any]:
    if a.shape == "point":
        geometry = {"type": "Point", "coordinates": [float(a.points[0][0]), float(a.points[0][1])]}
    else:
        ring = [[float(x), float(y)] for x, y in a.points]
        ring.append(ring[0])  # GeoJSON rings are closed
        geometry = {"type": "Polygon", "coordinates": [ring]}
    props: dict[str, Any] = {"objectType": a.object_type, "isLocked": False, "csiShape": a.shape}
    if a.name:
        props["name"] = a.name
    if a.cls:
        props["classification"] = {"name": a.cls, "color": _color(a.cls, a.color)}
    elif a.color is not None:
        props["color"] = [int(c) for c in a.color]
    if a.measurements:
        props["measurements"] = {k: float(v) for k, v in a.measurements.items()}
    return {"type": "Feature", "id": a.id, "geometry": geometry, "properties": props}


def to_feature_collection(annotations: list[Annotation]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [annotation_to_feature(a) for a in annotations]}


def write_geojson(path: Path, annotations: list[Annotation]) -> Path:
    return atomic_write_text(path, json.dumps(to_feature_collection(annotations), indent=1) + "\n")


@dataclass
class ParsedGeoJSON:
    """What a GeoJSON file held: the usable annotations, and one plain sentence per thing set right or left out."""

    annotations: list[Annotation]
    problems: list[str] = field(default_factory=list)
    skipped: int = 0  # features (or parts of multi-geometries) left out

    def summary(self, name: str, limit: int = 3) -> str | None:
        """One sentence for the user's Messages, or None when the file was clean."""
        if not self.problems:
            return None
        shown = "; ".join(self.problems[:limit])
        more = f"; and {len(self.problems) - limit:,} more" if len(self.problems) > limit else ""
        head = (f"{name}: {self.skipped:,} feature(s) could not be used and were left out"
                if self.skipped else f"{name}: some properties could not be read and were replaced")
        return f"{head} ({shown}{more})."


def read_geojson(path: Path) -> list[Annotation]:
    """Read QuPath-style GeoJSON (FeatureCollection, a list of Features, or one Feature).

    Features that cannot be used are left out (``load_geojson`` says which); a file with nothing usable
    raises EngineError naming the first problem.
    """
    return load_geojson(path).annotations


def load_geojson(path: Path) -> ParsedGeoJSON:
    """Read a GeoJSON file into validated annotations with the list of what was wrong in it."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EngineError(f"{path.name}: not a readable GeoJSON file ({exc})") from None
    return parse_geojson(raw, path.name)


def parse_features(raw: Any, name: str = "GeoJSON") -> list[Annotation]:
    return parse_geojson(raw, name).annotations


def feature_list(raw: Any, name: str = "GeoJSON") -> list:
    """The features of a FeatureCollection, a bare list of Features, or one Feature; EngineError otherwise."""
    if isinstance(raw, dict) and raw.get("type") == "FeatureCollection":
        features = raw.get("features", [])
        if not isinstance(features, list):
            raise EngineError(f"{name}: the FeatureCollection's 'features' is not a list")
        return features
    if isinstance(raw, dict) and raw.get("type") == "Feature":
        return [raw]
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict) and "type" in raw:
        raise EngineError(f"{name}: a GeoJSON '{str(raw.get('type'))[:40]}' is not a FeatureCollection, a Feature "
                          f"or a list of Features")
    raise EngineError(f"{name}: expected a GeoJSON FeatureCollection or a list of Features")


class _Bad(ValueError):
    """One feature that cannot be used; the message says why."""


def parse_geojson(raw: Any, name: str = "GeoJSON") -> ParsedGeoJSON:
    """Validate and normalise every feature: geometry (finite numbers, rings of three points or more, known
    types), colour (three numbers, clamped to 0-255), names and classes (text), measurements (finite
    numbers). Unusable features are left out and reported; nothing usable at all is an EngineError."""
    features = feature_list(raw, name)
    out: list[Annotation] = []
    problems: list[str] = []
    skipped = 0
    for i, feat in enumerate(features):
        try:
            anns, notes = _parse_feature(feat, i)
        except _Bad as exc:
            skipped += 1
            problems.append(f"feature {i} {exc}")
            continue
        problems.extend(f"feature {i}: {n}" for n in notes)
        out.extend(anns)
    if features and not out:
        raise EngineError(f"{name}: no usable annotation in the file ({problems[0]})")
    return ParsedGeoJSON(out, problems, skipped)


OBJECT_TYPES = ("annotation", "detection", "cell", "tile", "tma_core")


def _parse_feature(feat: Any, i: int) -> tuple[list[Annotation], list[str]]:
    if not isinstance(feat, dict):
        raise _Bad("is not a GeoJSON Feature object")
    geom = feat.get("geometry")
    if not isinstance(geom, dict):
        raise _Bad("has no geometry")
    notes: list[str] = []
    props = feat.get("properties")
    if not isinstance(props, dict):
        if props is not None:
            notes.append("its properties are not an object and were ignored")
        props = {}
    cls_info = props.get("classification")
    cls, color_raw = "", None
    if isinstance(cls_info, dict):
        cls = _text(cls_info.get("name"), "class name", notes)
        color_raw = cls_info.get("color")
    elif isinstance(cls_info, str):  # older exports: the class name alone
        cls = _text(cls_info, "class name", notes)
    elif cls_info is not None:
        notes.append("its classification is not readable and was ignored")
    if color_raw is None:
        color_raw = props.get("color")
    color = None
    if color_raw is not None:
        color = normalize_color(color_raw)
        if color is None:
            notes.append(f"the colour {_short_repr(color_raw)} is not three numbers; the class colour is used")
    obj_type = props.get("objectType", "annotation")
    if obj_type not in OBJECT_TYPES:
        if obj_type is not None:
            notes.append(f"the object type {_short_repr(obj_type)} is unknown; it is read as an annotation")
        obj_type = "annotation"
    fid = feat.get("id")
    common = dict(name=_text(props.get("name"), "name", notes), cls=cls, color=color, object_type=obj_type,
                  id=str(fid) if isinstance(fid, (str, int)) and not isinstance(fid, bool) and str(fid) else str(uuid.uuid4()),
                  measurements=_measurements(props.get("measurements"), notes))
    gtype, coords = geom.get("type"), geom.get("coordinates")
    if gtype == "Point":
        return [Annotation("point", [_xy(coords)], **common)], notes
    if gtype == "Polygon":
        shape = props.get("csiShape")
        shape = shape if shape in SHAPES and shape != "point" else "polygon"
        return [Annotation(shape, _ring(_first_ring(coords)), **common)], notes
    if gtype == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise _Bad("has an empty MultiPolygon")
        out = []
        for k, poly in enumerate(coords):
            try:
                pts = _ring(_first_ring(poly))
            except _Bad as exc:
                notes.append(f"part {k} {exc} and was left out")
                continue
            out.append(Annotation("polygon", pts, **dict(common, id=common["id"] if not out else str(uuid.uuid4()))))
        if not out:
            raise _Bad("has no usable polygon in its MultiPolygon")
        return out, notes
    if gtype == "LineString":
        pts = _points(coords, 2, "line")
        return [Annotation("freehand", pts, **common)], notes
    if gtype == "MultiPoint":
        pts = _points(coords, 1, "point set")
        return [Annotation("point", [p], **dict(common, id=str(uuid.uuid4()))) for p in pts], notes
    raise _Bad(f"has an unsupported geometry type {_short_repr(gtype)}")


def normalize_color(value: Any) -> tuple[int, int, int] | None:
    """(r, g, b) in 0-255 from [r, g, b] / [r, g, b, a] numbers (clamped) or QuPath's packed integer; None
    for anything else (text, NaN, the wrong length)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):  # QuPath packs ARGB into one (signed) integer
        v = value & 0xFFFFFFFF
        return (v >> 16) & 255, (v >> 8) & 255, v & 255
    if not isinstance(value, (list, tuple)) or len(value) not in (3, 4):
        return None
    out = []
    for c in value[:3]:
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            return None
        out.append(int(min(255, max(0, round(c)))))
    return out[0], out[1], out[2]


def _text(value: Any, what: str, notes: list[str]) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:500]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    notes.append(f"the {what} {_short_repr(value)} is not text and was left empty")
    return ""


def _measurements(value: Any, notes: list[str]) -> dict[str, float]:
    if value is None:
        return {}
    items = None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):  # QuPath 0.2: [{"name": ..., "value": ...}]
        items = [(m.get("name"), m.get("value")) for m in value if isinstance(m, dict)]
    if items is None:
        notes.append("its measurements are not readable and were ignored")
        return {}
    out: dict[str, float] = {}
    dropped = 0
    for k, v in items:
        if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
        elif v is not None:
            dropped += 1
    if dropped:
        notes.append(f"{dropped} measurement(s) that are not finite numbers were left out")
    return out


def _short_repr(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _xy(pt: Any) -> tuple[float, float]:
    if not isinstance(pt, (list, tuple)) or len(pt) < 2:
        raise _Bad("has malformed coordinates (a position is not [x, y])")
    x, y = pt[0], pt[1]
    if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
        raise _Bad("has malformed coordinates (not numbers)")
    x, y = float(x), float(y)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _Bad("has malformed coordinates (NaN or infinite)")
    return x, y


def _points(coords: Any, least: int, what: str) -> list[tuple[float, float]]:
    if not isinstance(coords, list):
        raise _Bad(f"has malformed coordinates (the {what} is not a list of positions)")
    pts = [_xy(p) for p in coords]
    if len(pts) < least:
        raise _Bad(f"has an empty {what}")
    return pts


def _first_ring(coords: Any) -> Any:
    if not isinstance(coords, list):
        raise _Bad("has malformed coordinates (the polygon is not a list of rings)")
    if not coords:
        raise _Bad("has an empty polygon (no rings)")
    return coords[0]


def _ring(coords: Any) -> list[tuple[float, float]]:
    pts = _points(coords, 1, "ring")
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(set(pts)) < 3:
        raise _Bad("has an empty or degenerate ring (fewer than three distinct points)")
    return pts


def detections_to_annotations(dets: Detections, mpp: float | None = None) -> list[Annotation]:
    """Detections as QuPath detection objects (outline when known, else the box), with score measurements."""
    out = []
    for i in range(len(dets)):
        poly = dets.polygons[i] if dets.polygons is not None and len(dets.polygons[i]) >= 3 else None
        pts = [(float(x), float(y)) for x, y in poly] if poly is not None else rectangle_points(*map(float, dets.boxes[i]))
        meas = {"score": float(dets.scores[i])}
        if dets.areas_um2 is not None:
            meas["area_um2"] = float(dets.areas_um2[i])
        out.append(Annotation("polygon" if poly is not None else "rectangle", pts,
                              cls=dets.class_names[int(dets.classes[i])], object_type="detection", measurements=meas))
    return out
