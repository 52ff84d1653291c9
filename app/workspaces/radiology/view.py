"""The radiology workspace: a DICOM/NIfTI series viewer with MPR, W/L, measurements and AI overlay layers.

The state lives in ``engines.radiology.session.RadiologySession`` (Qt-free, evented); reading, resampling,
statistics and export run in ``engines.radiology`` off the GUI thread. This module composes the thin views
bound to the session - the slice views (``planes``), the tool rows (``toolbar``), the Layers tab
(``layers_panel``), the Series and Tags tabs (``series_panel``), the Measurements and Review tabs - and wires
opening, engines and autosave. Public API for engines and scripts (all geometry-aware, so overlays never land
flipped):

    view.add_label_layer(labels, geometry=None, names=None, name="")   # ndarray [k,j,i] | SimpleITK | LabelMap
    view.add_boxes(boxes, name="")                                      # engines.radiology.overlays.Box / dicts
    view.add_comparison(image, geometry=None, name="")                  # ndarray | SimpleITK | Volume
    view.run_engine(engine_id)                                          # any radiology engine, progress + cancel
    view.export_seg(path) / view.export_labels(path) / view.export_boxes(path)   # atomic writes

A label map or comparison already on the shown grid is added at once (and returned); one that must be
converted or resampled is placed in a worker and arrives with ``layers_changed``. An engine result (a mapping)
is shown by ``show_engine_result``: ``labels`` + ``geometry`` (or ``mask``, a SimpleITK image) become a label
layer, ``boxes`` a box layer, ``image`` (SimpleITK or ndarray + geometry) a comparison; ``label_names`` names
the labels.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QListWidget, QSizePolicy, QSplitter, QTabWidget, QVBoxLayout, QWidget

from app.worker import plain_message
from app.workspaces.base import ShellContext, WorkspaceView
from app.workspaces.manifest import WorkspaceManifest
from app.workspaces.radiology.autosave import LabelAutosave
from app.workspaces.radiology.dialogs import confirm_discard_edits
from app.workspaces.radiology.engine_actions import EngineActions
from app.workspaces.radiology.export_menu import ExportActions
from app.workspaces.radiology.layers_panel import LabelStatistics, LayersPanel
from app.workspaces.radiology.measure_panel import MeasurementsPanel
from app.workspaces.radiology.planes import PlaneViews
from app.workspaces.radiology.series_panel import SeriesBrowser, TagPanel
from app.workspaces.radiology.toolbar import CT_PRESETS, WindowToolbar
from engines.radiology.layers import BoxLayer, LabelLayer  # noqa: F401 - re-exported for callers of the view
from engines.radiology.session import RadiologySession

log = logging.getLogger(__name__)
READOUT_HELP = ("Click or left-drag: crosshair (C hides it) · wheel/PgUp/PgDn/slider: scroll · Ctrl+wheel: zoom · "
                "middle or Shift+drag: pan · right-drag: W/L · 1-8: CT presets, A: auto · I: invert · R: reset")


def _state(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.session, name), doc=doc)


class RadiologyWorkspace(WorkspaceView, ExportActions, EngineActions):
    """Axial/coronal/sagittal views with linked crosshair, W/L presets, measurements, series browser, DICOM
    tags and overlay layers (label maps, detection boxes, image comparison), drawn from a RadiologySession."""

    volume_loaded = Signal()
    layers_changed = Signal()
    cursor_changed = Signal(int, int, int)

    volume = _state("volume", "The open reader Volume (or None).")
    scan = _state("scan", "The scanned DICOM study the volume came from (or None).")
    layers = _state("layers", "The label layers, in drawing order.")
    box_layers = _state("box_layers", "The detection box layers.")
    comparison = _state("comparison", "(name, real values on the grid) of the compared image, or None.")
    compare_mode = _state("compare_mode", "off | swipe | flicker | difference | side")
    window = _state("window", "(width, level) in real units.")
    invert = _state("invert", "Whether low values are drawn bright.")
    measurements = _state("measurements", "The rulers and ROIs (a MeasurementSet).")

    def __init__(self, manifest: WorkspaceManifest, context: ShellContext, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        self.session = RadiologySession()
        self._preview_active = False
        self._build()
        self._bind()
        self.autosave = LabelAutosave(self)

    @property
    def cursor(self) -> list[int]:
        return list(self.session.cursor)

    @property
    def layout_mode(self) -> str:
        return self.planes.layout_mode

    # ================================================================================= construction
    def _build(self) -> None:
        from app.widgets.check_banner import make_banner
        from app.workspaces.radiology.engine_checks import EngineContracts
        from app.workspaces.radiology.finding_editor import FindingBoxEditor
        from app.workspaces.radiology.findings_panel import FindingsPanel

        self.planes = PlaneViews(self)
        self.views, self.compare_view = self.planes.views, self.planes.compare_view
        self.measure_panel = MeasurementsPanel(self)
        self.toolbar = bar = WindowToolbar(self)
        for name in ("layout_box", "preset_box", "wl_label", "invert_box", "tool_box", "brush_size", "undo_button",
                     "redo_button", "engine_menu", "cancel_button"):
            setattr(self, name, getattr(bar, name))
        self.readout = QLabel("Open a DICOM folder, DICOMDIR, DICOM file or NIfTI/MHA/NRRD volume "
                              "(File ▸ Open, or drop it here), or press ‘Open sample’.")
        self.readout.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.measure_label = QLabel("")
        for label in (self.readout, self.measure_label):  # long texts must not widen the window
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
            label.setMinimumWidth(1)
        self.check_banner = make_banner()
        self.contracts = EngineContracts(self)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addLayout(bar.top)
        lv.addLayout(bar.tools)
        lv.addWidget(self.check_banner)
        lv.addWidget(self.planes.host, 1)
        lv.addWidget(self.readout)
        lv.addWidget(self.measure_label)

        self.tabs = QTabWidget()
        self.tabs.setMinimumWidth(240)
        self.tabs.tabBar().setExpanding(False)
        self.tabs.setUsesScrollButtons(True)
        self.series_browser = SeriesBrowser(self)
        self.series_list, self.study_label = self.series_browser.series_list, self.series_browser.study_label
        self.tabs.addTab(self.series_browser, "Series")
        self.layers_panel = panel = LayersPanel(self)
        for name in ("layer_list", "opacity", "outline_box", "label_tree", "threshold", "threshold_label", "box_list",
                     "compare_box", "swipe_slider", "compare_label"):
            setattr(self, name, getattr(panel, name))
        self.label_stats = LabelStatistics(self)
        self.label_tree.itemDoubleClicked.connect(self.label_stats.jump)
        self.tabs.addTab(panel, "Layers")
        self.tag_tree = TagPanel()
        self.tabs.addTab(self.tag_tree, "Tags")
        self.tabs.currentChanged.connect(lambda _i: self._update_tags())
        self.findings_list = QListWidget()
        self.findings_list.setWordWrap(True)
        self.tabs.addTab(self.findings_list, "Findings")
        self.findings_panel = FindingsPanel(self)  # a detector's findings, reviewed one by one
        self.finding_editor = FindingBoxEditor(self)  # the edited finding's box handles and mask in the views
        self.tabs.addTab(self.findings_panel, "Review")
        self.tabs.addTab(self.measure_panel, "Measurements")

        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([1000, 320])
        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.addWidget(splitter)
        self.planes.arrange()
        bar.fill_presets("CT")
        self._shortcuts()

    def _bind(self) -> None:
        for view in self.planes.all_views():
            view.scroll_requested.connect(lambda d, v=view: self.scroll(v.plane, d))
            view.cursor_requested.connect(self._cursor_from_view)
            view.window_drag.connect(self.toolbar.window_drag)
            view.hover.connect(self._hover)
            view.measure_drag.connect(self.measure_panel.dragged)
            view.paint_requested.connect(self._paint)
            view.slice_requested.connect(self.session.set_slice)
        s = self.session
        s.volume_changed.connect(self._study_changed)
        s.cursor_changed.connect(self._cursor_moved)
        s.window_changed.connect(lambda _w, _l: self.planes.render_all())
        s.invert_changed.connect(lambda _on: self.planes.render_all())
        s.layers_changed.connect(self._layers_changed)
        s.layer_added.connect(lambda layer: self.label_stats.compute(layer))
        s.labels_edited.connect(self._labels_edited)
        s.edits_committed.connect(self._edits_committed)
        s.comparison_changed.connect(self._layers_changed)
        s.compare_mode_changed.connect(self.planes.compare_mode_changed)
        s.notice.connect(lambda level, message: self.context.notify(level, message, ""))

    def _shortcuts(self) -> None:
        def add(key, fn):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)

        for n, (_name, w, level) in enumerate(CT_PRESETS, start=1):
            add(str(n), lambda w=w, level=level: self.set_window(w, level))
        add("A", self.auto_window)
        add(QKeySequence.Undo, self.undo_edit)
        add(QKeySequence.Redo, self.redo_edit)
        add("C", self.toggle_crosshair)
        add("Escape", lambda: self.tool_box.setCurrentText("Navigate"))
        add("R", self.reset_views)
        add("I", lambda: self.invert_box.setChecked(not self.invert_box.isChecked()))
        add("L", lambda: self.layout_box.setCurrentIndex(0 if self.layout_mode != "three" else 1))
        add("F", self.planes.flicker_tick)
        for key, d in (("PgUp", 1), ("PgDown", -1), ("Up", 1), ("Down", -1)):
            add(key, lambda d=d: self.scroll(self.planes.focus_plane(), d))

    def set_layout(self, mode: str, plane: str = "axial") -> None:
        """mode: 'three', 'single' (with ``plane``) or 'side' (base and comparison side by side)."""
        self.toolbar.show_layout(self.planes.set_layout(mode, plane))

    # ================================================================================= opening
    def open_path(self, path: Path) -> None:
        from engines.radiology.opening import read_path

        path = Path(path)
        # overlays are placed on the shown image in the worker, never in the GUI thread
        target = (self.volume.geometry, self.volume.shape) if self.volume is not None else None

        def done(result: dict) -> None:
            try:
                self._show_opened(path, result)
            except Exception as exc:  # noqa: BLE001 - what the reader returned could not be shown: say so
                import traceback

                log.exception("showing %s failed", path)
                self._open_failed(path.name, plain_message(f"Showing {path.name}", exc), traceback.format_exc())

        # the first slice travels as the job's partial result: a preview of an open that a newer one superseded
        # is dropped by the task adapter
        self.context.tasks.submit(lambda progress, cancel: read_path(path, target, progress=progress, cancel=cancel,
                                                                     on_preview=progress.partial),
                                  title=f"Opening {path.name}", owner=f"{self.manifest.id}:open", on_result=done,
                                  on_partial=self._show_preview,
                                  on_error=lambda message, detail: self._open_failed(path.name, message, detail))

    def _show_opened(self, path: Path, result: dict) -> None:
        self.context.add_recent(path)
        kind = result["kind"]
        if kind == "seg":
            self._add_seg(result["label_map"], result["ref_uid"], path, result["placed"])
        elif kind == "sr":
            self.show_report(result["lines"])
            if result.get("findings"):
                self._review_report(path, result["findings"], result.get("ref_uid", ""))
        elif kind == "labels":
            self.session.add_placed_layer(result["placed"], name=path.name)
            for problem in result.get("problems", []):
                self.context.notify("warning", f"{path.name}: {problem}", "")
        elif result["volume"] is not None and not self._may_replace(path.name):
            return
        elif kind == "volume":
            self.series_browser.fill([], {})
            self.set_volume(result["volume"], auto_window=result["auto_window"])
            for placed in result["placed"]:
                self.session.add_placed_layer(placed, name=placed.source.source)
        else:
            scan = result["scan"]
            self.series_browser.fill(scan.series, result["thumbs"])
            if result["volume"] is not None:
                self.set_volume(result["volume"], scan=scan, auto_window=result["auto_window"])
            else:
                self.session.scan = scan
                self._show_findings(scan.all_findings())
                self.context.notify("warning", f"{path.name}: no image series to show "
                                               f"({len(scan.series)} non-image object(s))", "")
        self.opened.emit(str(path))

    def _open_failed(self, name: str, message: str, detail: str) -> None:
        """An open that failed (in the reader or while showing its result): a plain message in Messages and
        in the view, and no 'loading…' left behind."""
        self.context.notify("error", message, detail)
        was_preview, self._preview_active = self._preview_active, False
        if self.volume is not None:
            self.planes.render_all()  # the image shown before stays, with its own corner text
            return
        axial = self.views["axial"]
        if was_preview:
            axial.show_image(np.zeros((2, 2), np.float32), (0, 1), None)
        axial.set_corner_text(f"{name} could not be opened")
        self.readout.setText(f"{message} (details in the log and in Messages)")

    def _error(self, message: str, detail: str) -> None:
        self.context.notify("error", message, detail)

    def load_series(self, series) -> None:
        """Load another series of the current scan (from the browser)."""
        from engines.radiology.opening import auto_window, read_series

        def job(progress, cancel):
            volume = read_series(series, progress=progress, cancel=cancel, on_preview=progress.partial)
            return volume, auto_window(volume)

        def done(result) -> None:
            if self._may_replace(series.title()):
                self.set_volume(result[0], scan=self.session.scan, auto_window=result[1])

        self.context.tasks.submit(job, title=f"Loading {series.title()}", owner=f"{self.manifest.id}:open",
                                  on_result=done, on_partial=self._show_preview, on_error=lambda msg, detail: self._open_failed(series.title(), msg,
                                                                                                 detail))

    def load_seg(self, path: Path) -> None:
        """A DICOM SEG of the study (from the browser), placed on the shown image in a worker."""
        from engines.radiology.overlays import read_seg
        from engines.radiology.resample import place_labels

        target = (self.volume.geometry, self.volume.shape) if self.volume is not None else None

        def job(progress, cancel):
            label_map, ref_uid = read_seg(path)
            return label_map, ref_uid, (place_labels(label_map, None, None, *target) if target else None)

        self.context.tasks.submit(job, title=f"Reading {path.name}", owner=f"{self.manifest.id}:labels",
                                  on_result=lambda r: self._add_seg(r[0], r[1], path, r[2]), on_error=self._error)

    def _may_replace(self, what: str) -> bool:
        """Whether the shown image may give way to ``what``: asks first when label edits were not exported."""
        names = self.session.unsaved_layer_names()
        if self.volume is None or not names or confirm_discard_edits(self, names, what):
            return True
        self.context.notify("info", f"{what} was not opened: the current image and its edits stay open", "")
        return False

    def _show_preview(self, preview: dict) -> None:
        """First pixels on screen while the rest of the series decodes (axial view only)."""
        if self.volume is not None and not self._preview_active:
            return  # a volume is already shown: do not flash a preview over it
        view = self.views["axial"]
        data = preview["image"]
        rows, cols = data.shape
        view.set_grid((1, rows, cols), (preview["spacing"][1], preview["spacing"][0], 1.0))
        width, level = preview["window"]
        view.show_image(data, (level - width / 2, level + width / 2), None)
        view.set_corner_text("loading…")
        self._preview_active = True

    def _add_seg(self, label_map, ref_uid: str, path: Path, placed=None) -> None:
        if self.volume is None or placed is None:
            from engines.radiology.opening import blank_volume_for

            # nothing to lay it on: show the SEG's own grid over a blank image, and say so
            self.series_browser.fill([], {})
            self.set_volume(blank_volume_for(label_map, path.name, ref_uid))
            self.add_label_layer(label_map, name=path.name)
            return
        if ref_uid and self.volume.series is not None and ref_uid != self.volume.series.uid:
            self.context.notify("warning", f"{path.name} references series {ref_uid}, not the one shown; placed "
                                           f"by patient coordinates anyway", "")
        self.session.add_placed_layer(placed, name=path.name)

    # ================================================================================= a new study
    def set_volume(self, volume, *, scan=None, auto_window: tuple[float, float] | None = None) -> None:
        """Show ``volume`` (an engines.radiology.reader.Volume); nothing of the previous image stays: layers,
        comparison, measurements, undo and layout start afresh (pending label edits are autosaved first).
        ``auto_window``: its 'Auto' window, computed with it in the worker."""
        if self.volume is not None:
            self.autosave.flush_before_change()
        self._preview_active = False
        self.session.open_volume(volume, scan=scan, auto_window=auto_window)

    def _study_changed(self, volume) -> None:
        if volume is None:
            return
        session = self.session
        self.check_banner.setVisible(False)
        self.contracts.compute(volume)
        self.findings_panel.clear()
        self.layers_panel.refresh()
        self.layers_panel._comparison_changed()
        self.layers_panel._show_compare_mode("off")
        self.planes.new_volume(volume)
        self.toolbar.fill_presets(volume.modality)
        self.toolbar._show_invert(session.invert)
        nk, nj, ni = volume.shape
        if min(volume.shape) == 1:
            self.set_layout("single", "axial" if nk == 1 else ("coronal" if nj == 1 else "sagittal"))
        else:
            self.set_layout("three")
        self.planes.render_every_plane()
        self.toolbar.show_window()
        self.autosave.restore()
        QTimer.singleShot(0, self.reset_views)
        self.readout.setText(READOUT_HELP)
        title = session.series_title()
        scan = session.scan
        self._show_findings(volume.findings if scan is None else list(dict.fromkeys(scan.findings + volume.findings)))
        for finding in volume.findings:
            self.context.notify("warning", f"{title}: {finding}", "")
        for finding in scan.findings if scan is not None else []:
            self.context.notify("warning", finding, "")
        self.series_browser.show_study(volume, title)
        self.volume_loaded.emit()

    # ================================================================================= navigation and window
    def set_cursor(self, i: int, j: int, k: int) -> None:
        self.session.set_cursor(i, j, k)

    def scroll(self, plane: str, delta: int) -> None:
        if self.volume is not None:
            self.session.scroll(plane, delta)

    def _cursor_moved(self, ijk: tuple, changed: tuple) -> None:
        self.planes.cursor_moved(changed)
        self.readout.setText(self.session.readout_text(*ijk))
        if changed[2]:
            self._update_tags()
        self.cursor_changed.emit(*ijk)

    def _cursor_from_view(self, plane: str, h_mm: float, v_mm: float) -> None:
        if self.volume is not None:
            self.set_cursor(*self.session.voxel_at(plane, h_mm, v_mm))

    def _hover(self, plane: str, h_mm: float, v_mm: float) -> None:
        if self.volume is None:
            return
        ijk = self.session.voxel_at(plane, h_mm, v_mm)
        if self.session.contains(ijk):
            self.readout.setText(self.session.readout_text(*ijk))

    def readout_text(self, i: int, j: int, k: int) -> str:
        return self.session.readout_text(i, j, k)

    def reset_views(self) -> None:
        self.planes.reset_views()

    def toggle_crosshair(self) -> None:
        """Show or hide the crosshair lines (C) to see the anatomy under them."""
        self.planes.toggle_crosshair()

    def set_window(self, width: float, level: float) -> None:
        self.session.set_window(width, level)

    def auto_window(self) -> None:
        """The 1-99 % window; computed once per volume in a worker (the opener usually did it already)."""
        volume = self.volume
        if volume is None:
            return
        if self.session.auto_window_values is not None:
            self.session.auto_window()
            return
        from engines.radiology.opening import auto_window

        def done(values) -> None:
            if self.volume is volume:
                self.session.set_auto_window(values)

        self.context.tasks.submit(lambda progress, cancel: auto_window(volume), title="Auto window",
                                  owner=f"{self.manifest.id}:window", on_result=done, on_error=self._error)

    # ================================================================================= label correction
    def _paint(self, plane: str, h_mm: float, v_mm: float, start: bool, finish: bool) -> None:
        if self.volume is None:
            return
        value = 0 if self.views[plane].tool == "eraser" else self.layers_panel.brush_value()
        self.session.paint(plane, h_mm, v_mm, radius_mm=float(self.brush_size.value()), value=value, start=start,
                           finish=finish)

    def _labels_edited(self, _layer) -> None:
        plane = self.session.painting_plane
        if plane is not None:
            self.planes.render_plane(plane)  # during a stroke only the painted plane changes
        else:
            self.planes.render_all()

    def _edits_committed(self, layer) -> None:
        self.label_stats.compute(layer)
        self.autosave.schedule()
        self.planes.render_all()

    def undo_edit(self) -> None:
        """Undo the last brush/eraser stroke."""
        self.session.undo()

    def redo_edit(self) -> None:
        """Redo the stroke undone last."""
        self.session.redo()

    def autosave_now(self):
        """Write the edited layers now (off the GUI thread); returns the Task, or None with nothing to save."""
        return self.autosave.save_now()

    # ================================================================================= layers: public API
    def add_label_layer(self, labels, geometry=None, names: Mapping[int, str] | None = None,
                        name: str = "", user_created: bool = False, in_worker: bool = False) -> LabelLayer | None:
        """Add a label map: an ndarray ``[k, j, i]`` with its ``Geometry`` (the display grid if None), a
        SimpleITK image, or an ``engines.radiology.overlays.LabelMap``, put on the image grid through patient
        coordinates. Returns the layer when it was already on the grid; otherwise it is placed in a worker,
        arrives with ``layers_changed``, and None is returned (``in_worker``: always so, for engine results).
        ``user_created``: a layer to paint on (empty by design)."""
        from engines.radiology.resample import place_labels

        volume = self.volume
        if volume is None:
            self.context.notify("warning", "Open an image before adding a label layer.", "")
            return None
        if not in_worker and not self.session.needs_placing(labels, geometry):
            return self.session.add_label_layer(labels, geometry, names, name=name, user_created=user_created)

        def done(placed) -> None:
            if self.volume is volume:
                self.session.add_placed_layer(placed, name=name, user_created=user_created)

        self.context.tasks.submit(lambda p, c: place_labels(labels, geometry, names, volume.geometry, volume.shape),
                                  title=f"Placing {name or 'labels'} on the image", on_result=done,
                                  on_error=self._error)
        return None

    def add_boxes(self, boxes, name: str = "detections", threshold: float | None = None) -> BoxLayer:
        """Add detection boxes: ``overlays.Box`` objects or dicts with ``min_lps_mm``/``max_lps_mm`` (or
        ``min_index``/``max_index`` in (i, j, k) of the shown volume), ``label`` and ``score``."""
        return self.session.add_boxes(boxes, name, threshold if threshold is not None else self.threshold.value() / 100)

    def add_comparison(self, image, geometry=None, name: str = "comparison") -> None:
        """Add an image to compare with the shown one (a kernel conversion, a denoised image…): an ndarray
        ``[k, j, i]`` of real values on the display grid (or with its ``geometry``), a SimpleITK image, or a
        reader ``Volume``. Anything but float32 on the display grid is converted and resampled (linear,
        through patient coordinates) in a worker."""
        from engines.radiology.resample import comparison_on_grid, is_on_grid

        volume = self.volume
        if volume is None:
            return
        if (isinstance(image, np.ndarray) and image.dtype == np.float32
                and is_on_grid(image.shape, geometry, volume.geometry, volume.shape)):
            self.session.set_comparison(name, image)
            return

        def done(array) -> None:
            if self.volume is volume:
                self.session.set_comparison(name, array)

        self.context.tasks.submit(lambda p, c: comparison_on_grid(image, geometry, volume.geometry, volume.shape),
                                  title=f"Placing {name} on the image", owner=f"{self.manifest.id}:comparison",
                                  on_result=done, on_error=self._error)

    def set_compare_mode(self, mode: str) -> None:
        self.session.set_compare_mode(mode)

    def current_layer(self) -> LabelLayer | None:
        return self.session.current_layer()

    def set_layer_visible(self, layer: LabelLayer, visible: bool) -> None:
        self.session.set_layer_visible(layer, visible)

    def _layers_changed(self) -> None:
        self.planes.render_all()
        self.layers_changed.emit()

    # ================================================================================= tags, findings, reports
    def _update_tags(self) -> None:
        if self.tabs.currentWidget() is self.tag_tree and self.volume is not None:
            self.tag_tree.show_slice(self.volume, self.session.cursor)

    def show_report(self, lines: list[str]) -> None:
        """A structured report's content in the Findings tab (below the loading findings)."""
        self.findings_list.addItem("— structured report —")
        for line in lines:
            self.findings_list.addItem(line)
        self.tabs.setCurrentWidget(self.findings_list)
        self.context.notify("info", f"{lines[0] if lines else 'Structured report'}: shown in the Findings tab", "")

    def _review_report(self, path: Path, findings: list, ref_uid: str) -> None:
        """A re-opened findings report: its findings, with their review states, back in the Review list."""
        if self.volume is None:
            self.context.notify("warning", f"{path.name}: open the series it reports on first, then the report "
                                           f"again, to review its {len(findings)} finding(s) on the images", "")
            return
        if ref_uid and self.volume.series is not None and ref_uid != self.volume.series.uid:
            self.context.notify("warning", f"{path.name} reports on series {ref_uid}, not the one shown; its "
                                           f"findings are placed by patient coordinates anyway", "")
        self.findings_panel.set_result({"findings": findings, "source": self.volume, "engine": path.name,
                                        "threshold": 0.0})
        self.tabs.setCurrentWidget(self.findings_panel)
        states = {}
        for f in findings:
            states[f.state] = states.get(f.state, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        self.context.notify("info", f"{path.name}: {len(findings)} finding(s) back in the Review tab ({summary})", "")

    def _show_findings(self, findings: list[str]) -> None:
        self.findings_list.clear()
        for f in findings:
            self.findings_list.addItem(f)
        self.tabs.setTabText(3, f"Findings ({len(findings)})" if findings else "Findings")

    def shutdown(self) -> None:
        self.autosave.shutdown()
        self.planes.flicker.stop()
        self.session.close()
