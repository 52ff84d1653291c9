"""Detection findings and their review, without Qt (the model a findings panel draws and edits).

A :class:`Finding` is one detected region: a box in patient coordinates (LPS mm), its type, a score, size
figures and, when the engine made one, a mask on the image grid. :class:`FindingsReview` holds a study's
findings with a review state each (unreviewed / accepted / rejected), a score threshold that filters the
visible list, a cursor for next/previous, undo/redo of state changes, and listeners that are told what changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import numpy as np

STATES = ("unreviewed", "accepted", "rejected")


@dataclass(frozen=True)
class MaskPatch:
    """A boolean mask stored as its bounding block: ``array`` placed at ``lo_kji`` of the image grid."""

    lo_kji: tuple[int, int, int]
    array: np.ndarray

    def full(self, shape) -> np.ndarray:
        out = np.zeros(tuple(shape), bool)
        k, j, i = self.lo_kji
        a = self.array
        out[k:k + a.shape[0], j:j + a.shape[1], i:i + a.shape[2]] = a
        return out


@dataclass(frozen=True)
class Finding:
    """One finding; ``state`` is its review state."""

    id: str
    type: str
    score: float
    lo_mm: tuple[float, float, float]
    hi_mm: tuple[float, float, float]
    volume_ml: float = 0.0
    mean_hu: float | None = None
    slice_index: int | None = None
    centre_mm: tuple[float, float, float] | None = None
    source: str = ""
    state: str = "unreviewed"
    mask: MaskPatch | None = field(default=None, compare=False, repr=False)

    @property
    def size_mm(self) -> tuple[float, float, float]:
        return tuple(float(b - a) for a, b in zip(self.lo_mm, self.hi_mm))  # type: ignore[return-value]

    @property
    def centre(self) -> tuple[float, float, float]:
        if self.centre_mm is not None:
            return tuple(self.centre_mm)  # type: ignore[return-value]
        return tuple((a + b) / 2 for a, b in zip(self.lo_mm, self.hi_mm))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "score": round(float(self.score), 4), "state": self.state,
                "min_lps_mm": [round(float(v), 3) for v in self.lo_mm],
                "max_lps_mm": [round(float(v), 3) for v in self.hi_mm],
                "centre_lps_mm": [round(float(v), 3) for v in self.centre],
                "size_mm": [round(v, 2) for v in self.size_mm], "volume_ml": self.volume_ml,
                "mean_hu": self.mean_hu, "slice_index": self.slice_index, "source": self.source}


Listener = Callable[[str, Any], None]


class FindingsReview:
    """A study's findings under review.

    ``visible`` are the findings with score >= ``threshold`` (in score order); ``current`` is the one the
    cursor is on. ``accept``/``reject``/``reset`` change the current finding's state (undoable); listeners get
    ("states", ids), ("threshold", value), ("current", id or None) or ("findings", None).
    """

    def __init__(self, findings: Iterable[Finding] = (), threshold: float = 0.5) -> None:
        self._findings: list[Finding] = []
        self._threshold = float(threshold)
        self._current: str | None = None
        self._undo: list[list[tuple[str, str, str]]] = []
        self._redo: list[list[tuple[str, str, str]]] = []
        self._listeners: list[Listener] = []
        self.set_findings(findings)

    # -- listeners -----------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, what: str, detail: Any = None) -> None:
        for listener in list(self._listeners):
            listener(what, detail)

    # -- content -------------------------------------------------------------------------------------
    def set_findings(self, findings: Iterable[Finding]) -> None:
        items = list(findings)
        ids = [f.id for f in items]
        if len(set(ids)) != len(ids):
            raise ValueError("finding ids must be unique")
        for f in items:
            if f.state not in STATES:
                raise ValueError(f"unknown review state '{f.state}' of {f.id}")
        self._findings = sorted(items, key=lambda f: -f.score)
        self._undo.clear()
        self._redo.clear()
        vis = self.visible
        self._current = vis[0].id if vis else None
        self._emit("findings")

    @property
    def findings(self) -> list[Finding]:
        return list(self._findings)

    def get(self, finding_id: str) -> Finding:
        for f in self._findings:
            if f.id == finding_id:
                return f
        raise KeyError(finding_id)

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, value: float) -> None:
        value = float(min(1.0, max(0.0, value)))
        if value == self._threshold:
            return
        self._threshold = value
        self._emit("threshold", value)
        vis = self.visible
        if self._current not in {f.id for f in vis}:
            self._set_current(vis[0].id if vis else None)

    @property
    def visible(self) -> list[Finding]:
        return [f for f in self._findings if f.score >= self._threshold]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for f in self.visible:
            out[f.state] += 1
        return out

    # -- cursor --------------------------------------------------------------------------------------
    @property
    def current(self) -> Finding | None:
        return self.get(self._current) if self._current is not None else None

    def _set_current(self, finding_id: str | None) -> None:
        if finding_id != self._current:
            self._current = finding_id
            self._emit("current", finding_id)

    def select(self, finding_id: str) -> None:
        if finding_id not in {f.id for f in self.visible}:
            raise KeyError(f"{finding_id} is not among the visible findings")
        self._set_current(finding_id)

    def next(self) -> Finding | None:
        return self._step(+1)

    def previous(self) -> Finding | None:
        return self._step(-1)

    def next_unreviewed(self) -> Finding | None:
        vis = self.visible
        if not vis:
            return None
        start = [f.id for f in vis].index(self._current) if self._current in {f.id for f in vis} else -1
        for n in range(1, len(vis) + 1):
            f = vis[(start + n) % len(vis)]
            if f.state == "unreviewed":
                self._set_current(f.id)
                return f
        return None

    def _step(self, d: int) -> Finding | None:
        vis = self.visible
        if not vis:
            self._set_current(None)
            return None
        ids = [f.id for f in vis]
        n = ids.index(self._current) if self._current in ids else (-1 if d > 0 else 0)
        n = min(len(ids) - 1, max(0, n + d))
        self._set_current(ids[n])
        return vis[n]

    # -- review --------------------------------------------------------------------------------------
    def accept(self, finding_id: str | None = None) -> None:
        self.set_state("accepted", finding_id)

    def reject(self, finding_id: str | None = None) -> None:
        self.set_state("rejected", finding_id)

    def reset(self, finding_id: str | None = None) -> None:
        self.set_state("unreviewed", finding_id)

    def set_state(self, state: str, finding_id: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown review state '{state}'")
        fid = finding_id or self._current
        if fid is None:
            return
        old = self.get(fid).state
        if old == state:
            return
        self._apply([(fid, old, state)])
        self._undo.append([(fid, old, state)])
        self._redo.clear()

    def replace_finding(self, finding: Finding) -> None:
        """Put an edited finding (box or mask changed) in place of the one with its id (not undoable)."""
        self.get(finding.id)
        self._findings = sorted([finding if f.id == finding.id else f for f in self._findings],
                                key=lambda f: -f.score)
        self._emit("findings")

    def _apply(self, changes) -> None:
        by_id = {fid: new for fid, _old, new in changes}
        self._findings = [replace(f, state=by_id[f.id]) if f.id in by_id else f for f in self._findings]
        self._emit("states", [fid for fid, _o, _n in changes])

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        if not self._undo:
            return
        changes = self._undo.pop()
        self._apply([(fid, new, old) for fid, old, new in changes])
        self._redo.append(changes)

    def redo(self) -> None:
        if not self._redo:
            return
        changes = self._redo.pop()
        self._apply(changes)
        self._undo.append(changes)
