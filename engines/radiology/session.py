"""The radiology session: everything the workspace knows about the open study, Qt-free and evented (psygnal).

A :class:`RadiologySession` holds the open volume (with its geometry) and study scan, the cursor (a slice
index per plane), the window/level, the label and box layers, the comparison image, the measurements, the
brush's undo/redo history and which layers hold unexported edits (``dirty``). Views subscribe to its signals
and forward user actions to its methods; a test, a script or a batch job drives it the same way with no
screen. Opening another volume resets all of it (the view asks first while ``dirty``).

Its methods are quick (a slice, a brush disc); what touches whole volumes is a module function that a worker
runs - :func:`engines.radiology.resample.place_labels`, :func:`~engines.radiology.resample.comparison_on_grid`,
:func:`measure_roi`, :func:`engines.radiology.opening.auto_window`, :func:`write_autosave`,
:func:`load_autosave_layers` - and whose result the session then takes (``add_placed_layer``,
``set_comparison``, ``measurements.add``, ``open_volume(auto_window=...)``, ``restore_layers``). The
``add_label_layer``/``add_comparison`` conveniences do both steps in the caller's thread (batch use).

A detector's findings are reviewed in ``review`` (an ``engines.radiology.findings.FindingsReview``): the
finding being edited (``editing``) has its box moved or resized on a plane (``set_finding_rect``) and its own
mask layer painted with the brush; state changes, box edits and strokes share one undo history. After an
edit ``finding_stats_due`` asks for its volume and mean HU: ``finding_stats_job`` snapshots what a worker
measures and ``apply_finding_stats`` takes the answer (stale ones dropped). A head CT opens in the brain
window (``engines.radiology.windows``): from its tags at once, from its image through ``window_choice_job``.
The review is autosaved with the label edits (``autosave_snapshot()["review"]``; ``autosave_requested``
asks for a write after a review change) and comes back after a restart through ``restore_review``: the same
list, states, boxes and masks, each painted mask again in its finding's own layer.
The session itself is not thread-safe: call it from one thread (the GUI thread in the app).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from engines.core.history import UndoHistory
from engines.radiology.brush import paint_segment
from engines.radiology.findings import (FindingStats, FindingsReview, box_cuts, box_index_bounds, box_rect,
                                        box_with_rect, finding_statistics)
from engines.radiology.label_autosave import (RestoredReview, autosave_file, load_autosave_layers,  # noqa: F401
                                              write_autosave)
from engines.radiology.labelstats import empty_layer_problem
from engines.radiology.layers import BoxLayer, LabelLayer, to_boxes
from engines.radiology.measurements import PLANE_AXES, Measurement, MeasurementSet, make_roi, make_ruler
from engines.radiology.resample import PlacedLabels, comparison_on_grid, is_on_grid, place_labels
from engines.radiology.windows import WindowChoice, choose_ct_window, review_window

PLANES = ("axial", "coronal", "sagittal")
NORMAL_AXIS = {plane: axes[0] for plane, axes in PLANE_AXES.items()}  # plane -> voxel axis (0 i, 1 j, 2 k)
UNDO_DEPTH = 20  # strokes; each keeps two copies of one slice
RESTORED_SUFFIX = " (autosaved edits)"


@dataclass
class Comparison:
    """An image compared with the shown one: real values on the display grid."""

    name: str
    image: np.ndarray  # float32 [k, j, i]

    def __getitem__(self, n: int):  # (name, image), as the view's callers have read it
        return (self.name, self.image)[n]

    def __len__(self) -> int:
        return 2


class _ReviewStep:
    """A step of the findings review (a state or box change) in the session's one undo history."""


@dataclass
class _Stroke:
    layer: LabelLayer
    plane: str
    index: int
    before: np.ndarray
    after: np.ndarray | None = None


def plane_slice(array: np.ndarray, plane: str, cursor) -> np.ndarray:
    """The 2-D slice of ``array`` ``[k, j, i]`` that ``plane`` shows at ``cursor`` (i, j, k): a view, not a copy
    (rows along the view's vertical axis)."""
    i, j, k = cursor
    if plane == "axial":
        return array[k]
    if plane == "coronal":
        return array[:, j, :]
    return array[:, :, i]


