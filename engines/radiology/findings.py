"""Detection findings and their review, without Qt (the model a findings panel draws and edits).

A :class:`Finding` is one detected region: a box in patient coordinates (LPS mm), its type, a score, size
figures and, when the engine made one, a mask on the image grid. :class:`FindingsReview` holds a study's
findings with a review state each (unreviewed / accepted / rejected) and an ``edited`` mark (the reviewer moved
or resized its box, or painted its mask), a score threshold that filters the visible list, a cursor for
next/previous, undo/redo of state and box changes, and listeners that are told what changed.

Box geometry: a box is axis-aligned in patient coordinates (LPS mm). On a slice view it is drawn through the
volume's geometry - :func:`box_index_bounds` gives its corners' (i, j, k) bounds on the grid, :func:`box_rect`
the rectangle a plane shows (view millimetres: ``(index + 0.5) * spacing`` from the first voxel's edge), and
:func:`box_with_rect` the box a dragged rectangle stands for (the plane's normal extent kept). On a grid whose
axes are the patient's (every reader's display grid) these are exact; on an oblique grid the LPS box is the
one around the dragged voxel block. :func:`finding_statistics` recomputes volume and mean HU after an edit
(a whole-mask pass: a worker runs it).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from engines.core.history import UndoHistory

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

    @classmethod
    def from_full(cls, mask: np.ndarray) -> "MaskPatch | None":
        """The bounding block of a full-grid mask (nonzero = inside), or None when it is empty."""
        mask = np.asarray(mask) != 0
        if not mask.any():
            return None
        lo, hi = [], []
        for axis in range(3):
            hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
            lo.append(int(hit[0]))
            hi.append(int(hit[-1]) + 1)
        return cls(tuple(lo), mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].copy())  # type: ignore[arg-type]

    @property
    def voxels(self) -> int:
        return int(np.count_nonzero(self.array))


def same_mask(a: MaskPatch | None, b: MaskPatch | None) -> bool:
    """Whether two masks cover the same voxels (an empty mask is the same as none)."""
    a_empty = a is None or not a.array.any()
    b_empty = b is None or not b.array.any()
    if a_empty or b_empty:
        return a_empty and b_empty
    return a is b or (tuple(a.lo_kji) == tuple(b.lo_kji) and a.array.shape == b.array.shape
                      and np.array_equal(a.array, b.array))


@dataclass(frozen=True)
class Finding:
    """One finding; ``state`` is its review state, ``edited`` whether the reviewer changed its box or mask."""

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
    edited: bool = False

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
                "mean_hu": self.mean_hu, "slice_index": self.slice_index, "source": self.source,
                "edited": bool(self.edited)}


# -- box geometry ------------------------------------------------------------------------------------------
def box_index_bounds(lo_mm, hi_mm, geometry) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) (i, j, k) grid coordinates of the box's eight corners (continuous, voxel centres whole)."""
    corners = np.array([[x, y, z] for x in (lo_mm[0], hi_mm[0]) for y in (lo_mm[1], hi_mm[1])
                        for z in (lo_mm[2], hi_mm[2])], float)
    ijk = geometry.lps_to_index(corners)
    return ijk.min(axis=0), ijk.max(axis=0)


def box_from_index_bounds(lo_ijk, hi_ijk, geometry) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The LPS box (lo_mm, hi_mm) around the grid block between ``lo_ijk`` and ``hi_ijk`` (i, j, k)."""
    a, b = np.asarray(lo_ijk, float), np.asarray(hi_ijk, float)
    corners = np.array([[x, y, z] for x in (a[0], b[0]) for y in (a[1], b[1]) for z in (a[2], b[2])], float)
    lps = geometry.index_to_lps(corners)
    return tuple(float(v) for v in lps.min(0)), tuple(float(v) for v in lps.max(0))  # type: ignore[return-value]


def box_cuts(lo_mm, hi_mm, geometry, axis: int, index: int) -> bool:
    """Whether slice ``index`` of voxel axis ``axis`` (0 i, 1 j, 2 k) cuts the box (as box layers draw it)."""
    lo, hi = box_index_bounds(lo_mm, hi_mm, geometry)
    return bool(lo[axis] - 0.5 <= index <= hi[axis] + 0.5)


def box_rect(lo_mm, hi_mm, geometry, h: int, v: int) -> tuple[float, float, float, float]:
    """(h0, v0, h1, v1): the box on a view whose horizontal and vertical voxel axes are ``h`` and ``v``, in
    that view's millimetres (``(index + 0.5) * spacing``)."""
    lo, hi = box_index_bounds(lo_mm, hi_mm, geometry)
    sp = geometry.spacing
    return ((lo[h] + 0.5) * sp[h], (lo[v] + 0.5) * sp[v], (hi[h] + 0.5) * sp[h], (hi[v] + 0.5) * sp[v])


