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


@dataclass
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


def read_geojson(path: Path) -> list[Annotation]:
    """Read QuPath-style GeoJSON (FeatureCollection, a list of Features, or one Feature)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{path.name}: not a readable GeoJSON file ({exc})") from None
    return parse_features(raw, path.name)


def parse_features(raw: Any, name: str = "GeoJSON") -> list[Annotation]:
    if isinstance(raw, dict) and raw.get("type") == "FeatureCollection":
        features = raw.get("features", [])
    elif isinstance(raw, dict) and raw.get("type") == "Feature":
        features = [raw]
    elif isinstance(raw, list):
        features = raw
    else:
        raise EngineError(f"{name}: expected a GeoJSON FeatureCollection or a list of Features")
    out: list[Annotation] = []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict) or not isinstance(feat.get("geometry"), dict):
            raise EngineError(f"{name}: feature {i} has no geometry")
        props = feat.get("properties") or {}
        geom = feat["geometry"]
        cls_info = props.get("classification") or {}
        cls = cls_info.get("name", "") if isinstance(cls_info, dict) else ""
        color = cls_info.get("color") if isinstance(cls_info, dict) else None
        color = tuple(color) if color else (tuple(props["color"]) if props.get("color") else None)
        obj_type = props.get("objectType", "annotation")
        common = dict(name=props.get("name", ""), cls=cls, color=color, object_type=obj_type,
                      id=str(feat.get("id") or uuid.uuid4()), measurements=dict(props.get("measurements") or {}))
        gtype, coords = geom.get("type"), geom.get("coordinates")
        try:
            if gtype == "Point":
                out.append(Annotation("point", [(float(coords[0]), float(coords[1]))], **common))
            elif gtype == "Polygon":
                out.append(Annotation(props.get("csiShape", "polygon"), _ring(coords[0]), **common))
            elif gtype == "MultiPolygon":
                for k, poly in enumerate(coords):
                    c = dict(common, id=common["id"] if k == 0 else str(uuid.uuid4()))
                    out.append(Annotation("polygon", _ring(poly[0]), **c))
            elif gtype == "LineString":
                out.append(Annotation("freehand", [(float(x), float(y)) for x, y in coords], **common))
            elif gtype == "MultiPoint":
                for x, y in coords:
                    out.append(Annotation("point", [(float(x), float(y))], **dict(common, id=str(uuid.uuid4()))))
            else:
                raise EngineError(f"{name}: feature {i} has an unsupported geometry type '{gtype}'")
        except (TypeError, ValueError, IndexError):
            raise EngineError(f"{name}: feature {i} has malformed coordinates") from None
    return out


def _ring(coords) -> list[tuple[float, float]]:
    pts = [(float(x), float(y)) for x, y, *_ in coords]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
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
