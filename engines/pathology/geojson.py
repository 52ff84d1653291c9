"""Annotations and detections as GeoJSON in QuPath's conventions (level-0 pixel coordinates, y down).

QuPath writes a FeatureCollection (or a bare list) of Features whose ``properties`` hold ``objectType``
("annotation" or "detection"), ``classification`` ({"name", "color": [r, g, b]}), ``name``, ``isLocked``
and ``measurements``. Rectangles and ellipses are written as polygons, as QuPath does; our own
``csiShape`` property lets the workstation restore the tool that drew them.
"""
from __future__ import annotations

import json
import math
import re
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
    unlisted: int = 0  # problems counted but not kept as sentences (a file with a million bad features)

    def summary(self, name: str, limit: int = 3) -> str | None:
        """One sentence for the user's Messages, or None when the file was clean."""
        if not self.problems:
            return None
        shown = "; ".join(self.problems[:limit])
        total = len(self.problems) + self.unlisted
        more = f"; and {total - limit:,} more" if total > limit else ""
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


# -- columnar annotations ---------------------------------------------------------------------------------------
# A million annotations as a million Python objects took seconds to build and gigabytes to hold. A table keeps
# them as a few numpy arrays (one flat coordinate array with per-row offsets, codes for shape, type and class,
# text packed as UTF-8 with offsets); an Annotation object is made only for a row that is asked for.

_HASH_P = np.uint64(1099511628211)
_HASH_LEN = np.uint64(0x9E3779B97F4A7C15)


def pack_strings(strings) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 blob, int64 offsets of n + 1) of the strings as UTF-8."""
    enc = [s.encode("utf-8", "surrogatepass") for s in strings]
    off = np.zeros(len(enc) + 1, np.int64)
    if enc:
        np.cumsum(np.fromiter(map(len, enc), np.int64, len(enc)), out=off[1:])
    return np.frombuffer(b"".join(enc), np.uint8).copy(), off


def string_keys(blob: np.ndarray, off: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """A 64-bit hash of each packed string, computed in numpy (no Python object per string); equal strings have
    equal keys in every process, so a key found is checked against the text itself."""
    n = len(off) - 1
    out = np.zeros(n, np.uint64)
    if n == 0:
        return out
    lens = np.diff(off)
    maxlen = int(lens.max()) if n else 0
    pows = np.ones(max(maxlen, 1), np.uint64)
    if maxlen > 1:
        pows[1:] = np.cumprod(np.full(maxlen - 1, _HASH_P, np.uint64))
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        a, b = int(off[s]), int(off[e])
        if b == a:
            continue
        ln = lens[s:e]
        pos = np.arange(b - a, dtype=np.int64) - np.repeat(off[s:e] - a, ln)
        vals = np.append(blob[a:b].astype(np.uint64) * pows[pos], np.uint64(0))
        sums = np.add.reduceat(vals, off[s:e] - a)
        out[s:e] = np.where(ln == 0, np.uint64(0), sums)
    return out ^ (lens.astype(np.uint64) * _HASH_LEN)


def string_key(text: str) -> int:
    """:func:`string_keys` of one string."""
    return int(string_keys(*pack_strings([text]))[0])


def _ragged_take(off: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices into the flat array, new offsets) of the given rows of a ragged array."""
    rows = np.asarray(rows, np.int64)
    lens = off[rows + 1] - off[rows]
    new_off = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lens, out=new_off[1:])
    idx = np.arange(int(new_off[-1]), dtype=np.int64) + np.repeat(off[rows] - new_off[:-1], lens)
    return idx, new_off


def _unpack(blob: np.ndarray, off: np.ndarray, i: int) -> str:
    return blob[int(off[i]):int(off[i + 1])].tobytes().decode("utf-8", "replace")