def box_with_rect(lo_mm, hi_mm, geometry, h: int, v: int, rect) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The box whose extent along the view axes ``h`` and ``v`` is ``rect`` (h0, v0, h1, v1 in view mm, any
    corner order), its extent along the view's normal kept: what moving or resizing it on that view means."""
    lo, hi = box_index_bounds(lo_mm, hi_mm, geometry)
    sp = geometry.spacing
    h0, v0, h1, v1 = (float(x) for x in rect)
    lo, hi = lo.copy(), hi.copy()
    lo[h], hi[h] = min(h0, h1) / sp[h] - 0.5, max(h0, h1) / sp[h] - 0.5
    lo[v], hi[v] = min(v0, v1) / sp[v] - 0.5, max(v0, v1) / sp[v] - 0.5
    return box_from_index_bounds(lo, hi, geometry)


def same_box(a: Finding, b: Finding, tol_mm: float = 1e-6) -> bool:
    return bool(np.allclose(a.lo_mm, b.lo_mm, atol=tol_mm) and np.allclose(a.hi_mm, b.hi_mm, atol=tol_mm))


@dataclass(frozen=True)
class FindingStats:
    """A finding's figures recomputed after an edit (:func:`finding_statistics`)."""

    finding_id: str
    mask: MaskPatch | None
    volume_ml: float
    mean_hu: float | None
    slice_index: int | None
    voxels: int
    revision: int = 0  # which edit they answer (stale answers are dropped)


