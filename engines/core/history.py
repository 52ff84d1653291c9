"""The undo/redo bookkeeping every Qt-free model shares (chord track, annotation store, findings review,
radiology session): two stacks, and what a view asks of them. Each model keeps its own idea of a step."""
from __future__ import annotations

from typing import Any


class UndoHistory:
    """Mixin: ``self._undo`` and ``self._redo`` are lists of steps (the model decides what a step holds)."""

    _undo: list[Any]
    _redo: list[Any]

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def clear_history(self) -> None:
        self._undo.clear()
        self._redo.clear()
