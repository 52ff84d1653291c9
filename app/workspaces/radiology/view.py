"""The radiology workspace: a DICOM/NIfTI series viewer with MPR, W/L, measurements and AI overlay layers.

Reading, sorting, resampling and export happen in ``engines.radiology`` (off the GUI thread); this module
draws. Public API for engines and scripts (all geometry-aware, so overlays never land flipped):

    view.add_label_layer(labels, geometry=None, names=None, name="")   # ndarray [k,j,i] | SimpleITK | LabelMap
    view.add_boxes(boxes, name="")                                      # engines.radiology.overlays.Box / dicts
    view.add_comparison(image, geometry=None, name="")                  # ndarray | SimpleITK | Volume
    view.run_engine(engine_id)                                          # any radiology engine, progress + cancel
    view.export_seg(path) / view.export_labels(path) / view.export_boxes(path)   # atomic writes

An engine result (a mapping) is shown by ``show_engine_result``: ``labels`` + ``geometry`` (or ``mask``, a
SimpleITK image) become a label layer, ``boxes`` a box layer, ``image`` (SimpleITK or ndarray + geometry) a
comparison; ``label_names`` names the labels.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QMenu, QSizePolicy, QSlider, QSpinBox,
                               QSplitter, QTabWidget, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from app.worker import plain_message
from app.workspaces.base import ShellContext, WorkspaceView
from app.workspaces.manifest import WorkspaceManifest
from app.workspaces.radiology.dialogs import confirm_discard_edits
from app.workspaces.radiology.export_menu import ExportActions
from app.workspaces.radiology.layers_panel import LabelStatistics, fill_label_tree, setup_label_tree
from app.workspaces.radiology.measure_panel import MeasurementsPanel
from app.workspaces.radiology.slice_view import AXIS_INDEX, SliceView
from engines.radiology.labelstats import empty_layer_problem

log = logging.getLogger(__name__)

NO_COMPARISON = "No comparison image (run an image-to-image engine)."
# (name, width, level) in HU
CT_PRESETS = [("Brain", 80, 40), ("Subdural", 215, 75), ("Stroke", 40, 40), ("Lung", 1500, -600),
              ("Mediastinum", 350, 50), ("Abdomen", 400, 40), ("Liver", 150, 30), ("Bone", 1800, 400)]


@dataclass
class LabelLayer:
    """A label map on the image grid, with how it is drawn."""

    name: str
    labels: np.ndarray  # [k, j, i] on the current volume's display grid
    names: dict[int, str]
    colours: dict[int, tuple[int, int, int]]
    visible: bool = True
    opacity: float = 0.45
    outline: bool = False
    hidden_labels: set[int] = field(default_factory=set)
    source: Any = None  # the LabelMap as given (its own geometry), for export
    autosave_stem: str = ""  # file stem of this layer's autosave, once it has one
    unsaved: bool = False  # edited by the user since it was last exported
    stats: dict | None = None  # value -> engines.radiology.labelstats.LabelStat, once computed

    _lut: np.ndarray | None = None
    _lut_key: tuple | None = None
    _max_label: int | None = None

    def lut(self) -> np.ndarray:
        """RGBA table by label value (hidden labels transparent); rebuilt only when visibility changes."""
        key = (tuple(sorted(self.hidden_labels)), tuple(sorted(self.colours.items())))
        if self._lut is None or key != self._lut_key:
            if self._max_label is None:
                self._max_label = int(self.labels.max(initial=0))
            n = max(256, self._max_label + 1)
            lut = np.zeros((n, 4), dtype=np.ubyte)
            for value, rgb in self.colours.items():
                if 0 < value < n and value not in self.hidden_labels:
                    lut[value] = (*rgb, 255)
            self._lut, self._lut_key = lut, key
        return self._lut


@dataclass
class BoxLayer:
    """Detection boxes; their voxel bounds on the shown grid are computed once, so drawing thousands of
    boxes per slice is one vectorized test, not a loop over boxes."""

    name: str
    boxes: list  # engines.radiology.overlays.Box
    threshold: float = 0.5
    visible: bool = True
    lo: np.ndarray | None = None  # (N, 3) min (i, j, k) on the display grid
    hi: np.ndarray | None = None
    scores: np.ndarray | None = None

    def index(self, geometry) -> None:
        bounds = [b.index_bounds(geometry) for b in self.boxes]
        self.lo = np.array([b[0] for b in bounds]).reshape(-1, 3)
        self.hi = np.array([b[1] for b in bounds]).reshape(-1, 3)
        self.scores = np.array([b.score for b in self.boxes], dtype=float)


class _Relay(QObject):
    """Carries early pixels (the first slice) from a worker thread to the GUI thread."""

    preview = Signal(object)


class _LazyEngineRequest(Mapping):
    """The request a radiology engine gets from the workspace: ``image`` (SimpleITK, real values, display
    geometry) is only built when the engine asks for it, in the worker thread."""

    def __init__(self, volume) -> None:
        self._volume = volume
        self._image = None

    def _keys(self):
        return ("image", "volume", "image_path")

    def __getitem__(self, key):
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
        return iter(self._keys())

    def __len__(self) -> int:
        return 3


class RadiologyWorkspace(WorkspaceView, ExportActions):
    """Axial/coronal/sagittal views with linked crosshair, W/L presets, measurements, series browser, DICOM
    tags and overlay layers (label maps, detection boxes, image comparison)."""

    volume_loaded = Signal()
    layers_changed = Signal()
    cursor_changed = Signal(int, int, int)

    def __init__(self, manifest: WorkspaceManifest, context: ShellContext, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        self.volume = None
        self.scan = None
        self.layers: list[LabelLayer] = []
        self.box_layers: list[BoxLayer] = []
        self.comparison = None  # (name, array [k,j,i] real values)
        self.compare_mode = "off"
        self.swipe = 0.5
        self.cursor = [0, 0, 0]  # i, j, k
        self.window = (400.0, 40.0)  # width, level (real units)
        self._auto_window: tuple[float, float] | None = None  # what 'Auto' last computed
        self.invert = False
        self.layout_mode = "three"
        self.single_plane = "axial"
        self._flicker_on = False
        self.crosshair_visible = True
        self._wl_start = None
        self._preview_active = False
        self._undo: list[tuple] = []  # (layer, plane, index, labels of that slice before the stroke)
        self._stroke = None
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(1000)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self._dirty: set[int] = set()  # ids of layers edited since the last autosave
        self.relay = _Relay(self)
        self.relay.preview.connect(self._show_preview)
        self._build()
        self._flicker = QTimer(self)
        self._flicker.setInterval(450)
        self._flicker.timeout.connect(self._flicker_tick)

    # ================================================================================= construction
    def _build(self) -> None:
        self.views = {p: SliceView(p) for p in ("axial", "coronal", "sagittal")}
        self.compare_view = SliceView("axial")
        self.measure_panel = MeasurementsPanel(self)
        self.measurements = self.measure_panel.measurements
        self.compare_view.title.setText("Comparison")
        for view in [*self.views.values(), self.compare_view]:
            view.scroll_requested.connect(lambda d, v=view: self.scroll(v.plane, d))
            view.cursor_requested.connect(self._cursor_from_view)
            view.window_drag.connect(self._window_drag)
            view.hover.connect(self._hover)
            view.measure_drag.connect(self.measure_panel.dragged)
            view.paint_requested.connect(self._paint)
            view.slice_requested.connect(self._slice_from_slider)

        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)

        bar = QHBoxLayout()
        self.layout_box = QComboBox()
        self.layout_box.addItems(["Three views", "Axial", "Coronal", "Sagittal", "Side by side"])
        self.layout_box.setToolTip("Layout (L toggles three views / single)")
        self.layout_box.currentIndexChanged.connect(self._layout_chosen)
        self.preset_box = QComboBox()
        self.preset_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.preset_box.setMinimumContentsLength(9)
        self.preset_box.setToolTip("Window presets (keys 1-8 for CT presets, A for auto)")
        self.preset_box.activated.connect(self._preset_chosen)
        self.wl_label = QLineEdit("W — L —")
        self.wl_label.setToolTip("Window width and level: type e.g. 'W 80 L 40' (or '80 40') and press Enter; "
                                 "right-drag in a view changes them too")
        self.wl_label.setMinimumWidth(125)
        self.wl_label.setMaximumWidth(150)
        self.wl_label.editingFinished.connect(self._typed_window)
        self.invert_box = QCheckBox("Invert")
        self.invert_box.toggled.connect(self._set_invert)
        self.tool_box = QComboBox()
        self.tool_box.addItems(["Navigate", "Ruler", "ROI", "Brush", "Eraser"])
        self.tool_box.setToolTip("Left-drag action: move the crosshair, measure a distance, draw an ROI, or "
                                 "correct the current label layer (brush paints the selected label)")
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 50)
        self.brush_size.setValue(5)
        self.brush_size.setSuffix(" mm")
        self.brush_size.setToolTip("Brush radius")
        self.brush_size.setVisible(False)
        self.undo_button = QToolButton()
        self.undo_button.setText("Undo")
        self.undo_button.setToolTip("Undo the last brush or eraser stroke (Ctrl+Z)")
        self.undo_button.setEnabled(False)
        self.undo_button.clicked.connect(self.undo_edit)
        self.tool_box.currentTextChanged.connect(self._set_tool)
        reset = QToolButton()
        reset.setText("Reset")
        reset.setToolTip("Reset zoom and pan (R)")
        reset.clicked.connect(self.reset_views)
        clear = QToolButton()
        clear.setText("Clear")
        clear.setToolTip("Delete every ruler and ROI (the Measurements tab deletes one at a time)")
        clear.clicked.connect(self._clear_measurements)
        self.engine_button = QToolButton()
        self.engine_button.setText("Run engine")
        self.engine_button.setPopupMode(QToolButton.InstantPopup)
        self.engine_menu = QMenu(self.engine_button)
        self.engine_menu.aboutToShow.connect(self._fill_engine_menu)
        self.engine_button.setMenu(self.engine_menu)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_engine)
        export = self._build_export_button()
        open_sample = QToolButton()
        open_sample.setText("Sample")
        open_sample.setToolTip("Open the bundled phantom CT series")
        open_sample.clicked.connect(self.open_sample)
        # two rows, so the window still fits a 1366-pixel screen: viewing on top, tools and AI below
        for w in (self.layout_box, self.preset_box, self.wl_label, self.invert_box, reset):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(open_sample)
        tools = QHBoxLayout()
        for w in (self.tool_box, self.brush_size, self.undo_button, clear):
            tools.addWidget(w)
        tools.addStretch(1)
        for w in (self.engine_button, self.cancel_button, export):
            tools.addWidget(w)

        self.readout = QLabel("Open a DICOM folder, DICOMDIR, DICOM file or NIfTI/MHA/NRRD volume "
                              "(File ▸ Open, or drop it here), or press ‘Open sample’.")
        self.readout.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.measure_label = QLabel("")
        for label in (self.readout, self.measure_label):  # long texts must not widen the window
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
            label.setMinimumWidth(1)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addLayout(bar)
        lv.addLayout(tools)
        from app.widgets.check_banner import make_banner
        from app.workspaces.radiology.engine_checks import EngineContracts

        self.check_banner = make_banner()
        self.contracts = EngineContracts(self)
        lv.addWidget(self.check_banner)
        lv.addWidget(self.grid_host, 1)
        lv.addWidget(self.readout)
        lv.addWidget(self.measure_label)

        self.tabs = QTabWidget()
        self.tabs.setMinimumWidth(240)
        self.tabs.tabBar().setExpanding(False)
        self.tabs.setUsesScrollButtons(True)
        self.series_list = QListWidget()
        self.series_list.setIconSize(QSize(64, 64))
        self.series_list.itemActivated.connect(self._series_activated)
        self.series_list.itemDoubleClicked.connect(self._series_activated)
        self.study_label = QLabel("")
        self.study_label.setWordWrap(True)
        series_tab = QWidget()
        sv = QVBoxLayout(series_tab)
        sv.addWidget(self.study_label)
        sv.addWidget(self.series_list, 1)
        hint = QLabel("Double-click a series to load it; a SEG loads as an overlay.")
        hint.setWordWrap(True)
        sv.addWidget(hint)
        self.tabs.addTab(series_tab, "Series")

        layers_tab = QWidget()
        lay = QVBoxLayout(layers_tab)
        self.layer_list = QListWidget()
        self.layer_list.itemChanged.connect(self._layer_item_changed)
        self.layer_list.currentRowChanged.connect(self._layer_selected)
        lay.addWidget(QLabel("Label layers"))
        lay.addWidget(self.layer_list, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.valueChanged.connect(self._opacity_changed)
        row.addWidget(self.opacity)
        self.outline_box = QCheckBox("Outline")
        self.outline_box.toggled.connect(self._outline_changed)
        row.addWidget(self.outline_box)
        lay.addLayout(row)
        self.label_tree = QTreeWidget()
        setup_label_tree(self.label_tree)
        self.label_stats = LabelStatistics(self)
        self.label_tree.itemChanged.connect(self._label_item_changed)
        self.label_tree.itemDoubleClicked.connect(self.label_stats.jump)
        lay.addWidget(self.label_tree, 1)
        lay.addWidget(QLabel("Detections"))
        trow = QHBoxLayout()
        trow.addWidget(QLabel("Score ≥"))
        self.threshold = QSlider(Qt.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold.setValue(50)
        self.threshold.valueChanged.connect(self._threshold_changed)
        self.threshold_label = QLabel("0.50")
        trow.addWidget(self.threshold)
        trow.addWidget(self.threshold_label)
        lay.addLayout(trow)
        self.box_list = QListWidget()
        self.box_list.itemActivated.connect(self._box_activated)
        self.box_list.itemDoubleClicked.connect(self._box_activated)
        lay.addWidget(self.box_list, 1)
        lay.addWidget(QLabel("Comparison"))
        crow = QHBoxLayout()
        self.compare_box = QComboBox()
        self.compare_box.addItems(["Off", "Swipe", "Flicker", "Difference", "Side by side"])
        self.compare_box.currentTextChanged.connect(self.set_compare_mode)
        self.swipe_slider = QSlider(Qt.Horizontal)
        self.swipe_slider.setRange(0, 100)
        self.swipe_slider.setValue(50)
        self.swipe_slider.valueChanged.connect(self._swipe_changed)
        crow.addWidget(self.compare_box)
        crow.addWidget(self.swipe_slider)
        lay.addLayout(crow)
        self.compare_label = QLabel(NO_COMPARISON)
        self.compare_label.setWordWrap(True)
        lay.addWidget(self.compare_label)
        self.tabs.addTab(layers_tab, "Layers")

        self.tag_tree = QTreeWidget()
        self.tag_tree.setHeaderLabels(["Tag", "Name", "Value"])
        self.tag_tree.setColumnWidth(0, 90)
        self.tag_tree.setColumnWidth(1, 150)
        self.tabs.addTab(self.tag_tree, "Tags")
        self.tabs.currentChanged.connect(lambda _i: self._update_tags())
        self.findings_list = QListWidget()
        self.findings_list.setWordWrap(True)
        self.tabs.addTab(self.findings_list, "Findings")
        from app.workspaces.radiology.findings_panel import FindingsPanel

        self.findings_panel = FindingsPanel(self)  # a detector's findings, reviewed one by one
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
        self._arrange()
        self._fill_presets("CT")
        self._shortcuts()

    def _shortcuts(self) -> None:
        def add(key, fn):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)

        for n, (_name, w, level) in enumerate(CT_PRESETS, start=1):
            add(str(n), lambda w=w, level=level: self.set_window(w, level))
        add("A", self.auto_window)
        add(QKeySequence.Undo, self.undo_edit)
        add("C", self.toggle_crosshair)
        add("Escape", lambda: self.tool_box.setCurrentText("Navigate"))
        add("R", self.reset_views)
        add("I", lambda: self.invert_box.setChecked(not self.invert_box.isChecked()))
        add("L", lambda: self.layout_box.setCurrentIndex(0 if self.layout_mode != "three" else 1))
        add("F", lambda: self._flicker_tick() if self.comparison is not None else None)
        for key, d in (("PgUp", 1), ("PgDown", -1), ("Up", 1), ("Down", -1)):
            add(key, lambda d=d: self.scroll(self._focus_plane(), d))

    def _focus_plane(self) -> str:
        return self.single_plane if self.layout_mode == "single" else "axial"

    def _arrange(self) -> None:
        for v in [*self.views.values(), self.compare_view]:
            self.grid.removeWidget(v)
            v.hide()
        linked = self.views["axial"].box if self.layout_mode == "side" else None
        self.compare_view.box.setXLink(linked)  # linked pan/zoom only while both are shown
        self.compare_view.box.setYLink(linked)
        if self.layout_mode == "three":
            self.grid.addWidget(self.views["axial"], 0, 0, 2, 1)
            self.grid.addWidget(self.views["coronal"], 0, 1)
            self.grid.addWidget(self.views["sagittal"], 1, 1)
            self.grid.setColumnStretch(0, 3)
            self.grid.setColumnStretch(1, 2)
            for p in ("axial", "coronal", "sagittal"):
                self.views[p].show()
        elif self.layout_mode == "side":
            self.grid.addWidget(self.views["axial"], 0, 0, 2, 1)
            self.grid.addWidget(self.compare_view, 0, 1, 2, 1)
            self.grid.setColumnStretch(0, 1)
            self.grid.setColumnStretch(1, 1)
            self.views["axial"].show()
            self.compare_view.show()
            QTimer.singleShot(0, self.reset_views)
        else:
            self.grid.addWidget(self.views[self.single_plane], 0, 0, 2, 2)
            self.grid.setColumnStretch(0, 1)
            self.grid.setColumnStretch(1, 0)
            self.views[self.single_plane].show()

    def set_layout(self, mode: str, plane: str = "axial") -> None:
        """mode: 'three', 'single' (with ``plane``) or 'side' (base and comparison side by side)."""
        self.layout_mode, self.single_plane = mode, plane
        index = {"three": 0, "side": 4}.get(mode, {"axial": 1, "coronal": 2, "sagittal": 3}[plane])
        if self.layout_box.currentIndex() != index:
            self.layout_box.blockSignals(True)
            self.layout_box.setCurrentIndex(index)
            self.layout_box.blockSignals(False)
        self._arrange()
        self._render_all()

    def _layout_chosen(self, index: int) -> None:
        if index == 0:
            self.set_layout("three")
        elif index == 4:
            self.set_layout("side")
        else:
            self.set_layout("single", ("axial", "coronal", "sagittal")[index - 1])

    # ================================================================================= opening
    def open_path(self, path: Path) -> None:
        from engines.core.filetypes import classify

        path = Path(path)
        relay = self.relay
        # overlays are resampled onto the shown image in the worker, never in the GUI thread
        target = (self.volume.geometry, self.volume.shape) if self.volume is not None else None

        def job(progress, cancel):
            from engines.core.engine import EngineError
            from engines.radiology import reader
            from engines.radiology.overlays import LabelMap, read_seg

            kind = classify(path)
            if kind == "dicom-rtstruct":
                from engines.radiology.overlays import read_rtstruct

                if target is None:
                    raise EngineError(f"{path.name} is an RT structure set: open its image series first, the "
                                      f"contours are drawn on it")
                label_map, problems = read_rtstruct(path, *target)
                return {"kind": "labels", "label_map": label_map, "problems": problems}
            if kind == "dicom-sr":
                from engines.radiology.overlays import read_sr_text

                return {"kind": "sr", "lines": read_sr_text(path)}
            if kind == "dicom-seg":
                label_map, ref_uid = read_seg(path)
                if target is not None:
                    label_map = label_map.on_grid(*target)
                return {"kind": "seg", "label_map": label_map, "ref_uid": ref_uid}
            if reader.is_volume_file(path):
                volume = reader.load_volume_file(path, progress=progress)
                if target is not None and reader.looks_like_label_map(volume):
                    from engines.radiology.overlays import _read_names_sidecar

                    label_map = LabelMap(np.ascontiguousarray(volume.voxels), volume.geometry,
                                         _read_names_sidecar(path), source=path.name)
                    return {"kind": "labels", "label_map": label_map.on_grid(*target)}
                return {"kind": "volume", "volume": volume}
            if kind == "volume-folder":
                volume, label_maps = reader.load_volume_folder(path, progress=progress, cancel=cancel)
                label_maps = [lm.on_grid(volume.geometry, volume.shape) for lm in label_maps]
                return {"kind": "volume", "volume": volume, "label_maps": label_maps}
            preview = reader.quick_preview(path)
            if preview is not None:
                relay.preview.emit(preview)
            scan = reader.scan_dicom(path, progress=lambda f, m: progress(None if f is None else 0.2 * f, m),
                                     cancel=cancel)
            thumbs = reader.series_thumbnails(scan, cancel=cancel)
            images = scan.image_series()
            if not images:
                return {"kind": "scan", "scan": scan, "thumbs": thumbs, "volume": None}
            best = max(images, key=lambda s: len(s.slices))
            volume = reader.load_series(
                best, progress=lambda f, m: progress(None if f is None else 0.2 + 0.8 * f, m), cancel=cancel,
                on_first_slice=lambda arr, vol: relay.preview.emit(reader.preview_of(arr, vol)))
            return {"kind": "scan", "scan": scan, "thumbs": thumbs, "volume": volume}

        def done(result: dict) -> None:
            try:
                show(result)
            except Exception as exc:  # noqa: BLE001 - what the reader returned could not be shown: say so
                import traceback

                log.exception("showing %s failed", path)
                self._open_failed(path.name, plain_message(f"Showing {path.name}", exc), traceback.format_exc())

        def show(result: dict) -> None:
            self.context.add_recent(path)
            if result["kind"] == "seg":
                self._add_seg(result["label_map"], result["ref_uid"], path)
            elif result["kind"] == "sr":
                self.show_report(result["lines"])
            elif result["kind"] == "labels":
                self.add_label_layer(result["label_map"], name=path.name)
                for problem in result.get("problems", []):
                    self.context.notify("warning", f"{path.name}: {problem}", "")
            elif result["kind"] in ("volume", "scan") and result["volume"] is not None \
                    and not self._may_replace(path.name):
                return
            elif result["kind"] == "volume":
                self.scan = None
                self._fill_series([], {})
                self.set_volume(result["volume"])
                for label_map in result.get("label_maps", []):
                    self.add_label_layer(label_map, name=label_map.source)
            else:
                self.scan = result["scan"]
                self._fill_series(self.scan.series, result["thumbs"])
                if result["volume"] is not None:
                    self.set_volume(result["volume"])
                else:
                    self._show_findings(self.scan.all_findings())
                    self.context.notify("warning", f"{path.name}: no image series to show "
                                        f"({len(self.scan.series)} non-image object(s))", "")
            self.opened.emit(str(path))

        self.context.tasks.submit(job, title=f"Opening {path.name}", owner=f"{self.manifest.id}:open",
                                  on_result=done, on_error=lambda message, detail: self._open_failed(path.name, message,
                                                                                                     detail))

    def _open_failed(self, name: str, message: str, detail: str) -> None:
        """An open that failed (in the reader or while showing its result): a plain message in Messages and
        in the view, and no 'loading…' left behind."""
        self.context.notify("error", message, detail)
        was_preview, self._preview_active = self._preview_active, False
        if self.volume is not None:
            self._render_all()  # the image shown before stays, with its own corner text
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
        relay = self.relay

        def job(progress, cancel):
            from engines.radiology import reader

            return reader.load_series(series, progress=progress, cancel=cancel,
                                      on_first_slice=lambda arr, vol: relay.preview.emit(reader.preview_of(arr, vol)))

        def done(volume) -> None:
            if self._may_replace(series.title()):
                self.set_volume(volume)

        self.context.tasks.submit(job, title=f"Loading {series.title()}", owner=f"{self.manifest.id}:open",
                                  on_result=done, on_error=lambda msg, detail: self._open_failed(series.title(), msg,
                                                                                                 detail))

    def _may_replace(self, what: str) -> bool:
        """Whether the shown image may give way to ``what``: asks first when label edits were not exported."""
        names = [layer.name for layer in self.layers if layer.unsaved]
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

    # ================================================================================= volume
    def set_volume(self, volume) -> None:
        """Show ``volume`` (an engines.radiology.reader.Volume); nothing of the previous image stays: layers,
        comparison, measurements, undo and layout start afresh (pending label edits are autosaved first)."""
        if self._dirty and self.volume is not None:
            self._autosave_timer.stop()
            self.autosave_now()
        self.volume = volume
        self._preview_active = False
        self.check_banner.setVisible(False)
        self.contracts.compute(volume)
        self.layers.clear()
        self.box_layers.clear()
        self.findings_panel.clear()
        self.comparison = None
        self.compare_label.setText(NO_COMPARISON)
        self.compare_box.blockSignals(True)
        self.compare_box.setCurrentText("Off")
        self.compare_box.blockSignals(False)
        self.compare_mode, self._flicker_on, self._stroke = "off", False, None
        self._flicker.stop()
        self.measurements.clear()
        self._refresh_layer_list()
        self._refresh_box_list()
        nk, nj, ni = volume.shape
        self.cursor = [ni // 2, nj // 2, nk // 2]
        for view in [*self.views.values(), self.compare_view]:
            view.clear_measurements()
            view.set_grid(volume.shape, volume.geometry.spacing)
            view.show_compare(None)
        self.compare_view.show_image(np.zeros((2, 2), np.float32), (0, 1), None)  # drop the old volume's slice
        self._auto_window = None
        self._fill_presets(volume.modality)
        default = volume.meta.get("window")
        if volume.modality == "CT":
            self.window = (float(default[1]), float(default[0])) if default else (400.0, 40.0)
        elif default:
            self.window = (float(default[1]), float(default[0]))
        else:
            self.window = self._auto_window_values()
        self.invert_box.setChecked(bool(volume.invert))
        if nk == 1:
            self.set_layout("single", "axial")
        elif nj == 1:
            self.set_layout("single", "coronal")
        elif ni == 1:
            self.set_layout("single", "sagittal")
        else:
            self.set_layout("three")
        self._undo.clear()
        self._dirty.clear()
        self.undo_button.setEnabled(False)
        for plane in ("axial", "coronal", "sagittal"):  # hidden ones too: none may keep the old volume alive
            self._render_plane(plane)
        self._render_all()
        self._restore_autosaves()
        QTimer.singleShot(0, self.reset_views)
        self.readout.setText("Click or left-drag: crosshair (C hides it) · wheel/PgUp/PgDn/slider: scroll · "
                             "Ctrl+wheel: zoom · middle or Shift+drag: pan · right-drag: W/L · 1-8: CT presets, "
                             "A: auto · I: invert · R: reset")
        self._show_findings(volume.findings if self.scan is None else
                            list(dict.fromkeys(self.scan.findings + list(volume.findings))))
        for finding in volume.findings:
            self.context.notify("warning", f"{self._series_title()}: {finding}", "")
        if self.scan is not None:
            for finding in self.scan.findings:
                self.context.notify("warning", finding, "")
        meta = volume.meta
        self.study_label.setText(
            f"<b>{meta.get('patient_name') or '(no name)'}</b> {meta.get('patient_id', '')}<br>"
            f"{meta.get('study_description', '')} {meta.get('study_date', '')}<br>"
            f"Showing: {self._series_title()} — {ni}×{nj}×{nk}, "
            f"{' × '.join(f'{s:.3g}' for s in volume.geometry.spacing)} mm, "
            f"{volume.voxels.dtype} ({volume.nbytes / 1e6:.0f} MB)")
        self.volume_loaded.emit()

    def _series_title(self) -> str:
        if self.volume is None:
            return ""
        if self.volume.series is not None:
            return self.volume.series.title()
        return str(self.volume.meta.get("series_description", "volume"))

    # ================================================================================= rendering
    def _levels(self) -> tuple[float, float]:
        width, level = self.window
        lo, hi = level - width / 2, level + width / 2
        vol = self.volume
        return (vol.stored(lo), vol.stored(hi)) if vol is not None else (lo, hi)

    def _gray_lut(self) -> np.ndarray | None:
        if not self.invert:
            return None
        return np.arange(255, -1, -1, dtype=np.ubyte)[:, None].repeat(3, axis=1)

    def _slice(self, array: np.ndarray, plane: str) -> np.ndarray:
        i, j, k = self.cursor
        if plane == "axial":
            return array[k]
        if plane == "coronal":
            return array[:, j, :]
        return array[:, :, i]

    def _slice_index(self, plane: str) -> tuple[int, int]:
        i, j, k = self.cursor
        nk, nj, ni = self.volume.shape
        return {"axial": (k, nk), "coronal": (j, nj), "sagittal": (i, ni)}[plane]

    def _render_all(self) -> None:
        if self.volume is None:
            return
        for plane in ("axial", "coronal", "sagittal"):
            if self.views[plane].isVisible() or self.layout_mode == "three" or plane == self.single_plane:
                self._render_plane(plane)
        if self.layout_mode == "side":
            self._render_compare_view()
        self._update_crosshairs()
        self._update_wl_label()

    def _render_plane(self, plane: str) -> None:
        view = self.views[plane]
        vol = self.volume
        levels = self._levels()
        if self.comparison is not None and self.compare_mode == "difference":
            diff = self._slice(vol.voxels, plane).astype(np.float32) * vol.slope + vol.intercept
            diff -= self._slice(self.comparison[1], plane)
            half = self.window[0] / 4
            view.show_image(diff, (-half, half), self._gray_lut())
        else:
            view.show_image(self._slice(vol.voxels, plane), levels, self._gray_lut())
        # comparison on top (swipe / flicker)
        if self.comparison is not None and self.compare_mode in ("swipe", "flicker"):
            data = self._slice(self.comparison[1], plane)
            width, level = self.window
            if self.compare_mode == "swipe":
                view.show_compare(data, (level - width / 2, level + width / 2), self._gray_lut(), swipe=self.swipe)
            elif self._flicker_on:
                view.show_compare(data, (level - width / 2, level + width / 2), self._gray_lut())
            else:
                view.show_compare(None)
        else:
            view.show_compare(None)
        self._render_overlay(plane)
        self._render_boxes(plane)
        self.measure_panel.draw(plane)
        index, count = self._slice_index(plane)
        width, level = self.window
        axis = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
        where = vol.geometry.index_to_lps(self.cursor)[axis]
        letter = "zyx"[2 - axis]
        view.set_corner_text(f"{index + 1}/{count}  {letter} {where:.1f} mm\nW {width:.0f} L {level:.0f}")
        view.set_slice(index, count)

    def _render_compare_view(self) -> None:
        if self.comparison is None or self.volume is None:
            self.compare_view.show_image(np.zeros((2, 2), np.float32), (0, 1), None)
            self.compare_view.set_corner_text("no comparison image")
            return
        width, level = self.window
        self.compare_view.show_image(self._slice(self.comparison[1], "axial"), (level - width / 2, level + width / 2),
                                     self._gray_lut())
        index, count = self._slice_index("axial")
        name = self.comparison[0] if len(self.comparison[0]) <= 40 else self.comparison[0][:39] + "…"
        self.compare_view.set_corner_text(f"{name}\n{index + 1}/{count}")
        self.compare_view.set_slice(index, count)
        self.compare_view.show_overlay(None, None, 0)

    def _render_overlay(self, plane: str) -> None:
        """Every visible label layer, in list order (the last one on top)."""
        drawn = []
        for layer in self.layers:
            if not layer.visible:
                continue
            data = self._slice(layer.labels, plane)
            opacity = layer.opacity
            if layer.outline:
                data = _outline(data)
                opacity = min(1.0, 2 * opacity)  # thin lines need more opacity than a fill to be seen
            drawn.append((np.ascontiguousarray(data), layer.lut(), opacity))
        self.views[plane].show_overlays(drawn)

    def _render_boxes(self, plane: str) -> None:
        view = self.views[plane]
        rects = []
        if self.volume is not None:
            geometry = self.volume.geometry
            axis = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
            here = self.cursor[axis]
            h, v = AXIS_INDEX[view.h_axis], AXIS_INDEX[view.v_axis]
            sp = geometry.spacing
            for layer in self.box_layers:
                if not layer.visible or not layer.boxes:
                    continue
                if layer.lo is None:
                    layer.index(geometry)
                cut = ((layer.scores >= layer.threshold) & (layer.lo[:, axis] - 0.5 <= here)
                       & (here <= layer.hi[:, axis] + 0.5))
                lo, hi = layer.lo[cut], layer.hi[cut]
                rects.extend(zip(lo[:, h] * sp[h] + sp[h] / 2, lo[:, v] * sp[v] + sp[v] / 2,
                                 hi[:, h] * sp[h] + sp[h] / 2, hi[:, v] * sp[v] + sp[v] / 2))
        view.set_boxes(rects)

    def toggle_crosshair(self) -> None:
        """Show or hide the crosshair lines (C) to see the anatomy under them."""
        self.crosshair_visible = not self.crosshair_visible
        self._update_crosshairs()

    def _update_crosshairs(self) -> None:
        if self.volume is None:
            return
        visible = self.crosshair_visible
        sp = self.volume.geometry.spacing
        for plane, view in [*self.views.items(), ("axial", self.compare_view)]:
            h, v = AXIS_INDEX[view.h_axis], AXIS_INDEX[view.v_axis]
            view.set_crosshair((self.cursor[h] + 0.5) * sp[h], (self.cursor[v] + 0.5) * sp[v], visible)

    def _update_wl_label(self) -> None:
        width, level = self.window
        unit = self.volume.unit() if self.volume is not None else ""
        self.wl_label.setText(f"W {width:.0f}  L {level:.0f} {unit}".strip())
        self.wl_label.setCursorPosition(0)
        self._show_preset()

    # ================================================================================= navigation
    def set_cursor(self, i: int, j: int, k: int) -> None:
        if self.volume is None:
            return
        nk, nj, ni = self.volume.shape
        new = [int(np.clip(i, 0, ni - 1)), int(np.clip(j, 0, nj - 1)), int(np.clip(k, 0, nk - 1))]
        changed = [a != b for a, b in zip(new, self.cursor)]
        self.cursor = new
        for plane, axis in (("sagittal", 0), ("coronal", 1), ("axial", 2)):
            if changed[axis]:
                self._render_plane(plane)
        if changed[2] and self.layout_mode == "side":
            self._render_compare_view()
        self._update_crosshairs()
        self._update_readout(*new)
        if changed[2]:
            self._update_tags()
        self.cursor_changed.emit(*new)

    def scroll(self, plane: str, delta: int) -> None:
        if self.volume is None:
            return
        i, j, k = self.cursor
        if plane == "axial":
            k += delta
        elif plane == "coronal":
            j -= delta
        else:
            i += delta
        self.set_cursor(i, j, k)

    def _slice_from_slider(self, plane: str, index: int) -> None:
        if self.volume is None:
            return
        cur = list(self.cursor)
        cur[{"axial": 2, "coronal": 1, "sagittal": 0}[plane]] = index
        self.set_cursor(*cur)

    def _voxel_at(self, plane: str, h_mm: float, v_mm: float) -> list[int]:
        """The (i, j, k) voxel under a point of a view, keeping the current cursor on the view's normal axis."""
        view = self.views[plane]
        sp = self.volume.geometry.spacing
        cur = list(self.cursor)
        h, v = AXIS_INDEX[view.h_axis], AXIS_INDEX[view.v_axis]
        cur[h] = int(np.floor(h_mm / sp[h]))
        cur[v] = int(np.floor(v_mm / sp[v]))
        return cur

    def _cursor_from_view(self, plane: str, h_mm: float, v_mm: float) -> None:
        if self.volume is None:
            return
        self.set_cursor(*self._voxel_at(plane, h_mm, v_mm))

    def reset_views(self) -> None:
        for view in [*self.views.values(), self.compare_view]:
            view.reset_view()

    def _hover(self, plane: str, h_mm: float, v_mm: float) -> None:
        if self.volume is None:
            return
        cur = self._voxel_at(plane, h_mm, v_mm)
        nk, nj, ni = self.volume.shape
        if 0 <= cur[0] < ni and 0 <= cur[1] < nj and 0 <= cur[2] < nk:
            self._update_readout(*cur)

    def readout_text(self, i: int, j: int, k: int) -> str:
        vol = self.volume
        x, y, z = vol.geometry.index_to_lps([i, j, k])
        value = vol.value_at(k, j, i)
        unit = vol.unit()
        text = (f"({x:.1f}, {y:.1f}, {z:.1f}) mm LPS   voxel [{i}, {j}, {k}]   "
                f"value {value:.0f}{(' ' + unit) if unit else ''}")
        for layer in self.layers:
            if layer.visible:
                lab = int(layer.labels[k, j, i])
                if lab:
                    text += f"   {layer.name}: {layer.names.get(lab, lab)}"
        if self.comparison is not None:
            text += f"   {self.comparison[0]}: {float(self.comparison[1][k, j, i]):.0f}"
        return text

    def _update_readout(self, i: int, j: int, k: int) -> None:
        self.readout.setText(self.readout_text(i, j, k))

    # ================================================================================= window / level
    def set_window(self, width: float, level: float) -> None:
        self.window = (max(1.0, float(width)), float(level))
        self._render_all()

    def _typed_window(self) -> None:
        import re

        numbers = re.findall(r"-?\d+(?:\.\d+)?", self.wl_label.text())
        if len(numbers) == 2 and float(numbers[0]) > 0:
            self.set_window(float(numbers[0]), float(numbers[1]))
        else:
            self._update_wl_label()  # not two numbers: show the current values again

    def _auto_window_values(self) -> tuple[float, float]:
        vol = self.volume
        sample = vol.voxels[:: max(1, vol.shape[0] // 24), ::4, ::4]
        real = vol.real(sample).ravel()
        real = real[real > real.min()] if np.any(real > real.min()) else real
        lo, hi = np.percentile(real, [1, 99]) if real.size else (0.0, 1.0)
        self._auto_window = (max(1.0, float(hi - lo)), float((hi + lo) / 2))
        return self._auto_window

    def auto_window(self) -> None:
        if self.volume is not None:
            self.set_window(*self._auto_window_values())

    def _fill_presets(self, modality: str) -> None:
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        self.preset_box.addItem("Custom")
        if modality == "CT":
            for n, (name, w, level) in enumerate(CT_PRESETS, start=1):
                self.preset_box.addItem(f"{n} {name}  (W {w} L {level})", (w, level))
        self.preset_box.addItem("A Auto (1–99 % of the histogram)", "auto")
        self.preset_box.blockSignals(False)

    def _preset_chosen(self, index: int) -> None:
        data = self.preset_box.itemData(index)
        if data == "auto":
            self.auto_window()
        elif data:
            self.set_window(*data)
        self._show_preset()

    def _show_preset(self) -> None:
        """The preset box names the window in use: a preset, 'Auto', or 'Custom' (after a drag or typing)."""
        width, level = self.window
        index = 0
        for n in range(1, self.preset_box.count()):
            data = self.preset_box.itemData(n)
            values = self._auto_window if data == "auto" else data
            if values and abs(values[0] - width) < 0.5 and abs(values[1] - level) < 0.5:
                index = n
                break
        self.preset_box.blockSignals(True)
        self.preset_box.setCurrentIndex(index)
        self.preset_box.blockSignals(False)

    def _window_drag(self, dx: float, dy: float, start: bool, finish: bool) -> None:
        if self.volume is None:
            return
        if start or self._wl_start is None:
            self._wl_start = self.window
        w0, l0 = self._wl_start
        scale = max(0.5, w0 / 256.0)
        self.set_window(w0 + dx * scale, l0 - dy * scale)
        if finish:
            self._wl_start = None

    def _set_invert(self, on: bool) -> None:
        self.invert = on
        self._render_all()

    # ================================================================================= measurements
    def _set_tool(self, text: str) -> None:
        for view in [*self.views.values(), self.compare_view]:
            view.tool = text.lower()
        self.brush_size.setVisible(text.lower() in ("brush", "eraser"))

    def _clear_measurements(self) -> None:
        self.measurements.clear()

    # ================================================================================= label correction
    def brush_value(self) -> int:
        """The label the brush paints: the one selected in the label list, else the layer's first label."""
        layer = self.current_layer()
        item = self.label_tree.currentItem()
        if item is not None:
            return int(item.data(0, Qt.UserRole))
        if layer is not None and layer.names:
            return min(layer.names)
        return 1

    def _paint(self, plane: str, h_mm: float, v_mm: float, start: bool, finish: bool) -> None:
        if self.volume is None:
            return
        view = self.views[plane]
        layer = self.current_layer()
        if layer is None:
            layer = self.add_label_layer(np.zeros(self.volume.shape, np.uint8), None, {1: "correction"},
                                         name="corrections", user_created=True)
        axis = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
        index = self.cursor[axis]
        target = self._slice(layer.labels, plane)  # a view: painting writes into the layer
        if start or self._stroke is None or self._stroke[:3] != (id(layer), plane, index):
            self._undo.append((layer, plane, index, target.copy()))
            del self._undo[:-20]  # bounded: 20 strokes of one slice each
            self._stroke = (id(layer), plane, index)
        sp = self.volume.geometry.spacing
        sh, sv = sp[AXIS_INDEX[view.h_axis]], sp[AXIS_INDEX[view.v_axis]]
        ch, cv = h_mm / sh - 0.5, v_mm / sv - 0.5  # centre in pixel units (pixel centres at +0.5)
        r = float(self.brush_size.value())
        r0, r1 = max(0, int(np.floor(cv - r / sv))), min(target.shape[0], int(np.ceil(cv + r / sv)) + 1)
        c0, c1 = max(0, int(np.floor(ch - r / sh))), min(target.shape[1], int(np.ceil(ch + r / sh)) + 1)
        if r0 >= r1 or c0 >= c1:
            return
        rr, cc = np.mgrid[r0:r1, c0:c1]
        disc = ((rr - cv) * sv) ** 2 + ((cc - ch) * sh) ** 2 <= r * r
        value = 0 if view.tool == "eraser" else self.brush_value()
        if value and value not in layer.names:
            layer.names[value] = f"label {value}"
            from engines.radiology.overlays import label_colour

            layer.colours[value] = label_colour(value)
            layer._max_label = None
        target[r0:r1, c0:c1][disc] = value
        self._render_plane(plane)
        if finish:
            self._stroke = None
            self._mark_edited(layer)

    def _mark_edited(self, layer: LabelLayer) -> None:
        layer.unsaved = True
        self.label_stats.compute(layer)
        self._dirty.add(id(layer))
        self.undo_button.setEnabled(bool(self._undo))
        self._render_all()
        self._autosave_timer.start()

    def undo_edit(self) -> None:
        """Undo the last brush/eraser stroke."""
        if not self._undo:
            return
        layer, plane, index, before = self._undo.pop()
        if layer in self.layers:
            cur = list(self.cursor)
            cur[{"axial": 2, "coronal": 1, "sagittal": 0}[plane]] = index
            i, j, k = cur
            target = {"axial": lambda: layer.labels[k], "coronal": lambda: layer.labels[:, j, :],
                      "sagittal": lambda: layer.labels[:, :, i]}[plane]()
            target[...] = before
            self._mark_edited(layer)
        self.undo_button.setEnabled(bool(self._undo))

    def _autosave_dir(self) -> Path | None:
        import hashlib

        from engines.core.paths import data_dir

        vol = self.volume
        if vol is None:
            return None
        key = str(vol.meta.get("series_uid") or vol.source_path or "")
        if not key:
            return None
        return data_dir() / "autosave" / "radiology" / hashlib.sha1(key.encode()).hexdigest()[:16]

    def autosave_now(self):
        """Write every edited layer (NIfTI + names, atomically) off the GUI thread; returns the Task."""
        folder = self._autosave_dir()
        edited = [layer for layer in self.layers if id(layer) in self._dirty]
        if folder is None or not edited:
            return None
        from engines.radiology.overlays import LabelMap

        geometry = self.volume.geometry
        import uuid

        for layer in edited:
            layer.autosave_stem = layer.autosave_stem or f"layer-{uuid.uuid4().hex[:8]}"
        maps = [(layer.autosave_stem, LabelMap(layer.labels.copy(), geometry, dict(layer.names), dict(layer.colours),
                                               layer.name.removesuffix(" (autosaved edits)"))) for layer in edited]
        self._dirty.clear()

        def job(progress, cancel):
            import json

            from engines.core.atomic import atomic_write_text
            from engines.radiology.overlays import write_label_file

            folder.mkdir(parents=True, exist_ok=True)
            for stem, label_map in maps:
                write_label_file(label_map, folder / f"{stem}.nii.gz")
                atomic_write_text(folder / f"{stem}.name", label_map.source)
            atomic_write_text(folder / "source.json", json.dumps({"series": self._series_title()}))
            return folder

        return self.context.tasks.submit(job, title="Autosaving label edits", owner=f"{self.manifest.id}:autosave",
                                         on_error=self._error)

    def _restore_autosaves(self) -> None:
        """Read this series' autosaved corrections (off the GUI thread) and add them as layers."""
        folder = self._autosave_dir()
        if folder is None or not folder.is_dir():
            return
        volume = self.volume
        target = (volume.geometry, volume.shape)

        def job(progress, cancel):
            from engines.radiology.overlays import read_label_file

            found, problems = [], []
            for path in sorted(folder.glob("layer-*.nii.gz")):
                try:
                    label_map = read_label_file(path).on_grid(*target)
                except Exception as exc:  # noqa: BLE001 - a damaged autosave is reported, never fatal
                    problems.append(f"{path.name}: {exc}")
                    continue
                name_file = path.with_name(path.name.split(".")[0] + ".name")
                name = name_file.read_text(encoding="utf-8") if name_file.exists() else path.stem
                found.append((path.name.split(".")[0], name, label_map))
            return found, problems

        def done(result) -> None:
            found, problems = result
            if self.volume is not volume:
                return
            for problem in problems:
                self.context.notify("warning", f"An autosaved label layer could not be read ({problem})", "")
            for stem, name, label_map in found:
                layer = self.add_label_layer(label_map, name=f"{name} (autosaved edits)")
                if layer is not None:
                    layer.autosave_stem = stem
            if found:
                self.context.notify("info", f"Restored {len(found)} label layer(s) with your unsaved corrections "
                                            f"(autosaved in {folder})", "")

        self.context.tasks.submit(job, title="Restoring autosaved label edits", owner=f"{self.manifest.id}:restore",
                                  on_result=done, on_error=self._error)

    # ================================================================================= layers: public API
    def add_label_layer(self, labels, geometry=None, names: Mapping[int, str] | None = None,
                        name: str = "", user_created: bool = False) -> LabelLayer | None:
        """Add a label map: an ndarray ``[k, j, i]`` with its ``Geometry`` (the display grid if None), a
        SimpleITK image, or an ``engines.radiology.overlays.LabelMap``. It is resampled onto the image grid
        through patient coordinates. ``user_created``: a layer made here to paint on (empty by design)."""
        from engines.radiology.overlays import LabelMap

        if self.volume is None:
            self.context.notify("warning", "Open an image before adding a label layer.", "")
            return None
        if isinstance(labels, LabelMap):
            label_map = labels
            if names:
                label_map.names.update({int(k): str(v) for k, v in names.items()})
        elif hasattr(labels, "GetSize"):
            label_map = LabelMap.from_sitk(labels, names)
        else:
            arr = np.asarray(labels)
            if arr.ndim == 2:
                arr = arr[None]
            label_map = LabelMap(arr, geometry or self.volume.geometry,
                                 {int(k): str(v) for k, v in (names or {}).items()})
        grid = label_map.on_grid(self.volume.geometry, self.volume.shape)
        layer = LabelLayer(name=name or label_map.source or f"labels {len(self.layers) + 1}",
                           labels=np.ascontiguousarray(grid.labels), names=dict(grid.names),
                           colours=dict(grid.colours), source=label_map)
        problem = empty_layer_problem(layer.name, bool(label_map.labels.any()), bool(layer.labels.any()),
                                      user_created)
        if problem:
            self.context.notify("warning", problem, "")
        elif not user_created:
            self.context.notify("info", f"{layer.name}: shown as a label layer over {self._series_title()} "
                                        f"({len(layer.names)} label(s); counts, volumes and means in the Layers tab)", "")
        self.layers.append(layer)
        self._refresh_layer_list()
        self.layer_list.setCurrentRow(len(self.layers) - 1)
        self.label_stats.compute(layer)
        self._render_all()
        self.layers_changed.emit()
        return layer

    def add_boxes(self, boxes, name: str = "detections", threshold: float | None = None) -> BoxLayer:
        """Add detection boxes: ``overlays.Box`` objects or dicts with ``min_lps_mm``/``max_lps_mm`` (or
        ``min_index``/``max_index`` in (i, j, k) of the shown volume), ``label`` and ``score``."""
        from engines.radiology.overlays import Box

        items = []
        for b in boxes:
            if isinstance(b, Box):
                items.append(b)
            elif "min_lps_mm" in b:
                items.append(Box(tuple(b["min_lps_mm"]), tuple(b["max_lps_mm"]), str(b.get("label", "finding")),
                                 float(b.get("score", 1.0))))
            else:
                items.append(Box.from_index(b["min_index"], b["max_index"], self.volume.geometry,
                                            str(b.get("label", "finding")), float(b.get("score", 1.0))))
        layer = BoxLayer(name, items, threshold if threshold is not None else self.threshold.value() / 100)
        self.box_layers.append(layer)
        self._refresh_box_list()
        self._render_all()
        self.layers_changed.emit()
        return layer

    def add_comparison(self, image, geometry=None, name: str = "comparison") -> None:
        """Add an image to compare with the shown one (a kernel conversion, a denoised image…): an ndarray
        ``[k, j, i]`` of real values on the display grid (or with its ``geometry``), a SimpleITK image, or a
        reader ``Volume``. Other grids are resampled (linear) through patient coordinates."""
        from engines.radiology.geometry import Geometry

        vol = self.volume
        if vol is None:
            return
        if hasattr(image, "voxels"):
            arr, geom = image.real(image.voxels), image.geometry
        elif hasattr(image, "GetSize"):
            import SimpleITK as sitk

            arr, geom = sitk.GetArrayFromImage(image).astype(np.float32), Geometry.from_sitk(image)
            if arr.ndim == 2:
                arr = arr[None]
        else:
            arr, geom = np.asarray(image, dtype=np.float32), geometry or vol.geometry
        if arr.shape != vol.shape or not geom.same_grid(vol.geometry):
            import SimpleITK as sitk

            src = geom.to_sitk(arr.astype(np.float32))
            ref = sitk.Image([vol.shape[2], vol.shape[1], vol.shape[0]], sitk.sitkFloat32)
            vol.geometry.apply_to_sitk(ref)
            arr = sitk.GetArrayFromImage(sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, 0.0))
        self.comparison = (name, np.ascontiguousarray(arr, dtype=np.float32))
        self.compare_label.setText(f"Comparing with: {name}. Swipe, flicker (F), difference or side by side.")
        if self.compare_mode == "off":
            self.compare_box.setCurrentText("Swipe")
        self._render_all()
        self.layers_changed.emit()

    def set_compare_mode(self, mode: str) -> None:
        mode = mode.lower()
        mode = "side" if mode.startswith("side") else mode
        self.compare_mode = mode
        if mode == "flicker" and self.comparison is not None:
            self._flicker.start()
        else:
            self._flicker.stop()
            self._flicker_on = False
        if mode == "side" and self.layout_mode != "side":
            self.set_layout("side")
        elif mode != "side" and self.layout_mode == "side":
            self.set_layout("three")
        self._render_all()

    def _flicker_tick(self) -> None:
        self._flicker_on = not self._flicker_on
        if self.compare_mode != "flicker":
            self.compare_mode = "flicker"
        self._render_all()

    def _swipe_changed(self, value: int) -> None:
        self.swipe = value / 100
        if self.compare_mode == "swipe":
            self._render_all()

    # ---- layer panel ------------------------------------------------------------------------------
    def _refresh_layer_list(self) -> None:
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for layer in self.layers:
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if layer.visible else Qt.Unchecked)
            self.layer_list.addItem(item)
        self.layer_list.blockSignals(False)
        self._layer_selected(self.layer_list.currentRow())

    def current_layer(self) -> LabelLayer | None:
        row = self.layer_list.currentRow()
        if 0 <= row < len(self.layers):
            return self.layers[row]
        return self.layers[-1] if self.layers else None

    def _layer_selected(self, row: int) -> None:
        layer = self.current_layer()
        fill_label_tree(self.label_tree, layer, self.volume.unit() if self.volume is not None else "")
        if layer is not None:
            self.opacity.blockSignals(True)
            self.opacity.setValue(int(layer.opacity * 100))
            self.opacity.blockSignals(False)
            self.outline_box.blockSignals(True)
            self.outline_box.setChecked(layer.outline)
            self.outline_box.blockSignals(False)

    def _layer_item_changed(self, item: QListWidgetItem) -> None:
        row = self.layer_list.row(item)
        if 0 <= row < len(self.layers):
            self.layers[row].visible = item.checkState() == Qt.Checked
            self._render_all()

    def set_layer_visible(self, layer: LabelLayer, visible: bool) -> None:
        layer.visible = visible
        self._refresh_layer_list()
        self._render_all()

    def _label_item_changed(self, item: QTreeWidgetItem, _column: int) -> None:
        layer = self.current_layer()
        if layer is None:
            return
        value = int(item.data(0, Qt.UserRole))
        if item.checkState(0) == Qt.Checked:
            layer.hidden_labels.discard(value)
        else:
            layer.hidden_labels.add(value)
        self._render_all()

    def _opacity_changed(self, value: int) -> None:
        layer = self.current_layer()
        if layer is not None:
            layer.opacity = value / 100
            self._render_all()

    def _outline_changed(self, on: bool) -> None:
        layer = self.current_layer()
        if layer is not None:
            layer.outline = on
            self._render_all()

    def _threshold_changed(self, value: int) -> None:
        self.threshold_label.setText(f"{value / 100:.2f}")
        for layer in self.box_layers:
            layer.threshold = value / 100
        self._refresh_box_list()
        self._render_all()

    def _refresh_box_list(self) -> None:
        self.box_list.clear()
        for layer in self.box_layers:
            shown = [b for b in sorted(layer.boxes, key=lambda b: -b.score) if b.score >= layer.threshold]
            if len(shown) > 500:
                self.box_list.addItem(f"{len(shown)} findings above the threshold: the 500 highest are listed")
                shown = shown[:500]
            for box in shown:
                centre = (np.asarray(box.lo_mm) + np.asarray(box.hi_mm)) / 2
                item = QListWidgetItem(f"{box.label}  {box.score:.2f}  at ({centre[0]:.0f}, {centre[1]:.0f}, "
                                       f"{centre[2]:.0f}) mm")
                item.setData(Qt.UserRole, tuple(centre))
                self.box_list.addItem(item)

    def _box_activated(self, item: QListWidgetItem) -> None:
        centre = item.data(Qt.UserRole)
        if centre is not None and self.volume is not None:
            i, j, k = np.rint(self.volume.geometry.lps_to_index(centre)).astype(int)
            self.set_cursor(i, j, k)

    def _add_seg(self, label_map, ref_uid: str, path: Path) -> None:
        if self.volume is None:
            # nothing to lay it on: show the SEG's own grid over a blank image, and say so
            from engines.radiology.reader import Volume

            blank = Volume(voxels=np.zeros(label_map.labels.shape, dtype=np.int16), geometry=label_map.geometry,
                           modality="SEG", meta={"series_description": f"{path.name} (its own grid)", "window": (0.5, 1)},
                           findings=[f"the referenced series {ref_uid or '(not named)'} is not open: the "
                                     f"segmentation is shown on its own grid over a blank image"],
                           source_geometry=label_map.geometry, source_shape=label_map.labels.shape)
            self.scan = None
            self.set_volume(blank)
        elif ref_uid and self.volume.series is not None and ref_uid != self.volume.series.uid:
            self.context.notify("warning", f"{path.name} references series {ref_uid}, not the one shown; placed "
                                           f"by patient coordinates anyway", "")
        self.add_label_layer(label_map, name=path.name)

    # ================================================================================= series browser / tags
    def _fill_series(self, series_list, thumbs: dict) -> None:
        self.series_list.clear()
        for s in series_list:
            n = len(s.slices) if s.kind == "image" else len(s.files)
            unit = "images" if s.kind == "image" else "objects"
            text = f"{s.title()}\n{s.kind.upper() if s.kind != 'image' else s.modality}, {n} {unit}"
            if s.kind == "image" and s.slices:
                text += f", {s.slices[0].cols}×{s.slices[0].rows}"
            if s.findings:
                text += f"\n⚠ {len(s.findings)} finding(s)"
            item = QListWidgetItem(text)
            item.setData(Qt.UserRole, s.key)
            if s.key in thumbs:
                item.setIcon(QIcon(QPixmap.fromImage(_qimage(thumbs[s.key]))))
            item.setToolTip("\n".join(s.findings) or s.uid)
            self.series_list.addItem(item)

    def _series_activated(self, item: QListWidgetItem) -> None:
        if self.scan is None:
            return
        key = item.data(Qt.UserRole)
        for s in self.scan.series:
            if s.key == key:
                if s.kind == "image":
                    self.load_series(s)
                elif s.kind == "seg":
                    from engines.radiology.overlays import read_seg

                    path = s.files[0]

                    target = (self.volume.geometry, self.volume.shape) if self.volume is not None else None

                    def job(progress, cancel, path=path, target=target):
                        label_map, ref_uid = read_seg(path)
                        return (label_map.on_grid(*target) if target else label_map), ref_uid

                    self.context.tasks.submit(job, title=f"Reading {path.name}", owner=f"{self.manifest.id}:labels",
                                              on_result=lambda r, p=path: self._add_seg(r[0], r[1], p),
                                              on_error=self._error)
                elif (s.kind == "rtstruct" and self.volume is not None) or s.kind == "sr":
                    self.open_path(s.files[0])
                else:
                    self.context.notify("info", f"{s.title()}: {s.findings[0] if s.findings else s.kind}", "")
                return

    def _update_tags(self) -> None:
        if self.tabs.currentWidget() is not self.tag_tree or self.volume is None:
            return
        i, j, k = self.cursor
        ref = self.volume.source_slice_for(k, j, i)
        self.tag_tree.clear()
        if ref is None and self.volume.series is not None:
            self.tag_tree.addTopLevelItem(QTreeWidgetItem(["", "Slice", "missing from the series (shown blank)"]))
            return
        if ref is None:
            geometry = self.volume.geometry.to_dict()
            for key, value in geometry.items():
                self.tag_tree.addTopLevelItem(QTreeWidgetItem(["", key, str(value)]))
            return
        header = QTreeWidgetItem(["", "File", ref.name])
        self.tag_tree.addTopLevelItem(header)
        _add_dataset(self.tag_tree.invisibleRootItem(), ref.header, depth=0)

    def show_report(self, lines: list[str]) -> None:
        """A structured report's content in the Findings tab (below the loading findings)."""
        self.findings_list.addItem("— structured report —")
        for line in lines:
            self.findings_list.addItem(line)
        self.tabs.setCurrentWidget(self.findings_list)
        self.context.notify("info", f"{lines[0] if lines else 'Structured report'}: shown in the Findings tab", "")

    def _show_findings(self, findings: list[str]) -> None:
        self.findings_list.clear()
        for f in findings:
            self.findings_list.addItem(f)
        self.tabs.setTabText(3, f"Findings ({len(findings)})" if findings else "Findings")

    # ================================================================================= engines
    def _fill_engine_menu(self) -> None:
        self.engine_menu.clear()
        try:
            engines = self.context.registry().for_workspace("radiology")
        except Exception as exc:  # noqa: BLE001 - a broken registry is reported, not raised into Qt
            self.context.notify("error", f"Engines could not be listed: {exc}", "")
            return
        if not engines:
            self.engine_menu.addAction("(no radiology engines installed)").setEnabled(False)
        for engine in engines:
            info = engine.info()
            status = engine.weights_status()
            usable = status in ("ok", "none needed")
            title = info.title if usable else f"{info.title} — weights not installed"
            fit, reason = self.contracts.state(engine.id) if self.volume is not None else ("unknown", "")
            if usable and fit == "refused":
                title = f"{info.title} — not for this study"
            elif usable and fit == "warned":
                title = f"{info.title} (check the warning)"
            act = self.engine_menu.addAction(title, lambda eid=engine.id: self.run_engine(eid))
            act.setToolTip(status if not usable else (reason if fit in ("refused", "warned") else info.description))
            act.setEnabled(self.volume is not None and usable and fit != "refused")
        self.engine_menu.setToolTipsVisible(True)

    def run_engine(self, engine_id: str):
        """Run a registered engine on the shown volume, off the GUI thread, with progress and cancel; the
        result is shown as an overlay. Returns the Task (or None)."""
        if self.volume is None:
            self.context.notify("warning", "Open an image before running an engine.", "")
            return None
        engine = self.context.registry().get(engine_id)
        title = engine.info().title
        request = _LazyEngineRequest(self.volume)
        volume = self.volume

        def done(result) -> None:
            self.cancel_button.setEnabled(False)
            if self.volume is not volume:
                self.context.notify("warning", f"{title}: the image changed while it ran; result discarded", "")
                return
            self.show_engine_result(engine, result)

        def failed(message: str, detail: str) -> None:
            self.cancel_button.setEnabled(False)
            self.context.notify("error", message, detail)

        self._engine_task = self.context.tasks.submit_engine(
            engine, request, title=title, owner=f"{self.manifest.id}:engine", device=self.context.device(),
            on_result=done, on_error=failed)
        self._engine_task.cancelled.connect(lambda: (self.cancel_button.setEnabled(False),
                                                     self.context.notify("info", f"{title}: cancelled", "")))
        self._engine_task.notice.connect(lambda msg: self.context.notify("warning", msg, ""))
        self.cancel_button.setEnabled(True)
        return self._engine_task

    def cancel_engine(self) -> None:
        task = getattr(self, "_engine_task", None)
        if task is not None and task.active:
            task.cancel()

    def show_engine_result(self, engine, result) -> None:
        """Turn an engine's result mapping into layers (see the module docstring for the keys)."""
        info = engine.info() if engine is not None else None
        title = info.title if info else "engine"
        from app.widgets.check_banner import show_result_checks

        show_result_checks(self.check_banner, title, result, self.context.notify)
        if not isinstance(result, Mapping):
            self.context.notify("warning", f"{title}: no result to show", "")
            return
        names = result.get("label_names")
        if names is None and info is not None and info.labels:
            names = {n: str(label) for n, label in enumerate(info.labels) if n > 0}
        shown = False
        if result.get("labels") is not None:
            self.add_label_layer(result["labels"], result.get("geometry"), names, name=title)
            shown = True
        elif result.get("mask") is not None:
            self.add_label_layer(result["mask"], None, names, name=title)
            shown = True
        if result.get("findings") is not None:
            self.findings_panel.set_result(result, title)
        if result.get("boxes") is not None:
            self.add_boxes(result["boxes"], name=title)
            shown = True
        if result.get("image") is not None:
            self.add_comparison(result["image"], result.get("geometry"), name=title)
            shown = True
        extra = result.get("volumes_ml")
        if extra:
            self.context.notify("info", f"{title}: " + ", ".join(f"{k} {v} ml" for k, v in extra.items()), "")
        if not shown:
            self.context.notify("warning", f"{title}: the result has nothing this workspace can draw", "")

    def shutdown(self) -> None:
        if self._autosave_timer.isActive() or self._dirty:
            self._autosave_timer.stop()
            try:
                self.autosave_now()  # the shell waits for running tasks before it closes
            except RuntimeError:
                log.warning("could not autosave label edits at shutdown")
        self._flicker.stop()
        self.volume = None
        self.comparison = None
        self.layers.clear()


# ===================================================================================== helpers
def _outline(labels: np.ndarray) -> np.ndarray:
    """Keep only the border pixels of each labelled region (drawing, not analysis)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return np.where(edge, labels, 0).astype(labels.dtype, copy=False)


def _qimage(gray: np.ndarray) -> QImage:
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = gray.shape
    return QImage(gray.data, w, h, w, QImage.Format_Grayscale8).copy()


def _add_dataset(parent, ds, depth: int) -> None:
    for elem in ds:
        if elem.tag == 0x7FE00010:
            continue
        name = elem.name
        if elem.VR == "SQ":
            item = QTreeWidgetItem([f"{elem.tag}", name, f"{len(elem.value)} item(s)"])
            parent.addChild(item)
            if depth < 2:
                for n, sub in enumerate(elem.value[:20]):
                    child = QTreeWidgetItem(["", f"item {n + 1}", ""])
                    item.addChild(child)
                    _add_dataset(child, sub, depth + 1)
            continue
        value = elem.repval if elem.VR in ("OB", "OW", "UN", "OF", "OD", "OL", "OV") else str(elem.value)
        parent.addChild(QTreeWidgetItem([f"{elem.tag}", name, value[:200]]))