def finding_statistics(volume, finding: Finding, labels: np.ndarray | None = None, *,
                       revision: int = 0) -> FindingStats:
    """Volume (ml), mean of the real values (HU) and centre slice of ``finding``: over its mask - ``labels``
    (a full-grid label array, nonzero inside, e.g. the mask being painted) or the finding's own - else over
    the voxels whose centres lie in its box. A pass over the whole mask: run it in a worker."""
    voxel_ml = float(np.prod(volume.geometry.spacing)) / 1000.0
    if labels is not None:
        patch = MaskPatch.from_full(labels)
    else:
        patch = finding.mask if finding.mask is not None and finding.mask.array.any() else None
    if patch is not None:
        k, j, i = patch.lo_kji
        a = patch.array
        block = volume.voxels[k:k + a.shape[0], j:j + a.shape[1], i:i + a.shape[2]]
        values = np.asarray(volume.real(block[a]), np.float64)
        ks = np.flatnonzero(a.any(axis=(1, 2))) + k
        return FindingStats(finding.id, patch, round(values.size * voxel_ml, 3),
                            round(float(values.mean()), 1) if values.size else None,
                            int(round(float(ks.mean()))) if ks.size else None, int(values.size), revision)
    lo, hi = box_index_bounds(finding.lo_mm, finding.hi_mm, volume.geometry)
    shape_ijk = np.asarray(volume.shape)[::-1]
    a = np.clip(np.ceil(lo - 1e-6), 0, shape_ijk).astype(int)
    b = np.clip(np.floor(hi + 1e-6) + 1, 0, shape_ijk).astype(int)
    block = volume.voxels[a[2]:b[2], a[1]:b[1], a[0]:b[0]]
    values = np.asarray(volume.real(block), np.float64).ravel()
    return FindingStats(finding.id, None, round(values.size * voxel_ml, 3),
                        round(float(values.mean()), 1) if values.size else None,
                        int((a[2] + b[2] - 1) // 2) if b[2] > a[2] else None, int(values.size), revision)


def with_masks(findings: Iterable[Finding], labels_by_id: dict[str, np.ndarray]) -> list[Finding]:
    """``findings`` with the masks being painted (full-grid arrays by finding id) put in (for export; a whole-
    mask pass each: run it in a worker)."""
    return [replace(f, mask=MaskPatch.from_full(labels_by_id[f.id])) if f.id in labels_by_id else f
            for f in findings]


Listener = Callable[[str, Any], None]


class FindingsReview(UndoHistory):
    """A study's findings under review.

    ``visible`` are the findings with score >= ``threshold`` (in score order); ``current`` is the one the
    cursor is on. ``accept``/``reject``/``reset`` change the current finding's state and ``edit_box`` its box
    (undoable); ``update_finding`` puts recomputed figures or an edited mask in place (not undoable: the mask's
    undo is the brush stroke's). A finding is ``edited`` while its box or mask differs from what the detector
    (or the report it was read from) gave. Listeners get ("states", ids), ("boxes", ids), ("finding", id),
    ("threshold", value), ("current", id or None), ("findings", "reset" or None) and ("step", None) when a new
    undoable step was taken (an owner keeping one history for several models mirrors it).
    """

    def __init__(self, findings: Iterable[Finding] = (), threshold: float = 0.5) -> None:
        self._findings: list[Finding] = []
        self._origin: dict[str, Finding] = {}
        self._threshold = float(threshold)
        self._current: str | None = None
        self._undo: list[list[tuple[str, dict, dict]]] = []
        self._redo: list[list[tuple[str, dict, dict]]] = []
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
    def set_findings(self, findings: Iterable[Finding], *, origins: Mapping[str, Finding] | None = None,
                     current: str | None = None) -> None:
        """Review ``findings`` afresh (no undo history). ``origins``: what the detector gave for findings that
        were edited since (a review read back from its autosave), by id; the others are their own origin.
        ``current``: the finding the cursor starts on when it is visible (else the first visible one)."""
        items = list(findings)
        ids = [f.id for f in items]
        if len(set(ids)) != len(ids):
            raise ValueError("finding ids must be unique")
        for f in items:
            if f.state not in STATES:
                raise ValueError(f"unknown review state '{f.state}' of {f.id}")
        origins = dict(origins or {})
        if set(origins) - set(ids):
            raise ValueError(f"origins of unknown findings: {sorted(set(origins) - set(ids))}")
        self._findings = sorted(items, key=lambda f: -f.score)
        self._origin = {f.id: origins.get(f.id, f) for f in items}
        self._undo.clear()
        self._redo.clear()
        vis = self.visible
        self._current = current if current in {f.id for f in vis} else (vis[0].id if vis else None)
        self._emit("findings", "reset")

    @property
    def findings(self) -> list[Finding]:
        return list(self._findings)

    def get(self, finding_id: str) -> Finding:
        for f in self._findings:
            if f.id == finding_id:
                return f
        raise KeyError(finding_id)

    def original(self, finding_id: str) -> Finding:
        """The finding as the detector (or the report) gave it, before any edit."""
        return self._origin[finding_id]

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

    def edited_count(self) -> int:
        """How many visible findings the reviewer edited."""
        return sum(1 for f in self.visible if f.edited)

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
        if old != state:
            self._push([(fid, {"state": old}, {"state": state})])

    def edit_box(self, lo_mm, hi_mm, finding_id: str | None = None) -> None:
        """Move or resize a finding's box (LPS mm; the current finding's by default). Undoable."""
        fid = finding_id or self._current
        if fid is None:
            return
        f = self.get(fid)
        lo = tuple(float(min(a, b)) for a, b in zip(lo_mm, hi_mm))
        hi = tuple(float(max(a, b)) for a, b in zip(lo_mm, hi_mm))
        if np.allclose(lo, f.lo_mm, atol=1e-6) and np.allclose(hi, f.hi_mm, atol=1e-6):
            return
        old = {"lo_mm": f.lo_mm, "hi_mm": f.hi_mm, "centre_mm": f.centre_mm}
        self._push([(fid, old, {"lo_mm": lo, "hi_mm": hi, "centre_mm": None})])

    def update_finding(self, finding_id: str, **fields: Any) -> Finding:
        """Put recomputed figures (``volume_ml``, ``mean_hu``, ``slice_index``) or an edited ``mask`` in place
        (not an undo step); returns the finding as it now is."""
        allowed = {"mask", "volume_ml", "mean_hu", "slice_index"}
        if set(fields) - allowed:
            raise ValueError(f"update_finding changes only {sorted(allowed)}, not {sorted(set(fields) - allowed)}")
        self.get(finding_id)
        self._findings = [self._marked(replace(f, **fields)) if f.id == finding_id else f for f in self._findings]
        self._emit("finding", finding_id)
        return self.get(finding_id)

    def replace_finding(self, finding: Finding) -> None:
        """Put an edited finding (box or mask changed) in place of the one with its id (not undoable)."""
        self.get(finding.id)
        self._findings = sorted([self._marked(finding) if f.id == finding.id else f for f in self._findings],
                                key=lambda f: -f.score)
        self._emit("findings")

    def _marked(self, f: Finding) -> Finding:
        """``f`` with its ``edited`` mark: set while its box or mask differs from the original."""
        origin = self._origin.get(f.id)
        edited = f.edited if origin is None else (origin.edited or not same_box(origin, f)
                                                  or not same_mask(origin.mask, f.mask))
        return f if edited == f.edited else replace(f, edited=edited)

    def _push(self, changes) -> None:
        self._apply(changes, "new")
        self._undo.append(changes)
        self._redo.clear()
        self._emit("step")

    def _apply(self, changes, which: str) -> None:
        by_id = {fid: (new if which == "new" else old) for fid, old, new in changes}
        self._findings = [self._marked(replace(f, **by_id[f.id])) if f.id in by_id else f for f in self._findings]
        ids = [fid for fid, _o, _n in changes]
        boxes = any("lo_mm" in new for _fid, _o, new in changes)
        self._emit("boxes" if boxes else "states", ids)

    def undo(self) -> None:
        if not self._undo:
            return
        changes = self._undo.pop()
        self._apply(changes, "old")
        self._redo.append(changes)

    def redo(self) -> None:
        if not self._redo:
            return
        changes = self._redo.pop()
        self._apply(changes, "new")
        self._undo.append(changes)
