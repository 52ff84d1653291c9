"""The pathology workspace: a whole-slide viewer with heatmap, detection and annotation layers, and the
C4d engines run over the slide's tissue with progress.

Everything slow happens off the GUI thread: opening (header, thumbnail, first tiles) and autosaving go
through the shell's TaskManager; tiles through the canvas's loader pool.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QComboBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QListView, QListWidget, QListWidgetItem,
                               QProgressBar,
                               QPushButton, QSlider, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget,
                               QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from app.workspaces.base import ShellContext, WorkspaceView
from app.workspaces.manifest import WorkspaceManifest
from app.workspaces.pathology.canvas import (TILE, DetectionLayer, HeatmapLayer, Navigator, SlideCanvas,
                                             qimage_from_rgb)

ZOOM_PRESETS = (1, 2, 5, 10, 20, 40)
ANNOTATION_CLASSES = ("", "positive", "negative", "tumor", "stroma", "region")
COLORMAPS = ("inferno", "viridis", "magma", "plasma", "cividis")


def open_slide_job(path: Path, canvas_size: tuple[int, int]):
    """Worker: open, check, thumbnail, and the tiles of the first (fitted) view."""
    from engines.pathology.slide import open_slide

    def job(progress, cancel):
        progress(None, f"opening {path.name}")
        reader = open_slide(path)
        try:
            cancel.raise_if_cancelled()
            progress(None, "reading the thumbnail")
            thumb, thumb_scale = reader.thumbnail(1024, progress=progress, cancel=cancel)
            meta = reader.metadata
            w0, h0 = meta.dimensions
            scale = min(canvas_size[0] / w0, canvas_size[1] / h0) * 0.95
            level = reader.best_level(1.0 / scale)
            lw, lh = meta.level_dimensions[level]
            ds = meta.level_downsamples[level]
            ncol, nrow = math.ceil(lw / TILE), math.ceil(lh / TILE)
            pre = {}
            if ncol * nrow <= 24:
                for r in range(nrow):
                    for c in range(ncol):
                        cancel.raise_if_cancelled()
                        w, h = min(TILE, lw - c * TILE), min(TILE, lh - r * TILE)
                        arr = reader.read_region((int(round(c * TILE * ds)), int(round(r * TILE * ds))), level, (w, h))
                        pre[(level, c, r)] = qimage_from_rgb(arr)
            associated = {}
            for name in meta.associated_images[:4]:
                try:
                    img = reader.associated_image(name)
                    from PIL import Image

                    im = Image.fromarray(img)
                    im.thumbnail((240, 240))
                    associated[name] = qimage_from_rgb(np.asarray(im.convert("RGB")))
                except Exception:  # noqa: BLE001 - a broken label image is skipped
                    continue
            from engines.core.autosave import clean_stale_temps
            from engines.pathology.annotations import autosave_path, load_saved_annotations

            clean_stale_temps(autosave_path(path).parent)
            annotations, notices = load_saved_annotations(path)
            bounds = index = None
            if annotations is not None and len(annotations):  # here, not on the GUI thread
                from engines.pathology.annotations import SpatialIndex

                progress(None, f"indexing {len(annotations):,} annotations")
                bounds, _ = annotations.bounds, annotations.keys
                index = SpatialIndex.build(bounds) if len(bounds) >= SpatialIndex.SCAN_BELOW else None
        except BaseException:
            reader.close()
            raise
        return {"reader": reader, "thumb": thumb, "thumb_scale": thumb_scale, "preloaded": pre,
                "associated": associated, "annotations": annotations, "bounds": bounds, "index": index,
                "notices": notices}

    return job


class RaggedRows:
    """Rows of a flat (m, 2) coordinate array cut by offsets: ``rows[i]`` is a view, no array per row is made."""

    def __init__(self, coords: np.ndarray, offsets: np.ndarray) -> None:
        self.coords, self.offsets = coords, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.coords[int(self.offsets[i]):int(self.offsets[i + 1])]


def import_job(path: Path, progress, cancel, base_bounds: np.ndarray | None = None) -> dict:
    """Worker: read and validate a GeoJSON file a chunk at a time into a columnar table, split annotations
    from detections, and build the boxes of the first and the arrays of the second with numpy (a million
    features must not be looped over on the GUI thread, nor parsed in one call that holds the interpreter)."""
    from engines.pathology.geojson import OBJECT_TYPES, load_geojson_table

    progress(None, f"reading {path.name}")
    table, parsed = load_geojson_table(path, progress=progress, cancel=cancel)
    cancel.raise_if_cancelled()
    progress(None, f"indexing {len(table):,} objects")
    is_det = table.object_type == OBJECT_TYPES.index("detection")
    anns = table.take(np.flatnonzero(~is_det)) if is_det.any() else table
    dets = None
    if is_det.any():
        d = table.take(np.flatnonzero(is_det))
        names = [c or "object" for c in d.classes]
        classes = sorted(set(np.asarray(names, object)[np.unique(d.cls)].tolist()))
        remap = np.asarray([classes.index(c) if c in classes else 0 for c in names], np.int16)
        lens = np.diff(d.offsets).astype(np.float64)
        starts = d.offsets[:-1]
        xy = np.stack([np.add.reduceat(d.coords[:, 0], starts) / lens,
                       np.add.reduceat(d.coords[:, 1], starts) / lens], 1).astype(np.float32)
        scores = np.ones(len(d), np.float32)
        for r, m in d.measurements.items():
            if "score" in m:
                scores[r] = m["score"]
        dets = (xy, d.bounds.astype(np.float32), scores, remap[d.cls], classes,
                RaggedRows(d.coords.astype(np.float32), d.offsets))
    _ = anns.bounds, anns.keys  # made here, not on the GUI thread
    index = None
    if base_bounds is not None and len(anns):  # the index over the rows after the addition, also made here
        from engines.pathology.annotations import SpatialIndex

        combined = np.concatenate([base_bounds, anns.bounds])
        if len(combined) >= SpatialIndex.SCAN_BELOW:
            index = SpatialIndex.build(combined)
    return {"parsed": parsed, "annotations": anns, "bounds": anns.bounds, "detections": dets, "index": index}


class PathologyWorkspace(WorkspaceView):
    """Whole-slide viewer + C4d analysis + annotations."""

    analysis_finished = Signal(object)
    _autosave_failed = Signal(str)

    def __init__(self, manifest: WorkspaceManifest, context: ShellContext, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        from engines.pathology.annotations import AnnotationStore

        self.slide_path: Path | None = None
        self.analysis = None
        self.analyses: dict[str, object] = {}
        self._task = None
        self.store = AnnotationStore()
        self.store.listeners.append(self._annotations_changed)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(400)
        self._autosave_timer.timeout.connect(self.autosave)
        from engines.core.autosave import AutosaveWriter

        self._autosave_failed.connect(lambda m: self.context.notify("error", m, ""))
        self._autosaver = AutosaveWriter(on_error=self._autosave_failed.emit)  # emitted on the writer thread
        self._autosave_lock = threading.Lock()
        self._autosave_gen = 0  # snapshots are numbered on the GUI thread; a stale one is never queued after a newer
        self._autosave_queued = 0

        self.canvas = SlideCanvas()
        self.canvas.cursor_moved.connect(self._cursor)
        self.canvas.view_changed.connect(self._view_changed)
        self.canvas.annotation_drawn.connect(self._annotation_drawn)
        self.canvas.annotation_clicked.connect(self._select_annotation)
        self.canvas.tile_failed.connect(lambda m: self.context.notify(
            "error", f"{self.slide_path.name if self.slide_path else 'slide'}: some tiles cannot be read", m))
        self.canvas.paint_failed.connect(lambda m: self.context.notify(
            "warning", f"{self.slide_path.name if self.slide_path else 'slide'}: {m}", ""))
        self.navigator = Navigator(self.canvas)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addLayout(self._build_toolbar())
        lv.addWidget(self.canvas, 1)
        self.status = QLabel("No slide open")
        lv.addWidget(self.status)

        side = QWidget()
        sv = QVBoxLayout(side)
        sv.setContentsMargins(4, 0, 0, 0)
        sv.addWidget(self.navigator)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_analysis_tab(), "Analysis")
        self.tabs.addTab(self._build_layers_tab(), "Layers")
        self.tabs.addTab(self._build_annotations_tab(), "Annotations")
        self.tabs.addTab(self._build_info_tab(), "Slide")
        sv.addWidget(self.tabs, 1)
        side.setMinimumWidth(300)
        side.setMaximumWidth(420)

        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(side)
        split.setStretchFactor(0, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

        for seq, fn in ((QKeySequence.Undo, self.store.undo), (QKeySequence.Redo, self.store.redo),
                        (QKeySequence.Delete, self.delete_selected)):
            sc = QShortcut(seq, self)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        self._set_enabled(False)

    # -- building ------------------------------------------------------------------------------------------
    def _build_toolbar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        self.tool_group = QButtonGroup(self)
        self.tool_buttons = {}
        for tool, label, tip in (("pan", "Pan", "Drag to pan, wheel to zoom, double-click to zoom in"),
                                 ("rectangle", "Rect", "Draw a rectangle"), ("ellipse", "Ellipse", "Draw an ellipse"),
                                 ("polygon", "Polygon", "Click vertices; double-click or Enter closes"),
                                 ("freehand", "Freehand", "Drag to draw an outline")):
            b = QToolButton()
            b.setText(label)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, t=tool: self.set_tool(t))
            self.tool_group.addButton(b)
            self.tool_buttons[tool] = b
            bar.addWidget(b)
        self.tool_buttons["pan"].setChecked(True)
        bar.addSpacing(12)
        fit = QToolButton()
        fit.setText("Fit")
        fit.setToolTip("Whole slide")
        fit.clicked.connect(self.canvas.fit)
        bar.addWidget(fit)
        self.zoom_buttons = []
        for mag in ZOOM_PRESETS:
            b = QToolButton()
            b.setText(f"{mag}x")
            b.setToolTip(f"Objective-equivalent {mag}x ({10 / mag:g} µm per screen pixel)")
            b.clicked.connect(lambda _=False, m=mag: self.zoom_to_magnification(m))
            bar.addWidget(b)
            self.zoom_buttons.append(b)
        bar.addSpacing(12)
        self.undo_button = QToolButton()
        self.undo_button.setText("Undo")
        self.undo_button.clicked.connect(self.store.undo)
        self.redo_button = QToolButton()
        self.redo_button.setText("Redo")
        self.redo_button.clicked.connect(self.store.redo)
        bar.addWidget(self.undo_button)
        bar.addWidget(self.redo_button)
        bar.addStretch(1)
        self.zoom_label = QLabel("")
        bar.addWidget(self.zoom_label)
        return bar

    def _build_analysis_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.engine_combo = QComboBox()
        self.engine_combo.setToolTip("C4d engines: the CNN, and the plain colour-deconvolution threshold to compare")
        row = QHBoxLayout()
        self.run_button = QPushButton("Run on tissue")
        self.run_button.clicked.connect(self.run_selected_engine)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_analysis)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.summary_table = QTableWidget(0, 2)
        self.summary_table.setHorizontalHeaderLabels(["Measure", "Value"])
        self.summary_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.summary_table.horizontalHeader().setStretchLastSection(True)
        self.summary_table.verticalHeader().setVisible(False)
        self.summary_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.export_results_button = QPushButton("Export results…")
        self.export_results_button.setToolTip("Write the detections (GeoJSON), the heatmap and the slide summary")
        self.export_results_button.setEnabled(False)
        self.export_results_button.clicked.connect(self._export_results_dialog)
        note = QLabel("<small>Research use only, not for diagnosis. The CNN was trained on one public IHC field "
                      "(see its model card).</small>")
        note.setWordWrap(True)
        v.addWidget(QLabel("Engine"))
        v.addWidget(self.engine_combo)
        v.addLayout(row)
        v.addWidget(self.progress)
        v.addWidget(self.progress_label)
        v.addWidget(QLabel("Slide summary"))
        v.addWidget(self.summary_table, 1)
        v.addWidget(self.export_results_button)
        v.addWidget(note)
        self._fill_engines()
        return w

    def _build_layers_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.layer_list = QListWidget()
        self.layer_list.itemChanged.connect(self._layer_toggled)
        self.layer_list.currentRowChanged.connect(self._layer_selected)
        v.addWidget(self.layer_list, 1)
        form = QFormLayout()
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(COLORMAPS)
        self.cmap_combo.currentTextChanged.connect(self._heatmap_params)
        self.opacity_slider = QSlider(Qt.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(35)
        self.opacity_slider.valueChanged.connect(self._heatmap_params)
        self.threshold_slider = QSlider(Qt.Horizontal)
        self.threshold_slider.setRange(0, 100)
        self.threshold_slider.setValue(20)
        self.threshold_slider.valueChanged.connect(self._heatmap_params)
        self.threshold_label = QLabel("0.20")
        trow = QHBoxLayout()
        trow.addWidget(self.threshold_slider, 1)
        trow.addWidget(self.threshold_label)
        self.score_slider = QSlider(Qt.Horizontal)
        self.score_slider.setRange(0, 100)
        self.score_slider.valueChanged.connect(self._detection_params)
        form.addRow("Heatmap colours", self.cmap_combo)
        form.addRow("Heatmap opacity", self.opacity_slider)
        form.addRow("Heatmap threshold", trow)
        form.addRow("Detections: min score", self.score_slider)
        v.addLayout(form)
        import_button = QPushButton("Import GeoJSON (QuPath)…")
        import_button.clicked.connect(self._import_dialog)
        v.addWidget(import_button)
        return w

    def _build_annotations_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        form = QFormLayout()
        self.class_combo = QComboBox()
        self.class_combo.setEditable(True)
        self.class_combo.addItems(ANNOTATION_CLASSES)
        self.class_combo.setToolTip("Class given to new annotations (and to the selected one)")
        self.class_combo.currentTextChanged.connect(self._class_changed)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("name of the selected annotation")
        self.name_edit.editingFinished.connect(self._name_changed)
        form.addRow("Class", self.class_combo)
        form.addRow("Name", self.name_edit)
        v.addLayout(form)
        from app.workspaces.pathology.annotation_model import AnnotationListModel

        self.annotation_model = AnnotationListModel(self.store, lambda: self.canvas.meta.mpp if self.canvas.meta else None,
                                                    self)
        self.annotation_list = QListView()
        self.annotation_list.setUniformItemSizes(True)  # no per-row size query: a million rows scroll at once
        self.annotation_list.setModel(self.annotation_model)
        self.annotation_list.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._annotation_row(cur.row()))
        v.addWidget(self.annotation_list, 1)
        row = QHBoxLayout()
        delete = QPushButton("Delete")
        delete.clicked.connect(self.delete_selected)
        export = QPushButton("Export GeoJSON…")
        export.clicked.connect(self._export_annotations_dialog)
        imp = QPushButton("Import…")
        imp.clicked.connect(self._import_dialog)
        row.addWidget(delete)
        row.addWidget(imp)
        row.addWidget(export)
        v.addLayout(row)
        self.autosave_label = QLabel("")
        self.autosave_label.setWordWrap(True)
        v.addWidget(self.autosave_label)
        return w

    def _build_info_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.info_tree = QTreeWidget()
        self.info_tree.setHeaderLabels(["Property", "Value"])
        self.info_tree.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        v.addWidget(self.info_tree, 1)
        self.associated_row = QHBoxLayout()
        v.addLayout(self.associated_row)
        return w

    def _fill_engines(self) -> None:
        self.engine_combo.clear()
        try:
            engines = self.context.registry().for_workspace("pathology")
        except Exception:  # noqa: BLE001 - no registry: no engines to offer
            engines = []
        order = {"c4d-cnn": 0, "c4d-deconvolution": 1}
        for e in sorted(engines, key=lambda e: order.get(e.id, 9)):
            info = e.info()
            status = e.weights_status()
            label = info.title + ("" if status in ("ok", "none needed") else "  (weights missing)")
            self.engine_combo.addItem(label, e.id)

    def _set_enabled(self, on: bool) -> None:
        for b in list(self.tool_buttons.values()) + self.zoom_buttons:
            b.setEnabled(on)
        self.run_button.setEnabled(on and self.engine_combo.count() > 0)

    # -- opening -------------------------------------------------------------------------------------------
    def open_path(self, path: Path) -> None:
        path = Path(path)
        if path.suffix.lower() == ".geojson":
            if self.slide_path is None:
                self.context.notify("error", f"{path.name}: open the slide these annotations belong to first, "
                                             f"then drop the GeoJSON on it", "")
                return
            self.import_geojson(path)
            return
        size = (max(self.canvas.width(), 800), max(self.canvas.height(), 600))
        self.status.setText(f"Opening {path.name}…")
        self.context.tasks.submit(open_slide_job(path, size), title=f"Opening {path.name}",
                                  owner="pathology:open", on_result=lambda r, p=path: self._opened(p, r),
                                  on_error=self._open_failed)

    def _open_failed(self, message: str, detail: str) -> None:
        self.status.setText(message)
        self.context.notify("error", message, detail)

    def _opened(self, path: Path, r: dict) -> None:
        self.cancel_analysis()
        self.autosave()
        self.slide_path = path
        self.analysis = None
        self.analyses = {}
        self.canvas.set_slide(r["reader"], r["thumb"], r["thumb_scale"], r["preloaded"])
        # a new slide starts a new history, whether or not it has saved annotations
        self._autosave_timer.stop()
        self.store.listeners.remove(self._annotations_changed)
        try:
            self.store.reset(r["annotations"], r.get("bounds"), r.get("index"))
        finally:
            self.store.listeners.append(self._annotations_changed)
        self._annotations_changed(autosave=False)
        self._fill_info(r)
        self._refresh_layers()
        self.summary_table.setRowCount(0)
        self.export_results_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress_label.setText("")
        self._set_enabled(True)
        self._label_zoom_presets()
        meta = self.canvas.meta
        self.status.setText(f"{path.name} · {meta.vendor} · {meta.dimensions[0]:,} x {meta.dimensions[1]:,} px · "
                            f"{meta.level_count} levels · " +
                            (f"{meta.mpp:.3f} µm/px" if meta.mpp else "no resolution in the file"))
        from engines.pathology.annotations import autosave_path

        self.autosave_label.setText(f"<small>Autosaved to {autosave_path(path)}</small>")
        for note in r.get("notices", []):
            self.context.notify("warning", note, "")
        self.context.add_recent(path)
        self.opened.emit(str(path))

    def _fill_info(self, r: dict) -> None:
        meta = self.canvas.meta
        self.info_tree.clear()

        def add(parent, k, v):
            item = QTreeWidgetItem([k, str(v)])
            (parent.addChild(item) if parent is not None else self.info_tree.addTopLevelItem(item))
            return item

        add(None, "File", Path(meta.path).name)
        add(None, "Vendor", meta.vendor)
        add(None, "Dimensions", f"{meta.dimensions[0]:,} x {meta.dimensions[1]:,} px")
        add(None, "Microns per pixel", f"{meta.mpp_x:.4f} x {meta.mpp_y:.4f}" if meta.mpp_x and meta.mpp_y
            else "not in the file (scale bar in pixels)")
        if meta.mpp:
            w0, h0 = meta.dimensions
            add(None, "Physical size", f"{w0 * meta.mpp / 1000:.2f} x {h0 * meta.mpp / 1000:.2f} mm")
        add(None, "Objective power", f"{meta.objective_power:g}x" if meta.objective_power else "not in the file")
        levels = add(None, "Levels", meta.level_count)
        for i, (d, ds) in enumerate(zip(meta.level_dimensions, meta.level_downsamples)):
            add(levels, f"level {i}", f"{d[0]:,} x {d[1]:,} (downsample {ds:g})")
        levels.setExpanded(True)
        add(None, "Associated images", ", ".join(meta.associated_images) or "none")
        props = add(None, "Properties", f"{len(meta.properties)}")
        for k in sorted(meta.properties):
            add(props, k, meta.properties[k])
        while self.associated_row.count():
            item = self.associated_row.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        for name, img in r.get("associated", {}).items():
            lab = QLabel()
            lab.setPixmap(QPixmap.fromImage(img).scaled(120, 120, Qt.KeepAspectRatio, Qt.SmoothTransformation))
            lab.setToolTip(name)
            self.associated_row.addWidget(lab)
        self.associated_row.addStretch(1)

    # -- view ------------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        self.canvas.set_tool(tool)
        self.tool_buttons[tool].setChecked(True)

    def _label_zoom_presets(self) -> None:
        """Presets beyond the scan's own resolution enlarge pixels that are not there: say so."""
        for mag, b in zip(ZOOM_PRESETS, self.zoom_buttons):
            scale = self.canvas.scale_for_magnification(mag)
            up = scale is not None and scale > 1.0001
            b.setText(f"{mag}x (upsampled)" if up else f"{mag}x")
            tip = f"Objective-equivalent {mag}x ({10 / mag:g} µm per screen pixel)"
            if up:
                tip += f"; the scan has {1 / scale:.2g} of the pixels needed, each shown {scale:.3g} times larger"
            b.setToolTip(tip)

    def zoom_to_magnification(self, mag: float) -> None:
        scale = self.canvas.scale_for_magnification(mag)
        if scale is None:  # no resolution and no objective: treat presets as level-0 fractions of 40x
            scale = mag / 40.0
        self.canvas.set_view(self.canvas.cx, self.canvas.cy, scale)

    def _view_changed(self) -> None:
        mag = self.canvas.magnification()
        lvl = self.canvas.current_level() if self.canvas.meta else 0
        self.zoom_label.setText((f"{mag:.1f}x · " if mag else "") + f"level {lvl}" if self.canvas.meta else "")

    def _cursor(self, x: float, y: float) -> None:
        if self.canvas.meta is None:
            return
        if math.isnan(x):
            return
        mpp = self.canvas.meta.mpp
        text = f"x {x:,.0f}  y {y:,.0f} px (level 0)"
        if mpp:
            text += f"  ·  {x * mpp / 1000:.3f}, {y * mpp / 1000:.3f} mm"
        if self.analysis is not None:
            hm = self.analysis.heatmap
            j, i = int((x - hm.origin[0]) // hm.cell), int((y - hm.origin[1]) // hm.cell)
            if 0 <= i < hm.values.shape[0] and 0 <= j < hm.values.shape[1] and not np.isnan(hm.values[i, j]):
                text += f"  ·  heatmap {hm.values[i, j]:.2f}"
        self.status.setText(text)

    # -- analysis --------------------------------------------------------------------------------------------
    def run_selected_engine(self) -> None:
        engine_id = self.engine_combo.currentData()
        if engine_id:
            self.run_engine(engine_id)

    def run_engine(self, engine_id: str, **options):
        if self.slide_path is None:
            self.context.notify("info", "Open a slide first.", "")
            return None
        engine = self.context.registry().get(engine_id)
        request = {"slide_path": self.slide_path, **options}
        self.progress.setValue(0)
        self.progress_label.setText(f"Starting {engine.info().title}…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        task = self.context.tasks.submit_engine(engine, request, title=f"{engine.info().title} on {self.slide_path.name}",
                                                owner="pathology:analysis", device=self.context.device(),
                                                on_result=self.add_analysis, on_error=self._analysis_failed)
        task.progress.connect(self._analysis_progress)
        task.cancelled.connect(lambda: self._analysis_done("Cancelled."))
        self._task = task
        return task

    def cancel_analysis(self) -> None:
        if self._task is not None and self._task.active:
            self._task.cancel()

    def _analysis_progress(self, fraction: float, message: str) -> None:
        if fraction >= 0:
            self.progress.setValue(int(round(fraction * 100)))
        self.progress_label.setText(message)

    def _analysis_failed(self, message: str, detail: str) -> None:
        self._analysis_done(message)
        self.context.notify("error", message, detail)

    def _analysis_done(self, message: str) -> None:
        self.run_button.setEnabled(self.slide_path is not None)
        self.cancel_button.setEnabled(False)
        self.progress_label.setText(message)

    def add_analysis(self, analysis) -> None:
        """Show a SlideAnalysis: heatmap + detections layers and the summary table."""
        if self.slide_path is None or Path(analysis.slide_path).resolve() != Path(self.slide_path).resolve():
            self._analysis_done("The result belongs to another slide; not shown.")
            return
        self.analysis = analysis
        self.analyses[analysis.engine_id] = analysis
        from app.widgets.check_banner import banner_before, show_result_checks

        if getattr(self, "check_banner", None) is None:
            self.check_banner = banner_before(self.canvas)
        show_result_checks(self.check_banner, analysis.engine_id, analysis, self.context.notify)
        eid = analysis.engine_id
        self.canvas.heatmaps = [h for h in self.canvas.heatmaps if h.name != f"Heatmap · {eid}"]
        self.canvas.detections = [d for d in self.canvas.detections if d.name != f"Detections · {eid}"]
        for h in self.canvas.heatmaps:
            h.visible = False
        for d in self.canvas.detections:
            d.visible = False
        hm = analysis.heatmap
        self.canvas.heatmaps.append(HeatmapLayer(f"Heatmap · {eid}", hm.values, hm.cell, tuple(hm.origin),
                                                 colormap=self.cmap_combo.currentText(),
                                                 opacity=self.opacity_slider.value() / 100,
                                                 threshold=self.threshold_slider.value() / 100))
        d = analysis.detections
        self.canvas.detections.append(DetectionLayer(f"Detections · {eid}", d.xy, d.boxes, d.scores, d.classes,
                                                     d.class_names, d.polygons,
                                                     min_score=self.score_slider.value() / 100))
        self._refresh_layers()
        self._fill_summary(analysis)
        self.export_results_button.setEnabled(True)
        self.progress.setValue(100)
        self._analysis_done(f"Done: {len(d):,} positive structures.")
        self.canvas.update()
        self.navigator.update()
        self.analysis_finished.emit(analysis)

    def _fill_summary(self, analysis) -> None:
        s = analysis.summary
        rows = [
            ("Engine", s.get("engine")),
            ("Tissue area", f"{s['tissue_area_mm2']:.2f} mm²"),
            ("Positive structures", f"{s['positive_structures']:,}"),
            ("Positive per mm² of tissue", f"{s['positive_per_mm2']:.1f}" if s.get("positive_per_mm2") is not None else "–"),
            ("Positive area (% of tissue)", f"{s['positive_area_percent']:.1f} %" if s.get("positive_area_percent") is not None else "–"),
            ("Mean detection score", f"{s['mean_score']:.2f}" if s.get("mean_score") is not None else "–"),
            ("Tiles analysed", s.get("tiles_analysed")),
            ("Working resolution", f"{s['working_mpp']} µm/px" + (" (assumed: no mpp in file)" if s.get("mpp_assumed") else "")),
        ]
        other = [a for k, a in self.analyses.items() if k != analysis.engine_id]
        for o in other:
            rows.append((f"vs {o.engine_id}", f"{o.summary['positive_structures']:,} structures, "
                                              f"{o.summary['positive_area_percent']:.1f} % area"))
        self.summary_table.setRowCount(len(rows))
        for i, (k, v) in enumerate(rows):
            self.summary_table.setItem(i, 0, QTableWidgetItem(str(k)))
            self.summary_table.setItem(i, 1, QTableWidgetItem(str(v)))

    def _export_results_dialog(self) -> None:
        if self.analysis is None:
            return
        from app.widgets.export_dialog import ask_save_path

        default = Path(self.slide_path).with_suffix("").name + f".{self.analysis.engine_id}.geojson"
        path = ask_save_path(self, "pathology", "Export results", self.slide_path, default, "GeoJSON (*.geojson)")
        if path:
            self.export_results(path)

    def export_results(self, path: Path):
        from engines.pathology.c4d import write_analysis

        analysis = self.analysis
        return self.context.tasks.submit(lambda p, c: write_analysis(analysis, Path(path)), title="Exporting results",
                                         owner="pathology:export",
                                         on_result=lambda paths: self.context.notify(
                                             "info", f"Wrote {', '.join(Path(x).name for x in paths)}", ""),
                                         on_error=lambda m, d: self.context.notify("error", m, d))

    # -- layers ------------------------------------------------------------------------------------------------
    def _refresh_layers(self) -> None:
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for kind, layers in (("heatmap", self.canvas.heatmaps), ("detections", self.canvas.detections)):
            for i, layer in enumerate(layers):
                text = layer.name + (f" ({len(layer):,})" if kind == "detections" else "")
                item = QListWidgetItem(text)
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Checked if layer.visible else Qt.Unchecked)
                item.setData(Qt.UserRole, (kind, i))
                self.layer_list.addItem(item)
        item = QListWidgetItem(f"Annotations ({len(self.store.items)})")
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if self.canvas.annotations_visible else Qt.Unchecked)
        item.setData(Qt.UserRole, ("annotations", 0))
        self.layer_list.addItem(item)
        self.layer_list.blockSignals(False)

    def _layer_toggled(self, item: QListWidgetItem) -> None:
        kind, i = item.data(Qt.UserRole)
        on = item.checkState() == Qt.Checked
        if kind == "heatmap":
            self.canvas.heatmaps[i].visible = on
        elif kind == "detections":
            self.canvas.detections[i].visible = on
        else:
            self.canvas.annotations_visible = on
        self.canvas.update()
        self.navigator.update()

    def _layer_selected(self, row: int) -> None:
        pass

    def _heatmap_params(self) -> None:
        thr = self.threshold_slider.value() / 100
        self.threshold_label.setText(f"{thr:.2f}")
        for h in self.canvas.heatmaps:
            h.colormap = self.cmap_combo.currentText()
            h.opacity = self.opacity_slider.value() / 100
            h.threshold = thr
            h.invalidate()
        self.canvas.update()
        self.navigator.update()

    def _detection_params(self) -> None:
        for d in self.canvas.detections:
            d.min_score = self.score_slider.value() / 100
        self.canvas.update()

    # -- annotations -------------------------------------------------------------------------------------------
    def _annotation_drawn(self, shape: str, points) -> None:
        from engines.pathology.geojson import Annotation, ellipse_points, rectangle_points

        if shape == "rectangle":
            (x0, y0), (x1, y1) = points
            pts = rectangle_points(x0, y0, x1, y1)
        elif shape == "ellipse":
            (x0, y0), (x1, y1) = points
            pts = ellipse_points(x0, y0, x1, y1)
        else:
            pts = [(float(x), float(y)) for x, y in points]
        n = len(self.store.items) + 1
        cls = self.class_combo.currentText().strip()
        from engines.pathology.geojson import DEFAULT_COLORS

        ann = Annotation(shape, pts, name=f"{shape.capitalize()} {n}", cls=cls,
                         color=DEFAULT_COLORS.get(cls) if cls else None)
        self.store.add(ann)
        self.canvas.selected_id = ann.id
        self._select_annotation(ann.id)

    def _annotations_changed(self, autosave: bool = True) -> None:
        self.canvas.set_annotations(self.store.items, self.store.bounds, self.store.index, self.store.index_of)
        if self.canvas.selected_id and self.store.index_of(self.canvas.selected_id) < 0:
            self.canvas.selected_id = ""
        self.annotation_model.refresh()
        self._show_selected_row()
        self.undo_button.setEnabled(self.store.can_undo)
        self.redo_button.setEnabled(self.store.can_redo)
        self._refresh_layers()
        self.canvas.update()
        if autosave and self.slide_path is not None:
            self._autosave_timer.start()

    def _show_selected_row(self) -> None:
        row = self.store.index_of(self.canvas.selected_id) if self.canvas.selected_id else -1
        sel = self.annotation_list.selectionModel()
        sel.blockSignals(True)
        if row >= 0:
            index = self.annotation_model.index(row, 0)
            sel.setCurrentIndex(index, sel.SelectionFlag.ClearAndSelect)
            self.annotation_list.scrollTo(index)
        else:
            sel.clear()
        sel.blockSignals(False)
        self.annotation_list.viewport().update()

    def _select_annotation(self, ann_id: str) -> None:
        self.canvas.selected_id = ann_id
        self._show_selected_row()
        ann = self.store.get(ann_id) if ann_id else None
        self.name_edit.setText(ann.name if ann else "")
        self.canvas.update()

    def _annotation_row(self, row: int) -> None:
        if 0 <= row < len(self.store.items):
            ann = self.store.items[row]
            self._select_annotation(ann.id)
            x0, y0, x1, y1 = self.store.bounds[row]
            if np.isfinite(x0):
                self.canvas.set_view((x0 + x1) / 2, (y0 + y1) / 2)

    def _name_changed(self) -> None:
        if self.canvas.selected_id:
            self.store.update(self.canvas.selected_id, name=self.name_edit.text().strip())

    def _class_changed(self, cls: str) -> None:
        from engines.pathology.geojson import DEFAULT_COLORS

        ann = self.store.get(self.canvas.selected_id) if self.canvas.selected_id else None
        if ann is not None and ann.cls != cls.strip():
            self.store.update(ann.id, cls=cls.strip(), color=DEFAULT_COLORS.get(cls.strip(), ann.color))

    def delete_selected(self) -> None:
        if self.canvas.selected_id:
            self.store.remove(self.canvas.selected_id)

    def autosave(self) -> None:
        """Queue the annotations to the shared autosave writer; the payload is built off the GUI thread
        (an empty list is saved too)."""
        if self.slide_path is None or not self.store.dirty:
            return
        items = self.store.snapshot()  # tables are immutable, made annotations replaced: a cheap snapshot
        self.store.dirty = False
        self._autosave_gen += 1
        gen, slide = self._autosave_gen, self.slide_path
        self.context.tasks.submit(lambda p, c: self._queue_autosave(gen, slide, items),
                                  title="Autosaving annotations", owner=f"pathology:autosave:{gen}",
                                  on_error=lambda m, d: self.context.notify("error", m, d))

    def _queue_autosave(self, gen: int, slide: Path, items, delay: float = 0.2) -> None:
        """Worker (or closing): serialise and queue one snapshot unless a newer one was queued already. Up to
        COMPACT_ABOVE annotations are saved as GeoJSON; more as columns in an .npz (the newer file is read)."""
        from engines.pathology.annotations import (AUTOSAVE_SCHEMA, COMPACT_ABOVE, autosave_path, autosave_payload,
                                                   compact_autosave_path)

        compact = len(items) > COMPACT_ABOVE
        if compact:
            arrays, meta = items.to_table().to_arrays()
            meta["slide"] = Path(slide).name
        else:
            payload = autosave_payload(slide, items.annotations() if hasattr(items, "annotations") else list(items))
        with self._autosave_lock:
            if gen < self._autosave_queued:
                return
            self._autosave_queued = gen
            if compact:
                self._autosaver.save_arrays(compact_autosave_path(slide), arrays, schema=AUTOSAVE_SCHEMA, meta=meta,
                                            delay=delay)
            else:
                self._autosaver.save(autosave_path(slide), payload, schema=AUTOSAVE_SCHEMA, delay=delay)

    def _export_annotations_dialog(self) -> None:
        if self.slide_path is None:
            return
        from app.widgets.export_dialog import ask_save_path

        path = ask_save_path(self, "pathology", "Export annotations", self.slide_path,
                             Path(self.slide_path).with_suffix(".geojson").name, "GeoJSON (*.geojson *.json)")
        if path:
            self.export_annotations(Path(path))

    def export_annotations(self, path: Path):
        from engines.pathology.geojson import write_geojson

        snap = self.store.snapshot()
        return self.context.tasks.submit(lambda p, c: write_geojson(Path(path), snap.annotations()),
                                         title="Exporting annotations",
                                         owner="pathology:export-annotations",
                                         on_result=lambda out: self.context.notify("info", f"Wrote {Path(out).name}", ""),
                                         on_error=lambda m, d: self.context.notify("error", m, d))

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import GeoJSON", "", "GeoJSON (*.geojson *.json)")
        if path:
            self.import_geojson(Path(path))

    def import_geojson(self, path: Path):
        """Annotations join the annotation layer; QuPath detections become a detection layer. Parsing,
        validating and the arrays of both layers are made off the GUI thread."""
        name = Path(path).name

        def done(r) -> None:
            parsed, anns, bounds, dets = r["parsed"], r["annotations"], r["bounds"], r["detections"]
            note = parsed.summary(name)
            if note:
                self.context.notify("warning", note, "\n".join(parsed.problems[:200]))
            index = r.get("index") if self.store.version == version else None  # stale after an edit meanwhile
            self.store.extend(anns, bounds, index)
            if dets is not None:
                self.canvas.detections.append(DetectionLayer(f"Imported · {name}", *dets))
                self._refresh_layers()
                self.canvas.update()
            self.context.notify("info", f"Imported {len(anns):,} annotations and "
                                        f"{0 if dets is None else len(dets[0]):,} detections from {name}", "")

        base, version = self.store.bounds, self.store.version  # bounds arrays are replaced, never edited in place
        return self.context.tasks.submit(lambda p, c: import_job(Path(path), p, c, base), title=f"Importing {name}",
                                         owner="pathology:import", on_result=done,
                                         on_error=lambda m, d: self.context.notify("error", m, d))

    # -- life cycle ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self._autosave_timer.stop()
        in_flight = self._autosave_gen > self._autosave_queued  # a snapshot still being built by a worker
        if self.slide_path is not None and (self.store.dirty or in_flight):
            self._autosave_gen += 1  # closing: the last snapshot is queued here, then written before we return
            self._queue_autosave(self._autosave_gen, self.slide_path, self.store.snapshot(), delay=0.0)
            self.store.dirty = False
        self._autosaver.close(timeout=10.0)
        self.canvas.shutdown()
