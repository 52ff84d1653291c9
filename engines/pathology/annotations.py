"""The annotation store of one slide: add/remove/edit with undo and redo, autosave path, GeoJSON I/O. No Qt."""
from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Callable

import numpy as np

from engines.core.engine import EngineError
from engines.core.history import UndoHistory
from engines.core.paths import data_dir
from engines.pathology.geojson import (Annotation, AnnotationTable, ParsedGeoJSON, load_geojson, parse_geojson,
                                       read_geojson, string_key, to_feature_collection, write_geojson)


AUTOSAVE_KIND = "pathology"
AUTOSAVE_SCHEMA = 1


def autosave_path(slide_path: str | Path) -> Path:
    """Where a slide's annotations are autosaved: the shared autosave folder, keyed by the slide's resolved path."""
    from engines.core.autosave import autosave_path as core_autosave_path

    return core_autosave_path(AUTOSAVE_KIND, slide_path)


def legacy_autosave_path(slide_path: str | Path) -> Path:
    """Where versions before the shared autosave service kept them (read once, when no new autosave exists)."""
    p = Path(slide_path).expanduser().resolve()
    key = hashlib.sha1(str(p).encode("utf-8")).hexdigest()[:16]
    return data_dir() / "pathology" / "annotations" / f"{p.stem}-{key}.geojson"


def autosave_payload(slide_path: str | Path, items: list[Annotation]) -> dict:
    """The autosave's data: a GeoJSON FeatureCollection (so it is also readable by QuPath) naming its slide."""
    return {"slide": Path(slide_path).name, **to_feature_collection(items)}


COMPACT_ABOVE = 10_000  # more annotations than this are autosaved as columns in an .npz beside the JSON


def compact_autosave_path(slide_path: str | Path) -> Path:
    """The .npz autosave of a slide with many annotations (beside :func:`autosave_path`)."""
    from engines.core.autosave import array_autosave_path

    return array_autosave_path(autosave_path(slide_path))


def load_saved_annotations(slide_path: str | Path) -> tuple[AnnotationTable | None, list[str]]:
    """(annotations as a table or None, plain sentences for the user) from a slide's autosave; runs file I/O
    (a worker).

    The newer of the JSON autosave and the compact .npz one is read (the older one is an earlier snapshot
    and is removed once the newer one has been read). A damaged autosave (not readable, not ours, from a
    newer version, no usable feature) is set aside as ``<name>.damaged-<time>`` and the next one, if any,
    is tried; features that cannot be used are left out and named.
    """
    from engines.core.autosave import load_array_autosave, load_autosave

    slide_path = Path(slide_path)
    name = slide_path.name

    def validate(data: dict) -> ParsedGeoJSON:
        try:
            return parse_geojson(data, f"the saved annotations of {name}")
        except EngineError as exc:
            raise ValueError(str(exc)) from None

    def validate_arrays(arrays: dict, meta: dict) -> AnnotationTable:
        return AnnotationTable.from_arrays(arrays, meta)

    notices: list[str] = []
    target, compact = autosave_path(slide_path), compact_autosave_path(slide_path)
    found = [p for p in (target, compact) if p.exists()]
    if not found and legacy_autosave_path(slide_path).exists():
        return _load_legacy(slide_path)
    found.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for k, path in enumerate(found):
        if path == compact:
            loaded = load_array_autosave(path, schema=AUTOSAVE_SCHEMA, validate=validate_arrays, source_name=name)
            table = loaded.data
        else:
            loaded = load_autosave(path, schema=AUTOSAVE_SCHEMA, validate=validate, source_name=name)
            table = None
            if loaded.data is not None:
                note = loaded.data.summary(f"The saved annotations of {name}")
                if note:
                    notices.append(note)
                table = AnnotationTable.from_annotations(loaded.data.annotations)
        if loaded.notice:
            notices.append(loaded.notice)
        if table is not None:
            for older in found[k + 1:]:
                try:
                    older.unlink()
                except OSError:
                    pass
            return table, notices
    return None, notices