@dataclass
class AnnotationTable:
    """Annotations as columns, row for row; immutable once made (a store refers to its rows)."""

    shape: np.ndarray  # uint8 codes into SHAPES
    object_type: np.ndarray  # uint8 codes into OBJECT_TYPES
    offsets: np.ndarray  # int64, n + 1: row i's points are coords[offsets[i]:offsets[i + 1]]
    coords: np.ndarray  # float64 (m, 2) level-0 x, y
    color: np.ndarray  # int16 (n, 3); -1 where the annotation has no colour of its own
    cls: np.ndarray  # int32 codes into classes ("" is a class too)
    classes: list[str]
    name_blob: np.ndarray
    name_off: np.ndarray
    id_blob: np.ndarray
    id_off: np.ndarray
    measurements: dict[int, dict[str, float]] = field(default_factory=dict)  # only the rows that have some
    _bounds: np.ndarray | None = field(default=None, repr=False)
    _keys: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.shape.shape[0])

    @classmethod
    def empty(cls) -> "AnnotationTable":
        return cls.from_annotations([])

    @classmethod
    def from_annotations(cls, items) -> "AnnotationTable":
        items = list(items)
        classes = sorted({a.cls for a in items} | {""})
        code = {c: i for i, c in enumerate(classes)}
        shape_code = {s: i for i, s in enumerate(SHAPES)}
        type_code = {t: i for i, t in enumerate(OBJECT_TYPES)}
        n = len(items)
        off = np.zeros(n + 1, np.int64)
        if n:
            np.cumsum(np.fromiter((len(a.points) for a in items), np.int64, n), out=off[1:])
        flat = [c for a in items for p in a.points for c in p[:2]]
        color = np.full((n, 3), -1, np.int16)
        for i, a in enumerate(items):
            if a.color is not None:
                color[i] = a.color
        names_blob, names_off = pack_strings(a.name for a in items)
        ids_blob, ids_off = pack_strings(a.id for a in items)
        return cls(np.fromiter((shape_code.get(a.shape, 2) for a in items), np.uint8, n),
                   np.fromiter((type_code.get(a.object_type, 0) for a in items), np.uint8, n),
                   off, np.asarray(flat, np.float64).reshape(-1, 2), color,
                   np.fromiter((code[a.cls] for a in items), np.int32, n), classes,
                   names_blob, names_off, ids_blob, ids_off,
                   {i: dict(a.measurements) for i, a in enumerate(items) if a.measurements})

    @staticmethod
    def concat(tables: list["AnnotationTable"]) -> "AnnotationTable":
        tables = [t for t in tables if len(t)] or [AnnotationTable.empty()]
        if len(tables) == 1:
            return tables[0]
        classes = sorted(set().union(*[t.classes for t in tables]))
        code = {c: i for i, c in enumerate(classes)}

        def cat_off(offs):
            out, base = [np.zeros(1, np.int64)], 0
            for o in offs:
                out.append(o[1:] + base)
                base += int(o[-1])
            return np.concatenate(out)

        meas, base = {}, 0
        for t in tables:
            meas.update({base + k: v for k, v in t.measurements.items()})
            base += len(t)
        return AnnotationTable(
            np.concatenate([t.shape for t in tables]), np.concatenate([t.object_type for t in tables]),
            cat_off([t.offsets for t in tables]), np.concatenate([t.coords for t in tables]),
            np.concatenate([t.color for t in tables]),
            np.concatenate([np.asarray([code[c] for c in t.classes], np.int32)[t.cls] for t in tables]), classes,
            np.concatenate([t.name_blob for t in tables]), cat_off([t.name_off for t in tables]),
            np.concatenate([t.id_blob for t in tables]), cat_off([t.id_off for t in tables]), meas)

    def take(self, rows) -> "AnnotationTable":
        """The given rows, in that order, as a new table."""
        rows = np.asarray(rows, np.int64)
        ci, coff = _ragged_take(self.offsets, rows)
        ni, noff = _ragged_take(self.name_off, rows)
        ii, ioff = _ragged_take(self.id_off, rows)
        meas = {}
        if self.measurements:
            meas = {j: self.measurements[int(r)] for j, r in enumerate(rows.tolist()) if r in self.measurements}
        return AnnotationTable(self.shape[rows], self.object_type[rows], coff, self.coords[ci], self.color[rows],
                               self.cls[rows], list(self.classes), self.name_blob[ni], noff, self.id_blob[ii], ioff,
                               meas)

    # -- rows ----------------------------------------------------------------------------------------------
    def points(self, i: int) -> np.ndarray:
        return self.coords[int(self.offsets[i]):int(self.offsets[i + 1])]

    def name(self, i: int) -> str:
        return _unpack(self.name_blob, self.name_off, i)

    def id(self, i: int) -> str:
        return _unpack(self.id_blob, self.id_off, i)

    def cls_name(self, i: int) -> str:
        return self.classes[int(self.cls[i])]

    def shape_name(self, i: int) -> str:
        return SHAPES[int(self.shape[i])]

    def color_of(self, i: int) -> tuple[int, int, int] | None:
        c = self.color[i]
        return None if c[0] < 0 else (int(c[0]), int(c[1]), int(c[2]))

    def area_px(self, i: int) -> float:
        pts = self.points(i)
        if len(pts) < 3:
            return 0.0
        x, y = pts[:, 0], pts[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)

    def annotation(self, i: int) -> Annotation:
        """Row ``i`` as an Annotation (a new object each time)."""
        return Annotation(self.shape_name(i), [tuple(p) for p in self.points(i).tolist()], name=self.name(i),
                          cls=self.cls_name(i), color=self.color_of(i), id=self.id(i),
                          object_type=OBJECT_TYPES[int(self.object_type[i])],
                          measurements=dict(self.measurements.get(int(i), {})))

    def annotations(self) -> list[Annotation]:
        return [self.annotation(i) for i in range(len(self))]

    @property
    def bounds(self) -> np.ndarray:
        """(n, 4) float64 level-0 boxes x0, y0, x1, y1 (every row has a point)."""
        if self._bounds is None:
            n = len(self)
            b = np.full((n, 4), np.nan)
            if n:
                starts = self.offsets[:-1]
                b[:, 0] = np.minimum.reduceat(self.coords[:, 0], starts)
                b[:, 1] = np.minimum.reduceat(self.coords[:, 1], starts)
                b[:, 2] = np.maximum.reduceat(self.coords[:, 0], starts)
                b[:, 3] = np.maximum.reduceat(self.coords[:, 1], starts)
            self._bounds = b
        return self._bounds

    @property
    def keys(self) -> np.ndarray:
        """:func:`string_keys` of the ids (for finding a row by its id without a Python object per row)."""
        if self._keys is None:
            self._keys = string_keys(self.id_blob, self.id_off)
        return self._keys

    # -- the compact autosave -------------------------------------------------------------------------------
    ARRAYS = ("shape", "object_type", "offsets", "coords", "color", "cls", "name_blob", "name_off", "id_blob",
              "id_off")

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, JSON-able metadata) for an .npz autosave."""
        return ({k: getattr(self, k) for k in self.ARRAYS},
                {"classes": list(self.classes), "shapes": list(SHAPES), "object_types": list(OBJECT_TYPES),
                 "measurements": {str(k): v for k, v in self.measurements.items()}})

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> "AnnotationTable":
        """Rebuild a table from :meth:`to_arrays`, checking everything at once (numpy, no loop per row);
        ValueError names the first problem."""
        missing = [k for k in cls.ARRAYS if k not in arrays]
        if missing:
            raise ValueError(f"the arrays {', '.join(missing)} are missing")
        a = {k: np.asarray(arrays[k]) for k in cls.ARRAYS}
        want = {"shape": np.uint8, "object_type": np.uint8, "offsets": np.int64, "coords": np.float64,
                "color": np.int16, "cls": np.int32, "name_blob": np.uint8, "name_off": np.int64,
                "id_blob": np.uint8, "id_off": np.int64}
        for k, dt in want.items():
            if a[k].dtype != dt:
                raise ValueError(f"the array {k} is {a[k].dtype}, not {np.dtype(dt)}")
        n = a["shape"].shape[0]
        if a["shape"].ndim != 1 or a["object_type"].shape != (n,) or a["cls"].shape != (n,) \
                or a["color"].shape != (n, 3) or a["coords"].ndim != 2 or a["coords"].shape[1:] != (2,):
            raise ValueError("the arrays do not have one row per annotation")
        for k, total in (("offsets", len(a["coords"])), ("name_off", len(a["name_blob"])),
                         ("id_off", len(a["id_blob"]))):
            o = a[k]
            if o.shape != (n + 1,) or (n + 1 and (o[0] != 0 or o[-1] != total)) or np.any(np.diff(o) < 0):
                raise ValueError(f"the offsets {k} do not fit their data")
        classes = meta.get("classes") if isinstance(meta, dict) else None
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or "" not in classes:
            raise ValueError("the class list is missing or not text")
        if meta.get("shapes") != list(SHAPES) or meta.get("object_types") != list(OBJECT_TYPES):
            raise ValueError("the shape or object-type codes are not this version's")
        if n and (a["shape"].max() >= len(SHAPES) or a["object_type"].max() >= len(OBJECT_TYPES)
                  or a["cls"].min() < 0 or a["cls"].max() >= len(classes)):
            raise ValueError("a shape, object type or class code is out of range")
        if not np.isfinite(a["coords"]).all():
            raise ValueError("some coordinates are NaN or infinite")
        sizes = np.diff(a["offsets"])
        is_point = a["shape"] == SHAPES.index("point")
        if np.any(sizes < 1) or np.any(~is_point & (sizes < 3)):
            raise ValueError("some outlines have fewer than three points")
        if np.any((a["color"] < -1) | (a["color"] > 255)) or np.any((a["color"] < 0).any(1) != (a["color"] < 0).all(1)):
            raise ValueError("some colours are out of range")
        raw_meas = meta.get("measurements", {})
        if not isinstance(raw_meas, dict):
            raise ValueError("the measurements are not readable")
        meas: dict[int, dict[str, float]] = {}
        for k, v in raw_meas.items():
            if not (isinstance(k, str) and k.isdigit() and int(k) < n and isinstance(v, dict)):
                raise ValueError("the measurements do not name rows")
            row = {m: float(x) for m, x in v.items() if isinstance(m, str) and isinstance(x, (int, float))
                   and not isinstance(x, bool) and math.isfinite(x)}
            if row:
                meas[int(k)] = row
        return cls(a["shape"], a["object_type"], a["offsets"], a["coords"], a["color"], a["cls"], list(classes),
                   a["name_blob"], a["name_off"], a["id_blob"], a["id_off"], meas)


# -- reading large files without holding the GUI ------------------------------------------------------------------
_WS = re.compile(r"[ \t\n\r]*")
KEEP_PROBLEMS = 500


def _json_error(name: str, exc: Exception) -> EngineError:
    return EngineError(f"{name}: not a readable GeoJSON file ({exc})")


def iter_feature_values(text: str, name: str = "GeoJSON"):
    """The features of a FeatureCollection, a bare list or one Feature, decoded one at a time from ``text``
    (each decode is short, so other threads run in between). Raises EngineError like :func:`feature_list`."""
    dec = json.JSONDecoder()
    end = [0]
    i = _WS.match(text, 0).end()
    if text.startswith("[", i):
        yield from _iter_array(text, i, dec, end, name)
        _expect_end(text, end[0], name)
        return
    if not text.startswith("{", i):
        try:
            raw, stop = dec.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise _json_error(name, exc) from None
        _expect_end(text, stop, name)
        yield from feature_list(raw, name)  # raises the plain sentence for anything but a list
        return
    # an object read key by key: "features" is streamed, every other value is small and decoded whole
    others: dict = {}
    streamed = False
    i = _WS.match(text, i + 1).end()
    if text.startswith("}", i):
        i += 1
    else:
        while True:
            try:
                key, i = dec.raw_decode(text, i)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise _json_error(name, exc) from None
            i = _WS.match(text, i).end()
            if not isinstance(key, str) or not text.startswith(":", i):
                raise _json_error(name, ValueError(f"expected a key and ':' (char {i})"))
            i = _WS.match(text, i + 1).end()
            if key == "features" and text.startswith("[", i) and others.get("type", "FeatureCollection") == \
                    "FeatureCollection" and not streamed:
                yield from _iter_array(text, i, dec, end, name)
                i, streamed = end[0], True
            else:
                try:
                    others[key], i = dec.raw_decode(text, i)
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise _json_error(name, exc) from None
            i = _WS.match(text, i).end()
            if text.startswith(",", i):
                i = _WS.match(text, i + 1).end()
                continue
            if text.startswith("}", i):
                i += 1
                break
            raise _json_error(name, ValueError(f"expected ',' or '}}' (char {i})"))
    _expect_end(text, i, name)
    kind = others.get("type")
    if streamed and kind == "FeatureCollection":
        return
    if streamed:  # "features" came before a "type" that is not a FeatureCollection
        feature_list({k: v for k, v in others.items() if k != "features"}, name)
        raise EngineError(f"{name}: expected a GeoJSON FeatureCollection or a list of Features")
    if kind == "Feature":
        try:
            yield json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _json_error(name, exc) from None
        return
    yield from feature_list(others, name)


def _iter_array(text: str, i: int, dec, end: list, name: str):
    """The values of the JSON array at text[i] == '['; its end position is left in ``end[0]``."""
    i = _WS.match(text, i + 1).end()
    if text.startswith("]", i):
        end[0] = i + 1
        return
    while True:
        try:
            value, i = dec.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise _json_error(name, exc) from None
        yield value
        i = _WS.match(text, i).end()
        if text.startswith(",", i):
            i = _WS.match(text, i + 1).end()
            continue
        if text.startswith("]", i):
            end[0] = i + 1
            return
        raise _json_error(name, ValueError(f"expected ',' or ']' (char {i})"))


def _expect_end(text: str, i: int, name: str) -> None:
    if _WS.match(text, i).end() != len(text):
        raise _json_error(name, ValueError(f"extra data after the JSON value (char {i})"))


def parse_geojson_table(text: str, name: str = "GeoJSON", *, progress=None, cancel=None,
                        chunk: int = 20000) -> tuple[AnnotationTable, ParsedGeoJSON]:
    """Validate every feature of a GeoJSON text as :func:`parse_geojson` does, into a columnar table, a chunk
    at a time (the objects of one chunk are dropped once it is a table, so memory stays near the table's).
    ``progress(fraction, message)`` is told the share of the text read; ``cancel.raise_if_cancelled()`` is
    called between chunks, which also let the GUI thread run."""
    import time

    tables: list[AnnotationTable] = []
    parsed = ParsedGeoJSON([])
    batch: list[Annotation] = []
    n_features = 0
    for i, feat in enumerate(iter_feature_values(text, name)):
        n_features += 1
        try:
            anns, notes = _parse_feature(feat, i)
        except _Bad as exc:
            parsed.skipped += 1
            _note(parsed, f"feature {i} {exc}")
        else:
            for n in notes:
                _note(parsed, f"feature {i}: {n}")
            batch.extend(anns)
        if n_features % chunk == 0:
            tables.append(AnnotationTable.from_annotations(batch))
            batch = []
            if cancel is not None:
                cancel.raise_if_cancelled()
            if progress is not None:
                progress(None, f"read {n_features:,} features of {name}")
            time.sleep(0)
    tables.append(AnnotationTable.from_annotations(batch))
    table = AnnotationTable.concat(tables)
    if n_features and not len(table):
        raise EngineError(f"{name}: no usable annotation in the file ({parsed.problems[0]})")
    return table, parsed


def _note(parsed: ParsedGeoJSON, text: str) -> None:
    if len(parsed.problems) < KEEP_PROBLEMS:
        parsed.problems.append(text)
    else:
        parsed.unlisted += 1


def load_geojson_table(path: Path, *, progress=None, cancel=None) -> tuple[AnnotationTable, ParsedGeoJSON]:
    """:func:`parse_geojson_table` of a file; an unreadable file is an EngineError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"{path.name}: not a readable GeoJSON file ({exc})") from None
    return parse_geojson_table(text, path.name, progress=progress, cancel=cancel)