class RadiologySession(UndoHistory):
    """The open study and everything drawn over it (see the module docstring)."""

    volume_changed = Signal(object)  # the new Volume (None when closed)
    cursor_changed = Signal(tuple, tuple)  # (i, j, k), which of the three axes changed
    window_changed = Signal(float, float)  # width, level in real units
    invert_changed = Signal(bool)
    layers_changed = Signal()  # a label or box layer was added, or one's drawing changed
    layer_added = Signal(object)  # a new LabelLayer (its statistics are due)
    labels_edited = Signal(object)  # the LabelLayer whose voxels changed (each brush dab, undo, redo)
    edits_committed = Signal(object)  # a stroke ended, or an undo/redo: the layer's statistics and autosave are due
    comparison_changed = Signal()
    compare_mode_changed = Signal(str)
    history_changed = Signal(bool, bool)  # can undo, can redo
    dirty_changed = Signal(bool)
    notice = Signal(str, str)  # level ("info" | "warning"), a sentence for the user
    finding_edit_changed = Signal(object)  # the id of the finding whose box and mask are edited (None: none)
    finding_stats_due = Signal(str)  # a finding's box or mask changed: a worker runs finding_stats_job(id)
    window_choice_changed = Signal(object)  # the WindowChoice the image check made (head CT: brain window)
    autosave_requested = Signal()  # the review changed (a state, a box, a mask's figures): an autosave is due

    def __init__(self) -> None:
        self.volume = None
        self.scan = None
        self.cursor: list[int] = [0, 0, 0]  # i, j, k
        self.window: tuple[float, float] = (400.0, 40.0)  # width, level (real units)
        self.auto_window_values: tuple[float, float] | None = None
        self.invert = False
        self.layers: list[LabelLayer] = []
        self.box_layers: list[BoxLayer] = []
        self.current: LabelLayer | None = None  # the layer the brush paints and the label list shows
        self.comparison: Comparison | None = None
        self.compare_mode = "off"  # off | swipe | flicker | difference | side
        self.swipe = 0.5
        self.measurements = MeasurementSet()
        self._undo: list[_Stroke] = []
        self._redo: list[_Stroke] = []
        self._stroke: _Stroke | None = None
        self._last_dab: tuple[float, float] | None = None
        self._pending_autosave = False  # edits since the last autosave snapshot
        self._was_dirty = False
        self.review = FindingsReview()
        self.review.subscribe(self._review_changed)
        self.editing: str | None = None  # the finding whose box and mask are being edited
        self.review_engine = ""  # the engine whose findings are reviewed (the report names it)
        self._restoring_review = False
        self._finding_layers: dict[str, LabelLayer] = {}  # finding id -> its own mask layer (made when edited)
        self._finding_boxes: dict[str, tuple] = {}  # finding id -> its box as box layers draw it
        self._stats_revision: dict[str, int] = {}
        self._stats_counter = 0
        self.window_choice: WindowChoice | None = None
        self._opening_window: tuple[float, float] | None = None
        self.edits_committed.connect(self._finding_mask_committed)

    # ============================================================================================ study
    def open_volume(self, volume, *, scan=None, auto_window: tuple[float, float] | None = None) -> None:
        """Show ``volume`` (a reader Volume): layers, comparison, measurements, undo start afresh; the cursor
        goes to the centre, the window to the volume's own (``auto_window``: precomputed 'Auto' values, else
        computed here when needed)."""
        from engines.radiology.opening import initial_window

        self.volume, self.scan = volume, scan
        self.layers.clear()
        self.box_layers.clear()
        self.current = None
        self.comparison = None
        self.compare_mode = "off"
        self.measurements.clear()
        self._undo.clear()
        self._redo.clear()
        self._stroke = None
        self._pending_autosave = False
        nk, nj, ni = volume.shape
        self.cursor = [ni // 2, nj // 2, nk // 2]
        self.auto_window_values = auto_window
        self.window = initial_window(volume, auto_window)
        if auto_window is None and not volume.meta.get("window") and volume.modality != "CT":
            self.auto_window_values = self.window
        self.window_choice = choose_ct_window(volume, look=False)  # the tags only: the image is a worker's
        if self.window_choice.window is not None:
            self.window = self.window_choice.window
        self._opening_window = self.window
        self.editing = None
        self._finding_layers.clear()
        self.review_engine = ""
        self.review.set_findings([])
        self.invert = bool(volume.invert)
        self.volume_changed.emit(volume)
        self.history_changed.emit(False, False)
        self._update_dirty()

    def close(self) -> None:
        """Forget the study (nothing of it stays referenced)."""
        self.volume = self.scan = self.comparison = self.current = None
        self.editing = None
        self._finding_layers.clear()
        self.layers.clear()
        self.box_layers.clear()
        self.measurements.clear()
        self._undo.clear()
        self._redo.clear()
        self.volume_changed.emit(None)

    def series_title(self) -> str:
        if self.volume is None:
            return ""
        if self.volume.series is not None:
            return self.volume.series.title()
        return str(self.volume.meta.get("series_description", "volume"))

    # ============================================================================================ cursor
    def set_cursor(self, i: int, j: int, k: int) -> tuple[bool, bool, bool]:
        """Move the crosshair (clamped to the volume); returns which of the i, j, k axes changed."""
        if self.volume is None:
            return (False, False, False)
        nk, nj, ni = self.volume.shape
        new = [int(np.clip(i, 0, ni - 1)), int(np.clip(j, 0, nj - 1)), int(np.clip(k, 0, nk - 1))]
        changed = tuple(a != b for a, b in zip(new, self.cursor))
        self.cursor = new
        if any(changed):
            self.cursor_changed.emit(tuple(new), changed)
        return changed  # type: ignore[return-value]

    def scroll(self, plane: str, delta: int) -> None:
        """Step ``delta`` slices through ``plane`` (coronal counts towards anterior, as it is shown)."""
        cur = list(self.cursor)
        axis = NORMAL_AXIS[plane]
        cur[axis] += -delta if plane == "coronal" else delta
        self.set_cursor(*cur)

    def set_slice(self, plane: str, index: int) -> None:
        cur = list(self.cursor)
        cur[NORMAL_AXIS[plane]] = int(index)
        self.set_cursor(*cur)

    def slice_index(self, plane: str) -> tuple[int, int]:
        """(index, count) of the slice ``plane`` shows."""
        axis = NORMAL_AXIS[plane]
        return self.cursor[axis], self.volume.shape[2 - axis]

    def slice_of(self, array: np.ndarray, plane: str) -> np.ndarray:
        return plane_slice(array, plane, self.cursor)

    def voxel_at(self, plane: str, h_mm: float, v_mm: float) -> list[int]:
        """The (i, j, k) voxel under a point of a plane's view (view millimetres), keeping the cursor on the
        plane's normal axis (not clamped)."""
        _normal, h, v = PLANE_AXES[plane]
        sp = self.volume.geometry.spacing
        cur = list(self.cursor)
        cur[h] = int(np.floor(h_mm / sp[h]))
        cur[v] = int(np.floor(v_mm / sp[v]))
        return cur

    def contains(self, ijk) -> bool:
        nk, nj, ni = self.volume.shape
        return 0 <= ijk[0] < ni and 0 <= ijk[1] < nj and 0 <= ijk[2] < nk

    def go_to_lps(self, lps) -> None:
        i, j, k = np.rint(self.volume.geometry.lps_to_index(lps)).astype(int)
        self.set_cursor(i, j, k)

    def readout_text(self, i: int, j: int, k: int) -> str:
        """Position, value and the labels under voxel (i, j, k), as the status line shows them."""
        vol = self.volume
        x, y, z = vol.geometry.index_to_lps([i, j, k])
        unit = vol.unit()
        text = (f"({x:.1f}, {y:.1f}, {z:.1f}) mm LPS   voxel [{i}, {j}, {k}]   "
                f"value {vol.value_at(k, j, i):.0f}{(' ' + unit) if unit else ''}")
        for layer in self.layers:
            if layer.visible:
                lab = int(layer.labels[k, j, i])
                if lab:
                    text += f"   {layer.name}: {layer.names.get(lab, lab)}"
        if self.comparison is not None:
            text += f"   {self.comparison.name}: {float(self.comparison.image[k, j, i]):.0f}"
        return text

    # ============================================================================================ window
    def set_window(self, width: float, level: float) -> None:
        self.window = (max(1.0, float(width)), float(level))
        self.window_changed.emit(*self.window)

    def auto_window(self) -> None:
        """The 1-99 % window (computed once per volume: precomputed by the opener, else here)."""
        if self.volume is None:
            return
        if self.auto_window_values is None:
            from engines.radiology.opening import auto_window

            self.auto_window_values = auto_window(self.volume)
        self.set_window(*self.auto_window_values)

    def drag_window(self, start_window: tuple[float, float], dx: float, dy: float) -> None:
        """A right-drag of (dx, dy) screen pixels from ``start_window``: right widens, up raises the level."""
        w0, l0 = start_window
        scale = max(0.5, w0 / 256.0)
        self.set_window(w0 + dx * scale, l0 - dy * scale)

    def levels(self) -> tuple[float, float]:
        """The window's (low, high) in stored units (what the image items are given)."""
        width, level = self.window
        lo, hi = level - width / 2, level + width / 2
        vol = self.volume
        return (vol.stored(lo), vol.stored(hi)) if vol is not None else (lo, hi)

    def set_invert(self, on: bool) -> None:
        self.invert = bool(on)
        self.invert_changed.emit(self.invert)

    # ============================================================================================ layers
    def placed(self, labels, geometry=None, names: Mapping[int, str] | None = None) -> PlacedLabels:
        """``labels`` put on the display grid (in the caller's thread; a worker calls ``place_labels``)."""
        return place_labels(labels, geometry, names, self.volume.geometry, self.volume.shape)

    def needs_placing(self, labels, geometry=None) -> bool:
        """Whether ``labels`` must be converted or resampled before it can be shown (then do it in a worker)."""
        if not isinstance(labels, np.ndarray) or self.volume is None:
            return True
        shape = labels.shape if labels.ndim == 3 else (1, *labels.shape)
        return not is_on_grid(shape, geometry, self.volume.geometry, self.volume.shape)

    def add_label_layer(self, labels, geometry=None, names: Mapping[int, str] | None = None, name: str = "",
                        user_created: bool = False) -> LabelLayer:
        """Place (in this thread) and add a label map: an ndarray ``[k, j, i]`` with its geometry (None: the
        display grid), a SimpleITK image or a LabelMap."""
        return self.add_placed_layer(self.placed(labels, geometry, names), name=name, user_created=user_created)

    def add_placed_layer(self, placed: PlacedLabels, name: str = "", user_created: bool = False) -> LabelLayer:
        """Add a label map already on the display grid; an empty one that should not be is reported through
        ``notice``. The new layer becomes the current one."""
        if self.volume is None:
            raise ValueError("open an image before adding a label layer")
        grid = placed.grid
        if tuple(grid.labels.shape) != tuple(self.volume.shape):
            raise ValueError(f"labels {grid.labels.shape} are not on the shown grid {self.volume.shape}")
        layer = LabelLayer(name=name or placed.source.source or f"labels {len(self.layers) + 1}", labels=grid.labels,
                           names=dict(grid.names), colours=dict(grid.colours), source=placed.source)
        layer._max_label = placed.max_label
        problem = empty_layer_problem(layer.name, placed.source_has_labels, placed.shown_has_labels, user_created)
        if problem:
            self.notice.emit("warning", problem)
        elif not user_created:
            self.notice.emit("info", f"{layer.name}: shown as a label layer over {self.series_title()} "
                                     f"({len(layer.names)} label(s); counts, volumes and means in the Layers tab)")
        self.layers.append(layer)
        self.current = layer
        self.layer_added.emit(layer)
        self.layers_changed.emit()
        return layer

    def new_correction_layer(self) -> LabelLayer:
        """An empty layer to paint on (made by the first brush stroke when there is none)."""
        empty = np.zeros(self.volume.shape, np.uint8)
        return self.add_placed_layer(self.placed(empty, None, {1: "correction"}), name="corrections",
                                     user_created=True)

    def current_layer(self) -> LabelLayer | None:
        if self.current is not None and self.current in self.layers:
            return self.current
        return self.layers[-1] if self.layers else None

    def select_layer(self, layer: LabelLayer | None) -> None:
        self.current = layer

    def set_layer_visible(self, layer: LabelLayer, visible: bool) -> None:
        layer.visible = bool(visible)
        self.layers_changed.emit()

    def set_layer_style(self, layer: LabelLayer, *, opacity: float | None = None, outline: bool | None = None) -> None:
        if opacity is not None:
            layer.opacity = float(opacity)
        if outline is not None:
            layer.outline = bool(outline)
        self.layers_changed.emit()

    def set_label_hidden(self, layer: LabelLayer, value: int, hidden: bool) -> None:
        (layer.hidden_labels.add if hidden else layer.hidden_labels.discard)(int(value))
        self.layers_changed.emit()

    def add_boxes(self, boxes, name: str = "detections", threshold: float = 0.5) -> BoxLayer:
        """Add detection boxes (see ``layers.to_boxes`` for the forms a box may take)."""
        layer = BoxLayer(name, to_boxes(boxes, self.volume.geometry), threshold)
        self.box_layers.append(layer)
        self.layers_changed.emit()
        return layer

    def set_box_threshold(self, threshold: float) -> None:
        for layer in self.box_layers:
            layer.threshold = float(threshold)
        self.layers_changed.emit()

    def box_rects(self, plane: str, h: int, v: int) -> list[tuple[float, float, float, float]]:
        """Every visible box that cuts the slice ``plane`` shows, in that view's millimetres."""
        if self.volume is None:
            return []
        axis = NORMAL_AXIS[plane]
        rects: list = []
        for layer in self.box_layers:
            rects.extend(layer.rects_on(self.volume.geometry, axis, self.cursor[axis], h, v))
        return rects

    # ============================================================================================ comparison
    def set_comparison(self, name: str, image: np.ndarray) -> None:
        """Compare with ``image`` (float32 real values on the display grid); swipe is the first mode."""
        if tuple(image.shape) != tuple(self.volume.shape):
            raise ValueError(f"comparison {image.shape} is not on the shown grid {self.volume.shape}")
        self.comparison = Comparison(name, np.ascontiguousarray(image, dtype=np.float32))
        self.comparison_changed.emit()
        if self.compare_mode == "off":
            self.set_compare_mode("swipe")

    def add_comparison(self, image, geometry=None, name: str = "comparison") -> None:
        """Resample (in this thread) and compare: an ndarray, a SimpleITK image or a Volume."""
        self.set_comparison(name, comparison_on_grid(image, geometry, self.volume.geometry, self.volume.shape))

    def set_compare_mode(self, mode: str) -> None:
        mode = mode.lower()
        mode = "side" if mode.startswith("side") else mode
        if mode not in ("off", "swipe", "flicker", "difference", "side"):
            raise ValueError(f"unknown comparison mode {mode!r}")
        self.compare_mode = mode
        self.compare_mode_changed.emit(mode)

    def set_swipe(self, fraction: float) -> None:
        self.swipe = float(np.clip(fraction, 0.0, 1.0))
        self.comparison_changed.emit()

    # ============================================================================================ brush
    def paint(self, plane: str, h_mm: float, v_mm: float, *, radius_mm: float, value: int, start: bool,
              finish: bool) -> LabelLayer:
        """One brush dab at a point of ``plane``'s view (view millimetres) on the current layer (a new
        'corrections' layer when there is none); ``value`` 0 erases. A stroke is the dabs from ``start`` to
        ``finish`` on one slice (joined, so a fast drag leaves no gaps) and is one step of undo."""
        layer = self.current_layer() or self.new_correction_layer()
        index = self.cursor[NORMAL_AXIS[plane]]
        target = self.slice_of(layer.labels, plane)  # a view: painting writes into the layer
        stroke = self._stroke
        if start or stroke is None or (stroke.layer, stroke.plane, stroke.index) != (layer, plane, index):
            self._finish_stroke()
            self._stroke = _Stroke(layer, plane, index, target.copy())
            self._last_dab = None
        _normal, h, v = PLANE_AXES[plane]
        sp = self.volume.geometry.spacing
        centre = (v_mm / sp[v] - 0.5, h_mm / sp[h] - 0.5)  # pixel units, pixel centres at whole numbers
        layer.add_label(int(value))
        if paint_segment(target, self._last_dab, centre, radius_mm, (sp[v], sp[h]), int(value)):
            if value:
                layer._max_label = max(layer._max_label or 0, int(value))
            self.labels_edited.emit(layer)
        self._last_dab = centre
        if finish:
            self._finish_stroke()
        return layer

    def _finish_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return
        stroke.after = plane_slice(stroke.layer.labels, stroke.plane, self._cursor_on(stroke)).copy()
        if np.array_equal(stroke.after, stroke.before):
            return
        self._undo.append(stroke)
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()
        self._mark_edited(stroke.layer)

    def _cursor_on(self, stroke: _Stroke) -> list[int]:
        cur = list(self.cursor)
        cur[NORMAL_AXIS[stroke.plane]] = stroke.index
        return cur

    @property
    def painting_plane(self) -> str | None:
        """The plane a brush stroke is being painted on (between its start and finish), else None."""
        return self._stroke.plane if self._stroke is not None else None

    def set_auto_window(self, values: tuple[float, float]) -> None:
        """Take the 'Auto' window computed in a worker (``opening.auto_window``) and use it."""
        self.auto_window_values = (float(values[0]), float(values[1]))
        self.set_window(*self.auto_window_values)

    def undo(self) -> bool:
        """Undo the last brush/eraser stroke; False when there is none."""
        self._finish_stroke()
        return self._step(self._undo, self._redo, "before")

    def redo(self) -> bool:
        """Redo the last undone stroke; False when there is none."""
        return self._step(self._redo, self._undo, "after")

    def _step(self, source: list, sink: list, which: str) -> bool:
        if not source:
            return False
        stroke = source.pop()
        if isinstance(stroke, _ReviewStep):  # a review state or box change
            (self.review.undo if which == "before" else self.review.redo)()
            sink.append(stroke)
            self.history_changed.emit(self.can_undo, self.can_redo)
            return True
        if stroke.layer in self.layers:
            plane_slice(stroke.layer.labels, stroke.plane, self._cursor_on(stroke))[...] = getattr(stroke, which)
            sink.append(stroke)
            self.labels_edited.emit(stroke.layer)
            self._mark_edited(stroke.layer)
        else:
            self.history_changed.emit(self.can_undo, self.can_redo)
        return True

    def _mark_edited(self, layer: LabelLayer) -> None:
        layer.unsaved = True
        self._pending_autosave = True
        self.history_changed.emit(self.can_undo, self.can_redo)
        self._update_dirty()
        self.edits_committed.emit(layer)

    # ============================================================================================ findings review
    def start_review(self, findings, *, threshold: float | None = None, engine: str = "") -> None:
        """Review ``findings`` (a detector's); a head CT haemorrhage review starts in the brain window."""
        if threshold is not None:
            self.review.set_threshold(threshold)
        findings = list(findings)
        self.review_engine = str(engine)
        self.review.set_findings(findings)
        self._review_autosave_due()  # a new review replaces the autosaved one (none: it goes)
        window = review_window(engine, findings)
        if window is not None and self.volume is not None and self.volume.modality == "CT":
            self.set_window(*window)

    def edit_finding(self, finding_id: str | None) -> None:
        """Edit ``finding_id``'s box (``set_finding_rect``) and mask (the brush paints its own mask layer,
        made from its mask the first time); None ends editing. The crosshair moves into the box when the
        shown slices miss it."""
        if finding_id is not None:
            self.review.get(finding_id)
        if finding_id == self.editing or self.volume is None:
            return
        before = self._finding_layers.get(self.editing) if self.editing is not None else None
        if before is not None:
            before.visible = False
        self.editing = finding_id
        if finding_id is not None:
            layer = self._finding_layers.get(finding_id) or self._new_finding_layer(finding_id)
            layer.visible = True
            self.current = layer
            f = self.review.get(finding_id)
            lo, hi = box_index_bounds(f.lo_mm, f.hi_mm, self.volume.geometry)
            if not all(lo[a] - 0.5 <= self.cursor[a] <= hi[a] + 0.5 for a in range(3)):
                self.go_to_lps(f.centre)
        self.finding_edit_changed.emit(finding_id)
        self.layers_changed.emit()

    def toggle_finding_edit(self) -> str | None:
        """Start editing the current finding, or stop editing; returns the finding edited now (or None)."""
        current = self.review.current
        self.edit_finding(None if self.editing is not None or current is None else current.id)
        return self.editing

    def finding_layer(self, finding_id: str) -> LabelLayer | None:
        """The mask layer of a finding that was edited (None before its first edit)."""
        return self._finding_layers.get(finding_id)

    def _new_finding_layer(self, finding_id: str) -> LabelLayer:
        f = self.review.get(finding_id)
        labels = np.zeros(self.volume.shape, np.uint8)
        if f.mask is not None:
            labels[f.mask.full(self.volume.shape)] = 1
        layer = self.add_placed_layer(self.placed(labels, None, {1: f"{f.id} {f.type}"}),
                                      name=f"{f.id} mask (review)", user_created=True)
        layer.outline = True  # the lesion's own density stays visible inside the mask being edited
        self._finding_layers[finding_id] = layer
        return layer

    def finding_mask_snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the mask layers of edited findings, by id (what an export writes; see ``with_masks``)."""
        return {fid: layer.labels.copy() for fid, layer in self._finding_layers.items() if layer in self.layers}

    def finding_rect(self, plane: str) -> tuple[float, float, float, float] | None:
        """The edited finding's box on the slice ``plane`` shows (view mm: h0, v0, h1, v1), or None when
        nothing is edited or the slice misses the box."""
        if self.editing is None or self.volume is None:
            return None
        f = self.review.get(self.editing)
        normal, h, v = PLANE_AXES[plane]
        if not box_cuts(f.lo_mm, f.hi_mm, self.volume.geometry, normal, self.cursor[normal]):
            return None
        return box_rect(f.lo_mm, f.hi_mm, self.volume.geometry, h, v)

    def set_finding_rect(self, plane: str, rect_mm) -> None:
        """The edited finding's box moved or resized on ``plane`` to ``rect_mm`` (view mm): one undo step."""
        if self.editing is None or self.volume is None:
            return
        f = self.review.get(self.editing)
        _normal, h, v = PLANE_AXES[plane]
        lo, hi = box_with_rect(f.lo_mm, f.hi_mm, self.volume.geometry, h, v, rect_mm)
        self.review.edit_box(lo, hi, self.editing)

    def finding_stats_job(self, finding_id: str):
        """A job for a worker (``job(progress, cancel) -> FindingStats``) measuring ``finding_id`` as it is now:
        the mask being painted is copied here, in the caller's thread, so the brush may go on."""
        f = self.review.get(finding_id)
        volume, revision = self.volume, self._stats_revision.get(finding_id, 0)
        layer = self._finding_layers.get(finding_id)
        labels = layer.labels.copy() if layer is not None else None
        return lambda progress=None, cancel=None: finding_statistics(volume, f, labels, revision=revision)

    def apply_finding_stats(self, stats: FindingStats) -> bool:
        """Take a worker's measurement of a finding; False (dropped) when a later edit or study made it stale."""
        fid = stats.finding_id
        if self.volume is None or stats.revision != self._stats_revision.get(fid, 0):
            return False
        fields: dict[str, Any] = {"volume_ml": stats.volume_ml, "mean_hu": stats.mean_hu,
                                  "slice_index": stats.slice_index}
        if fid in self._finding_layers:
            fields["mask"] = stats.mask
        self.review.update_finding(fid, **fields)
        return True

    def update_finding_stats(self, finding_id: str) -> bool:
        """Measure and take ``finding_id``'s figures in the caller's thread (scripts, tests)."""
        return self.apply_finding_stats(self.finding_stats_job(finding_id)())

    def _stats_due(self, finding_id: str) -> None:
        self._stats_counter += 1
        self._stats_revision[finding_id] = self._stats_counter
        self.finding_stats_due.emit(finding_id)

    def _finding_mask_committed(self, layer) -> None:
        for fid, own in self._finding_layers.items():
            if own is layer:
                self._stats_due(fid)
                return

    def _review_autosave_due(self) -> None:
        if self._restoring_review or self.volume is None:
            return
        self._pending_autosave = True
        self.autosave_requested.emit()

    def _review_changed(self, what: str, detail) -> None:
        if what in ("states", "boxes", "finding", "threshold"):
            self._review_autosave_due()
        if what == "step":  # a new review step: it joins the one history, after the strokes before it
            self._finish_stroke()
            self._undo.append(_ReviewStep())
            self._redo.clear()
            self.history_changed.emit(self.can_undo, self.can_redo)
        elif what == "findings" and detail == "reset":
            self._undo[:] = [e for e in self._undo if not isinstance(e, _ReviewStep)]
            self._redo[:] = [e for e in self._redo if not isinstance(e, _ReviewStep)]
            dropped = [layer for layer in self._finding_layers.values() if layer in self.layers]
            for layer in dropped:
                self.layers.remove(layer)
            if self.current in dropped:
                self.current = None
            self._finding_layers.clear()
            self._stats_revision.clear()
            self._finding_boxes = {f.id: (f.lo_mm, f.hi_mm) for f in self.review.findings}
            if self.editing is not None:
                self.editing = None
                self.finding_edit_changed.emit(None)
            self.history_changed.emit(self.can_undo, self.can_redo)
            if dropped:
                self._update_dirty()
                self.layers_changed.emit()
        elif what == "boxes":
            for fid in detail:
                self._finding_box_moved(fid)
            self.layers_changed.emit()
        elif what == "current" and self.editing is not None and detail != self.editing:
            self.edit_finding(detail)

    def _finding_box_moved(self, finding_id: str) -> None:
        """Box layers drawing the finding's old box draw the new one; a finding without a mask is measured in
        its box again."""
        from dataclasses import replace

        f = self.review.get(finding_id)
        old = self._finding_boxes.get(finding_id)
        if old is not None:
            for layer in self.box_layers:
                hits = [n for n, b in enumerate(layer.boxes)
                        if np.allclose(b.lo_mm, old[0], atol=1e-3) and np.allclose(b.hi_mm, old[1], atol=1e-3)]
                for n in hits:
                    layer.boxes[n] = replace(layer.boxes[n], lo_mm=tuple(f.lo_mm), hi_mm=tuple(f.hi_mm))
                if hits:
                    layer.lo = None  # indexed again on the next draw
        self._finding_boxes[finding_id] = (f.lo_mm, f.hi_mm)
        if f.mask is None and finding_id not in self._finding_layers:
            self._stats_due(finding_id)

    # ============================================================================================ head CT window
    def window_choice_job(self):
        """For a CT whose tags did not say whether it is a head: the image check, as a job for a worker
        (``job(progress, cancel) -> (volume, WindowChoice)``); None when there is nothing to decide."""
        volume, choice = self.volume, self.window_choice
        if volume is None or choice is None or choice.head is not None:
            return None
        return lambda progress=None, cancel=None: (volume, choose_ct_window(volume))

    def apply_window_choice(self, volume, choice: WindowChoice) -> bool:
        """Take the image check's answer: a head CT shows in the brain window, unless the user has already
        chosen another window. False when the study changed meanwhile."""
        if volume is not self.volume:
            return False
        self.window_choice = choice
        if choice.window is not None and self.window == self._opening_window:
            self.set_window(*choice.window)
            self._opening_window = self.window
        self.window_choice_changed.emit(choice)
        return True

    # ============================================================================================ dirty / export
    @property
    def dirty(self) -> bool:
        """Whether a label layer holds edits that were never exported (opening another study asks first)."""
        return any(layer.unsaved for layer in self.layers)

    def unsaved_layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers if layer.unsaved]

    def mark_exported(self, layer: LabelLayer) -> None:
        if layer in self.layers:
            layer.unsaved = False
            self._pending_autosave = True  # the autosave no longer needs to keep it
            self._update_dirty()

    def _update_dirty(self) -> None:
        dirty = self.dirty
        if dirty != self._was_dirty:
            self._was_dirty = dirty
            self.dirty_changed.emit(dirty)

    # ============================================================================================ measurements
    def measure_ruler(self, plane: str, a_mm, b_mm) -> Measurement:
        """A ruler on the slice ``plane`` shows (not yet kept: ``measurements.add`` keeps it)."""
        return make_ruler(plane, self.slice_index(plane)[0], a_mm, b_mm, self.volume.geometry)

    # ============================================================================================ autosave
    def autosave_file(self) -> Path | None:
        """Where this study's label edits are autosaved (the shared service's rule), or None without a key."""
        return autosave_file(self.volume)

    def autosave_due(self) -> bool:
        return self._pending_autosave

    def autosave_snapshot(self, *, force: bool = False) -> dict | None:
        """A copy of what the autosave keeps (every layer with unexported edits, and the findings review with
        the mask layers of its findings), or None when nothing changed since the last snapshot (``force``:
        whenever there is something to keep, e.g. at shutdown). Copies the edited layers (one memory copy
        each); encoding and writing are :func:`write_autosave`'s."""
        if self.volume is None or not (self._pending_autosave or (force and (self.dirty or self.review.findings))):
            return None
        path = self.autosave_file()
        if path is None:
            return None
        self._pending_autosave = False
        own = {id(layer) for layer in self._finding_layers.values()}  # kept with their findings, not as layers
        layers = [{"name": layer.name.removesuffix(RESTORED_SUFFIX), "names": dict(layer.names),
                   "colours": dict(layer.colours), "labels": layer.labels.copy()}
                  for layer in self.layers if layer.unsaved and id(layer) not in own]
        return {"path": path, "series": self.series_title(), "geometry": self.volume.geometry, "layers": layers,
                "review": self._review_snapshot()}

    def _review_snapshot(self) -> dict | None:
        """The review as the autosave keeps it: findings, what the detector gave, threshold, cursor, engine, and
        a copy of each finding mask layer painted since its last export (what :func:`write_autosave` encodes;
        a finding's mask otherwise is its own)."""
        review = self.review
        findings = review.findings
        if not findings:
            return None
        current = review.current
        return {"findings": findings, "origins": {f.id: review.original(f.id) for f in findings},
                "threshold": review.threshold, "current": current.id if current is not None else None,
                "engine": self.review_engine, "shape": tuple(self.volume.shape),
                "layers": {fid: (layer.labels.copy(), layer.unsaved) for fid, layer in self._finding_layers.items()
                           if layer in self.layers and layer.unsaved}}

    def restore_review(self, restored: RestoredReview) -> None:
        """Take a review read back from the autosave (:func:`load_autosave_contents`): the same list, states,
        boxes and masks; a finding whose mask was painted gets its own mask layer again (hidden until it is
        edited), so its mask stays tied to it rather than coming back as a plain label layer."""
        if self.volume is None:
            raise ValueError("open the study before restoring its review")
        previous = self.current_layer()
        self._restoring_review = True
        try:
            self.review_engine = restored.engine
            self.review.set_threshold(restored.threshold)
            self.review.set_findings(restored.findings, origins=restored.origins, current=restored.current)
            for fid, unsaved in restored.layers.items():
                layer = self._new_finding_layer(fid)
                layer.visible = False
                layer.unsaved = bool(unsaved)
        finally:
            self._restoring_review = False
        self.current = previous
        self._update_dirty()
        self.layers_changed.emit()

    def restore_layers(self, label_maps: list) -> list[LabelLayer]:
        """Add autosaved layers (LabelMaps on the display grid, from :func:`load_autosave_layers`) as layers
        with unexported edits."""
        out = []
        for label_map in label_maps:
            placed = PlacedLabels(label_map, label_map, True, bool(label_map.labels.any()),
                                  int(label_map.labels.max(initial=0)))
            layer = self.add_placed_layer(placed, name=f"{label_map.source}{RESTORED_SUFFIX}", user_created=True)
            layer.unsaved = True
            out.append(layer)
        self._update_dirty()
        return out


# ================================================================================================ workers' side
def measure_roi(volume, plane: str, slice_index: int, a_mm, b_mm) -> Measurement:
    """An ROI on slice ``slice_index`` of ``plane`` with the statistics of the real values it covers (converts
    that one slice; run it in a worker for large images)."""
    cursor = [slice_index] * 3
    stored = plane_slice(volume.voxels, plane, cursor)
    return make_roi(plane, slice_index, a_mm, b_mm, volume.geometry, volume.real(stored), volume.unit())


class LazyEngineRequest(Mapping):
    """The request a radiology engine gets from the workspace: ``image`` (SimpleITK, real values, display
    geometry) is only built when the engine asks for it, in the worker thread."""

    def __init__(self, volume) -> None:
        self._volume = volume
        self._image = None

    def __getitem__(self, key: str) -> Any:
        if key == "image":
            if self._image is None:
                self._image = self._volume.to_sitk_real()
            return self._image
        if key == "volume":
            return self._volume
        if key == "image_path":
            return self._volume.source_path
        raise KeyError(key)

    def __iter__(self):
        return iter(("image", "volume", "image_path"))

    def __len__(self) -> int:
        return 3