def _load_legacy(slide_path: Path) -> tuple[list[Annotation] | None, list[str]]:
    import os
    from datetime import datetime

    old = legacy_autosave_path(slide_path)
    try:
        parsed = load_geojson(old)
    except EngineError as exc:
        aside = old.with_name(f"{old.name}.damaged-{datetime.now():%Y%m%d-%H%M%S}")
        try:
            os.replace(old, aside)
        except OSError:
            return None, [f"The saved annotations of {slide_path.name} could not be read ({exc}); the slide "
                          f"opens without them."]
        return None, [f"The saved annotations of {slide_path.name} could not be read ({exc}); they were set "
                      f"aside as {aside.name} and the slide opens without them."]
    note = parsed.summary(f"The saved annotations of {slide_path.name}")
    return AnnotationTable.from_annotations(parsed.annotations), [note] if note else []


def annotation_bounds(items: list[Annotation]) -> np.ndarray:
    """(n, 4) float64 level-0 boxes x0, y0, x1, y1 of the annotations (empty outlines give NaN)."""
    out = np.full((len(items), 4), np.nan)
    for i, a in enumerate(items):
        pts = a.points
        if pts:
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            out[i] = (min(xs), min(ys), max(xs), max(ys))
    return out




class SpatialIndex:
    """Which rows' boxes meet a level-0 rectangle, without testing every row: a uniform grid of at most
    200 x 200 cells over the box centres (rows sorted by cell, numpy only), plus a short list of rows tested
    one by one (boxes larger than a cell, and rows added or changed since the grid was built). The store keeps
    it in step with every insert, delete and replace; it rebuilds itself when the list grows long."""

    GRID = 200
    SCAN_BELOW = 5000  # fewer rows than this: a plain scan is as fast

    def __init__(self) -> None:
        self.built = False
        self.order = np.zeros(0, np.int64)
        self.starts = np.zeros(1, np.int64)
        self.linear = np.zeros(0, np.int64)
        self.x0 = self.y0 = 0.0
        self.cell = 1.0
        self.gw = self.gh = 1
        self.n = 0

    @classmethod
    def build(cls, bounds: np.ndarray) -> "SpatialIndex":
        index = cls()
        index._build(np.asarray(bounds, float).reshape(-1, 4))
        return index

    def _build(self, b: np.ndarray) -> None:
        n = self.n = len(b)
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        ok = np.isfinite(cx) & np.isfinite(cy)
        if ok.any():
            self.x0, self.y0 = float(cx[ok].min()), float(cy[ok].min())
            span = max(float(cx[ok].max()) - self.x0, float(cy[ok].max()) - self.y0)
        else:
            self.x0 = self.y0 = span = 0.0
        self.cell = max(span / self.GRID, 1e-6)
        self.gw = int(min(self.GRID, (float(cx[ok].max()) - self.x0) // self.cell if ok.any() else 0)) + 1
        self.gh = int(min(self.GRID, (float(cy[ok].max()) - self.y0) // self.cell if ok.any() else 0)) + 1
        with np.errstate(invalid="ignore"):
            small = ok & ((b[:, 2] - b[:, 0]) <= self.cell) & ((b[:, 3] - b[:, 1]) <= self.cell)
        rows = np.flatnonzero(small)
        gx = np.clip(((cx[rows] - self.x0) // self.cell).astype(np.int64), 0, self.gw - 1)
        gy = np.clip(((cy[rows] - self.y0) // self.cell).astype(np.int64), 0, self.gh - 1)
        key = (gy * self.gw + gx).astype(np.uint16)  # 16-bit keys: numpy's stable sort is a radix sort here
        perm = np.argsort(key, kind="stable")
        self.order = rows[perm]
        self.starts = np.searchsorted(key[perm], np.arange(self.gw * self.gh + 1))
        self.linear = np.flatnonzero(~small)
        self.built = True

    # -- kept in step with the store ---------------------------------------------------------------------
    def _remove(self, keep: np.ndarray) -> None:
        cum = np.zeros(len(self.order) + 1, np.int64)
        np.cumsum(keep, out=cum[1:])
        self.starts = cum[self.starts]
        self.order = self.order[keep]

    def inserted(self, i: int, k: int) -> None:
        self.n += k
        if not self.built:
            return
        self.order[self.order >= i] += k
        self.linear[self.linear >= i] += k
        self.linear = np.concatenate([self.linear, np.arange(i, i + k, dtype=np.int64)])
        if len(self.linear) > max(4096, self.n // 8):
            self.built = False

    def deleted(self, i: int, k: int) -> None:
        self.n -= k
        if not self.built:
            return
        self._remove((self.order < i) | (self.order >= i + k))
        self.order[self.order >= i + k] -= k
        self.linear = self.linear[(self.linear < i) | (self.linear >= i + k)]
        self.linear[self.linear >= i + k] -= k

    def replaced(self, i: int) -> None:
        if not self.built:
            return
        if (self.order == i).any():
            self._remove(self.order != i)
        if not (self.linear == i).any():
            self.linear = np.append(self.linear, np.int64(i))

    def reset(self, n: int) -> None:
        self.built = False
        self.n = n

    # -- queries -------------------------------------------------------------------------------------------
    def _ensure(self, bounds: np.ndarray) -> bool:
        if len(bounds) < self.SCAN_BELOW:
            return False
        if not self.built or self.n != len(bounds):
            self._build(bounds)
        return True

    def _cells(self, rect0) -> list[tuple[int, int]]:
        """(start, stop) ranges of ``order`` for the cells that can hold a small box meeting ``rect0``."""
        c = self.cell

        def span(lo, hi, origin, size):
            a = int(np.clip(math.floor((lo - c - origin) / c), 0, size - 1))
            b = int(np.clip(math.floor((hi + c - origin) / c), 0, size - 1))
            return a, b

        if not all(math.isfinite(v) for v in rect0):
            return []
        cx0, cx1 = span(rect0[0], rect0[2], self.x0, self.gw)
        cy0, cy1 = span(rect0[1], rect0[3], self.y0, self.gh)
        return [(int(self.starts[gy * self.gw + cx0]), int(self.starts[gy * self.gw + cx1 + 1]))
                for gy in range(cy0, cy1 + 1)]

    def candidates(self, rect0, bounds: np.ndarray) -> int:
        """How many rows a query of ``rect0`` would test (an upper bound of the rows in view)."""
        if not self._ensure(bounds):
            return len(bounds)
        return sum(b - a for a, b in self._cells(rect0)) + len(self.linear)

    def query(self, rect0, bounds: np.ndarray) -> np.ndarray:
        """Rows, ascending, whose box meets ``rect0`` = (x0, y0, x1, y1) in level 0."""
        if not len(bounds):
            return np.zeros(0, np.int64)
        if not self._ensure(bounds):
            return _scan(bounds, rect0)
        parts = [self.order[a:b] for a, b in self._cells(rect0)] + [self.linear]
        cand = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        hit = _scan(bounds[cand], rect0)
        return np.sort(cand[hit])

    def density(self, bounds: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
        """(gh, gw) counts of rows per grid cell by box centre, and (x0, y0, cell) placing the grid in level 0."""
        self._ensure(bounds) or self._build(bounds)
        counts = np.diff(self.starts).reshape(self.gh, self.gw).copy()
        if len(self.linear):
            b = bounds[self.linear]
            cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
            ok = np.isfinite(cx) & np.isfinite(cy)
            gx = np.clip(((cx[ok] - self.x0) // self.cell).astype(np.int64), 0, self.gw - 1)
            gy = np.clip(((cy[ok] - self.y0) // self.cell).astype(np.int64), 0, self.gh - 1)
            counts += np.bincount(gy * self.gw + gx, minlength=self.gw * self.gh).reshape(self.gh, self.gw)
        return counts, (self.x0, self.y0, self.cell)


def _scan(b: np.ndarray, rect0) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        vis = (b[:, 2] >= rect0[0]) & (b[:, 0] <= rect0[2]) & (b[:, 3] >= rect0[1]) & (b[:, 1] <= rect0[3])
    return np.flatnonzero(vis)


class _Rows:
    """``store.items``: a read-only sequence of Annotations made on demand from the store's rows (a row of a
    table gives a new, equal object each time; an annotation the user made is the object itself)."""

    __slots__ = ("_store",)

    def __init__(self, store: "AnnotationStore") -> None:
        self._store = store

    def __len__(self) -> int:
        return len(self._store._slots)

    def __getitem__(self, i):
        n = len(self)
        if isinstance(i, slice):
            return [self._store.row(j) for j in range(*i.indices(n))]
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("annotation row out of range")
        return self._store.row(i)

    def __iter__(self):
        for j in range(len(self)):
            yield self._store.row(j)

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, tuple, _Rows)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"<{len(self):,} annotations>"



class AnnotationSnapshot:
    """The store's rows at one moment, safe to read from a worker (tables are immutable, made annotations are
    replaced rather than edited, and the row array is a copy)."""

    def __init__(self, slots: np.ndarray, tables: list[AnnotationTable], bases: np.ndarray,
                 objects: list[Annotation]) -> None:
        self.slots, self.tables, self.bases, self.objects = slots, tables, bases, objects

    def __len__(self) -> int:
        return len(self.slots)

    def to_table(self) -> AnnotationTable:
        """All rows, in order, as one table (numpy gathers; only made annotations are converted one by one)."""
        s = self.slots
        if len(self.tables) == 1 and not self.objects and len(s) == len(self.tables[0]) \
                and np.array_equal(s, np.arange(len(s))):
            return self.tables[0]
        pieces, where = [], []
        for t, base in zip(self.tables, self.bases.tolist()):
            sel = np.flatnonzero((s >= base) & (s < base + len(t)))
            if len(sel):
                pieces.append(t.take(s[sel] - base))
                where.append(sel)
        sel = np.flatnonzero(s < 0)
        if len(sel):
            pieces.append(AnnotationTable.from_annotations([self.objects[-int(k) - 1] for k in s[sel]]))
            where.append(sel)
        if not pieces:
            return AnnotationTable.empty()
        table = AnnotationTable.concat(pieces)
        pos = np.concatenate(where)
        return table.take(np.argsort(pos, kind="stable")) if len(pieces) > 1 or not np.array_equal(
            pos, np.arange(len(pos))) else table

    def annotations(self) -> list[Annotation]:
        out = []
        for k in self.slots.tolist():
            if k < 0:
                out.append(self.objects[-k - 1])
            else:
                t = int(np.searchsorted(self.bases, k, "right")) - 1
                out.append(self.tables[t].annotation(k - int(self.bases[t])))
        return out


def _keys_of(items: list[Annotation]) -> np.ndarray:
    return np.fromiter((string_key(a.id) for a in items), np.uint64, len(items))


class AnnotationStore(UndoHistory):
    """Annotations with an undo stack. Every change calls the listeners (the view redraws and autosaves).

    Rows live in numpy arrays: ``_slots`` names each row's source (>= 0: a row of one of the immutable
    tables that files were read into; < 0: an Annotation the user made), ``bounds`` holds each row's
    level-0 box and ``_keys`` a hash of its id, so a million annotations open, list, find and edit without a
    Python object per row. ``items`` makes Annotation objects on demand. Undo keeps operations, not copies.
    ``index`` (a :class:`SpatialIndex`) answers "which rows are in this rectangle" for drawing and clicks.
    """

    MAX_UNDO = 200

    def __init__(self) -> None:
        self._tables: list[AnnotationTable] = []
        self._bases = np.zeros(0, np.int64)
        self._objects: list[Annotation] = []
        self._slots = np.zeros(0, np.int64)
        self.bounds = np.zeros((0, 4))
        self._keys = np.zeros(0, np.uint64)
        self.index = SpatialIndex()
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []
        self.listeners: list[Callable[[], None]] = []
        self.dirty = False
        self.version = 0

    # -- rows ------------------------------------------------------------------------------------------------
    @property
    def items(self) -> _Rows:
        return _Rows(self)

    def __len__(self) -> int:
        return len(self._slots)

    def _source(self, i: int) -> tuple[AnnotationTable | None, int | Annotation]:
        k = int(self._slots[i])
        if k < 0:
            return None, self._objects[-k - 1]
        t = int(np.searchsorted(self._bases, k, "right")) - 1
        return self._tables[t], k - int(self._bases[t])

    def row(self, i: int) -> Annotation:
        table, r = self._source(i)
        return r if table is None else table.annotation(r)

    def row_id(self, i: int) -> str:
        table, r = self._source(i)
        return r.id if table is None else table.id(r)

    def row_points(self, i: int) -> np.ndarray:
        """(k, 2) level-0 outline of row ``i`` (no Annotation object is made for a table row)."""
        table, r = self._source(i)
        return np.asarray(r.points, float).reshape(-1, 2) if table is None else table.points(r)

    def snapshot(self) -> AnnotationSnapshot:
        return AnnotationSnapshot(self._slots.copy(), list(self._tables), self._bases.copy(), list(self._objects))

    def _add_objects(self, items: list[Annotation]) -> np.ndarray:
        start = len(self._objects)
        self._objects.extend(items)
        return -(np.arange(start, start + len(items), dtype=np.int64) + 1)

    def _add_table(self, table: AnnotationTable) -> np.ndarray:
        base = int(self._bases[-1]) + len(self._tables[-1]) if self._tables else 0
        self._tables.append(table)
        self._bases = np.append(self._bases, np.int64(base))
        return np.arange(base, base + len(table), dtype=np.int64)

    # -- operations: ("insert", i, slots, bounds, keys) / ("delete", ...the same) /
    #    ("replace", i, slot, bounds row, key) / ("swap", slots, bounds, keys) ------------------------------
    def _apply(self, op: tuple) -> tuple:
        """Do ``op`` and return the operation that undoes it."""
        kind = op[0]
        if kind == "insert":
            _, i, slots, b, keys = op
            self._slots = np.concatenate([self._slots[:i], slots, self._slots[i:]])
            self.bounds = np.concatenate([self.bounds[:i], b, self.bounds[i:]])
            self._keys = np.concatenate([self._keys[:i], keys, self._keys[i:]])
            self.index.inserted(i, len(slots))
            return ("delete", i, slots, b, keys)
        if kind == "delete":
            _, i, slots, b, keys = op
            k = len(slots)
            self._slots = np.concatenate([self._slots[:i], self._slots[i + k:]])
            self.bounds = np.concatenate([self.bounds[:i], self.bounds[i + k:]])
            self._keys = np.concatenate([self._keys[:i], self._keys[i + k:]])
            self.index.deleted(i, k)
            return ("insert", i, slots, b, keys)
        if kind == "replace":
            _, i, slot, b, key = op
            undo = ("replace", i, int(self._slots[i]), self.bounds[i].copy(), self._keys[i])
            self._slots = self._slots.copy()  # snapshots and undo steps may share the old arrays
            self.bounds = self.bounds.copy()
            self._keys = self._keys.copy()
            self._slots[i], self.bounds[i], self._keys[i] = slot, b, key
            self.index.replaced(i)
            return undo
        _, slots, b, keys = op  # swap
        old = ("swap", self._slots, self.bounds, self._keys)
        self._slots, self.bounds, self._keys = slots, b, keys
        self.index.reset(len(slots))
        return old

    def _do(self, op: tuple) -> None:
        self._undo.append(self._apply(op))
        if len(self._undo) > self.MAX_UNDO:
            self._undo.pop(0)
        self._redo.clear()
        self._changed()

    def _changed(self) -> None:
        self.dirty = True
        self.version += 1
        for fn in list(self.listeners):
            fn()

    def index_of(self, ann_id: str) -> int:
        """The first row with this id, or -1: a numpy search of the id hashes, then the text is checked."""
        if not len(self._slots) or not isinstance(ann_id, str):
            return -1
        for i in np.flatnonzero(self._keys == np.uint64(string_key(ann_id))).tolist():
            if self.row_id(i) == ann_id:
                return i
        return -1

    def get(self, ann_id: str) -> Annotation | None:
        i = self.index_of(ann_id)
        return self.row(i) if i >= 0 else None

    # -- changes (each one undoable) -------------------------------------------------------------------
    def add(self, annotation: Annotation) -> Annotation:
        self._do(("insert", len(self), self._add_objects([annotation]), annotation_bounds([annotation]),
                  _keys_of([annotation])))
        return annotation

    def extend(self, annotations, bounds: np.ndarray | None = None, index: SpatialIndex | None = None) -> None:
        """Add many (one undo step): a list of Annotations or an AnnotationTable; ``bounds`` may come
        precomputed from the worker that parsed them, and ``index`` built by it over the rows after the
        addition (used only when its row count fits)."""
        if not len(annotations):
            return
        if isinstance(annotations, AnnotationTable):
            b = annotations.bounds if bounds is None else np.asarray(bounds, float).reshape(-1, 4)
            slots, keys = self._add_table(annotations), annotations.keys
        else:
            annotations = list(annotations)
            b = annotation_bounds(annotations) if bounds is None else np.asarray(bounds, float).reshape(-1, 4)
            slots, keys = self._add_objects(annotations), _keys_of(annotations)
        if index is not None and index.n == len(self) + len(slots):
            self.index = index
            self.index.n -= len(slots)  # the insert below brings it back to the new row count
            self.index.built, built = False, True
        else:
            built = False
        op = ("insert", len(self), slots, b, keys)
        self._undo.append(self._apply(op))
        if built:
            self.index.built = True  # it was made for exactly these rows: no shifting needed
        if len(self._undo) > self.MAX_UNDO:
            self._undo.pop(0)
        self._redo.clear()
        self._changed()

    def remove(self, ann_id: str) -> None:
        i = self.index_of(ann_id)
        if i < 0:
            return
        self._do(("delete", i, self._slots[i:i + 1].copy(), self.bounds[i:i + 1].copy(), self._keys[i:i + 1].copy()))

    def update(self, ann_id: str, **fields) -> None:
        i = self.index_of(ann_id)
        if i < 0:
            return
        new = dataclasses.replace(self.row(i), **fields)
        slot = int(self._add_objects([new])[0])
        self._do(("replace", i, slot, annotation_bounds([new])[0], _keys_of([new])[0]))

    def clear(self) -> None:
        if len(self):
            self._do(("swap", np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.uint64)))

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._apply(self._undo.pop()))
        self._changed()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._apply(self._redo.pop()))
        self._changed()
        return True

    def reset(self, items=None, bounds: np.ndarray | None = None, index: SpatialIndex | None = None) -> None:
        """Start a new session (another slide): these items (a list of Annotations or an AnnotationTable), no
        undo or redo history, nothing to save. ``bounds`` and ``index`` may come prebuilt from a worker.

        The history belongs to one slide: an undo after opening another slide must never bring the first
        slide's annotations onto it.
        """
        self._tables, self._bases, self._objects = [], np.zeros(0, np.int64), []
        if isinstance(items, AnnotationTable):
            self._slots = self._add_table(items)
            self.bounds = items.bounds if bounds is None else np.asarray(bounds, float).reshape(-1, 4)
            self._keys = items.keys
        else:
            items = list(items or [])
            self._slots = self._add_objects(items)
            self.bounds = annotation_bounds(items) if bounds is None else np.asarray(bounds, float).reshape(-1, 4)
            self._keys = _keys_of(items)
        if index is not None and index.n == len(self._slots):
            self.index = index
        else:
            self.index = SpatialIndex()
            self.index.reset(len(self._slots))
        self._undo.clear()
        self._redo.clear()
        self.dirty = False
        self.version += 1
        for fn in list(self.listeners):
            fn()

    # -- files -------------------------------------------------------------------------------------------
    def load(self, path: Path) -> None:
        """Replace everything with the file's annotations (not undoable: it is how a slide opens)."""
        self.reset(read_geojson(path))

    def import_file(self, path: Path) -> int:
        found = read_geojson(path)
        self.extend(found)
        return len(found)

    def save(self, path: Path) -> Path:
        write_geojson(path, self.snapshot().annotations())
        self.dirty = False
        return path
