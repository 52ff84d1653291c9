"""The annotation store of one slide: add/remove/edit with undo and redo, autosave path, GeoJSON I/O. No Qt."""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Callable

from engines.core.paths import data_dir
from engines.pathology.geojson import Annotation, read_geojson, write_geojson


def autosave_path(slide_path: str | Path) -> Path:
    """Where a slide's annotations are autosaved: the user data folder, keyed by the slide's absolute path."""
    p = Path(slide_path).expanduser().resolve()
    key = hashlib.sha1(str(p).encode("utf-8")).hexdigest()[:16]
    folder = data_dir() / "pathology" / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{p.stem}-{key}.geojson"


class AnnotationStore:
    """Annotations with an undo stack. Every change calls the listeners (the view redraws and autosaves)."""

    def __init__(self) -> None:
        self.items: list[Annotation] = []
        self._undo: list[list[Annotation]] = []
        self._redo: list[list[Annotation]] = []
        self.listeners: list[Callable[[], None]] = []
        self.dirty = False

    # -- changes (each one undoable) -------------------------------------------------------------------
    def _snapshot(self) -> None:
        self._undo.append(copy.deepcopy(self.items))
        if len(self._undo) > 200:
            self._undo.pop(0)
        self._redo.clear()

    def _changed(self) -> None:
        self.dirty = True
        for fn in list(self.listeners):
            fn()

    def add(self, annotation: Annotation) -> Annotation:
        self._snapshot()
        self.items.append(annotation)
        self._changed()
        return annotation

    def extend(self, annotations: list[Annotation]) -> None:
        if not annotations:
            return
        self._snapshot()
        self.items.extend(annotations)
        self._changed()

    def remove(self, ann_id: str) -> None:
        if not any(a.id == ann_id for a in self.items):
            return
        self._snapshot()
        self.items = [a for a in self.items if a.id != ann_id]
        self._changed()

    def update(self, ann_id: str, **fields) -> None:
        for a in self.items:
            if a.id == ann_id:
                self._snapshot()
                for k, v in fields.items():
                    setattr(a, k, v)
                self._changed()
                return

    def clear(self) -> None:
        if self.items:
            self._snapshot()
            self.items = []
            self._changed()

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(copy.deepcopy(self.items))
        self.items = self._undo.pop()
        self._changed()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(copy.deepcopy(self.items))
        self.items = self._redo.pop()
        self._changed()
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def reset(self, items: list[Annotation] | None = None) -> None:
        """Start a new session (another slide): these items, no undo or redo history, nothing to save.

        The history belongs to one slide: an undo after opening another slide must never bring the first
        slide's annotations onto it.
        """
        self.items = list(items or [])
        self._undo.clear()
        self._redo.clear()
        self.dirty = False
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
