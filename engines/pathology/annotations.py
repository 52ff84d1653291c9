"""The annotation store of one slide: add/remove/edit with undo and redo, autosave path, GeoJSON I/O. No Qt."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from engines.core.engine import EngineError
from engines.core.paths import data_dir
from engines.pathology.geojson import (Annotation, ParsedGeoJSON, load_geojson, parse_geojson, read_geojson,
                                       to_feature_collection, write_geojson)


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


def load_saved_annotations(slide_path: str | Path) -> tuple[list[Annotation] | None, list[str]]:
    """(annotations or None, plain sentences for the user) from a slide's autosave; runs file I/O (a worker).

    A damaged autosave (not JSON, not ours, from a newer version, no usable feature) is set aside as
    ``<name>.damaged-<time>`` and the slide opens without it; features that cannot be used are left out
    and named.
    """
    from engines.core.autosave import load_autosave

    slide_path = Path(slide_path)
    name = slide_path.name

    def validate(data: dict) -> ParsedGeoJSON:
        try:
            return parse_geojson(data, f"the saved annotations of {name}")
        except EngineError as exc:
            raise ValueError(str(exc)) from None

    notices: list[str] = []
    target = autosave_path(slide_path)
    if not target.exists() and legacy_autosave_path(slide_path).exists():
        return _load_legacy(slide_path)
    loaded = load_autosave(target, schema=AUTOSAVE_SCHEMA, validate=validate, source_name=name)
    if loaded.notice:
        notices.append(loaded.notice)
    if loaded.data is None:
        return None, notices
    note = loaded.data.summary(f"The saved annotations of {name}")
    if note:
        notices.append(note)
    return loaded.data.annotations, notices


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
    return parsed.annotations, [note] if note else []


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


class AnnotationStore:
    """Annotations with an undo stack. Every change calls the listeners (the view redraws and autosaves).

    Undo keeps the operations, not copies of every annotation, so a slide with a million annotations edits
    as fast as one with ten. Annotations are replaced, never changed in place: ``list(store.items)`` is a
    consistent snapshot for a worker. ``bounds`` holds each annotation's level-0 box, row for row, for
    drawing only what is in view.
    """

    MAX_UNDO = 200

    def __init__(self) -> None:
        self.items: list[Annotation] = []
        self.bounds = np.zeros((0, 4))
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []
        self.listeners: list[Callable[[], None]] = []
        self.dirty = False
        self.version = 0

    # -- operations: ("insert", index, items, bounds) / ("delete", index, items, bounds) /
    #    ("replace", index, old, new) / ("swap", items, bounds) --------------------------------------------
    def _apply(self, op: tuple) -> tuple:
        """Do ``op`` and return the operation that undoes it."""
        kind = op[0]
        if kind == "insert":
            _, i, items, b = op
            self.items[i:i] = items
            self.bounds = np.concatenate([self.bounds[:i], b, self.bounds[i:]])
            return ("delete", i, items, b)
        if kind == "delete":
            _, i, items, b = op
            del self.items[i:i + len(items)]
            self.bounds = np.concatenate([self.bounds[:i], self.bounds[i + len(items):]])
            return ("insert", i, items, b)
        if kind == "replace":
            _, i, old, new = op
            self.items[i] = new
            self.bounds[i] = annotation_bounds([new])[0]
            return ("replace", i, new, old)
        _, items, b = op  # swap
        old = ("swap", self.items, self.bounds)
        self.items, self.bounds = list(items), b
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
        for i, a in enumerate(self.items):
            if a.id == ann_id:
                return i
        return -1

    def get(self, ann_id: str) -> Annotation | None:
        i = self.index_of(ann_id)
        return self.items[i] if i >= 0 else None

    # -- changes (each one undoable) -------------------------------------------------------------------
    def add(self, annotation: Annotation) -> Annotation:
        self._do(("insert", len(self.items), [annotation], annotation_bounds([annotation])))
        return annotation

    def extend(self, annotations: list[Annotation], bounds: np.ndarray | None = None) -> None:
        """Add many (one undo step); ``bounds`` may come precomputed from the worker that parsed them."""
        if not annotations:
            return
        b = annotation_bounds(annotations) if bounds is None else np.asarray(bounds, float).reshape(-1, 4)
        self._do(("insert", len(self.items), list(annotations), b))

    def remove(self, ann_id: str) -> None:
        i = self.index_of(ann_id)
        if i < 0:
            return
        self._do(("delete", i, [self.items[i]], self.bounds[i:i + 1].copy()))

    def update(self, ann_id: str, **fields) -> None:
        i = self.index_of(ann_id)
        if i < 0:
            return
        old = self.items[i]
        self._do(("replace", i, old, dataclasses.replace(old, **fields)))

    def clear(self) -> None:
        if self.items:
            self._do(("swap", [], np.zeros((0, 4))))

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

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def reset(self, items: list[Annotation] | None = None, bounds: np.ndarray | None = None) -> None:
        """Start a new session (another slide): these items, no undo or redo history, nothing to save.

        The history belongs to one slide: an undo after opening another slide must never bring the first
        slide's annotations onto it.
        """
        self.items = list(items or [])
        self.bounds = annotation_bounds(self.items) if bounds is None else np.asarray(bounds, float).reshape(-1, 4)
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
        write_geojson(path, self.items)
        self.dirty = False
        return path
