"""The pathology workspace: a whole-slide viewer with heatmap, detection and annotation layers, and the C4d
engines run over the slide's tissue with progress.

The state is a :class:`~engines.pathology.session.PathologySession` (slide, viewport, layers, annotations with
undo, autosave); this module builds the widgets, binds them to the session and runs the slow parts on the shell's
task manager: opening (header, thumbnail, first tiles, autosave), importing, exporting and autosaving. Tiles load
on the canvas's own pool.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from app.workspaces.base import ShellContext, WorkspaceView
from app.workspaces.manifest import WorkspaceManifest
from app.workspaces.pathology.autosave_wiring import AutosaveWiring
from app.workspaces.pathology.canvas import Navigator, SlideCanvas
from app.workspaces.pathology.panels import (ANNOTATION_CLASSES, COLORMAPS, AnalysisPanel, AnnotationsPanel,
                                             LayersPanel, SlideInfoPanel)
from app.workspaces.pathology.tile_pool import qimage_from_rgb
from app.workspaces.pathology.toolbar import ZOOM_PRESETS, ViewerToolbar
from engines.pathology.session import PathologySession, analysis_summary_rows, slide_info_rows, slide_status

__all__ = ["ANNOTATION_CLASSES", "COLORMAPS", "ZOOM_PRESETS", "PathologyWorkspace", "open_slide_job"]


def open_slide_job(path: Path, canvas_size: tuple[int, int]):
    """Worker: everything :func:`engines.pathology.session.prepare_open` reads, with its pictures made QImages
    there too (the GUI thread only swaps them in)."""
    from engines.pathology.session import prepare_open

    def job(progress, cancel):
        opened = prepare_open(path, canvas_size, progress, cancel)
        try:
            return {"opened": opened, "thumb": qimage_from_rgb(opened.thumbnail),
                    "preloaded": {k: qimage_from_rgb(a) for k, a in opened.preloaded.items()},
                    "associated": {k: qimage_from_rgb(a) for k, a in opened.associated.items()}}
        except BaseException:
            opened.reader.close()
            raise

    return job


class PathologyWorkspace(WorkspaceView):
    """Whole-slide viewer + C4d analysis + annotations, bound to one :class:`PathologySession`."""

    analysis_finished = Signal(object)

    def __init__(self, manifest: WorkspaceManifest, context: ShellContext, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        # the canvas closes a previous slide's reader once its tile threads no longer read it
        self.session = session = PathologySession(retire_reader=lambda reader: None)
        self.store = session.store
        self._task = None
        self.check_banner = None

        self.canvas = SlideCanvas(viewport=session.viewport, layers=session.layers)
        self.canvas.cursor_moved.connect(self._cursor)
        self.canvas.view_changed.connect(self._view_changed)
        self.canvas.annotation_drawn.connect(self._annotation_drawn)
        self.canvas.tile_failed.connect(lambda m: self.context.notify(
            "error", f"{self._slide_name()}: some tiles cannot be read", m))
        self.canvas.paint_failed.connect(lambda m: self.context.notify("warning", f"{self._slide_name()}: {m}", ""))
        self.navigator = Navigator(self.canvas)

        self.toolbar = ViewerToolbar()
        self.toolbar.tool_chosen.connect(self.set_tool)
        self.toolbar.fit.connect(self.canvas.fit)
        self.toolbar.zoom_chosen.connect(self.zoom_to_magnification)
        self.toolbar.undo.connect(session.undo)
        self.toolbar.redo.connect(session.redo)
        self.analysis_panel = AnalysisPanel()
        self.analysis_panel.run_clicked.connect(self.run_selected_engine)
        self.analysis_panel.cancel_clicked.connect(self.cancel_analysis)
        self.analysis_panel.export_clicked.connect(self._export_results_dialog)
        self.layers_panel = LayersPanel(session)
        self.layers_panel.import_clicked.connect(self._import_dialog)
        self.annotations_panel = AnnotationsPanel(session)
        self.annotations_panel.import_clicked.connect(self._import_dialog)
        self.annotations_panel.export_clicked.connect(self._export_annotations_dialog)
        self.info_panel = SlideInfoPanel()
        self._expose_widgets()
        self._fill_engines()

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.toolbar)
        lv.addWidget(self.canvas, 1)
        self.status = QLabel("No slide open")
        lv.addWidget(self.status)
        side = QWidget()
        sv = QVBoxLayout(side)
        sv.setContentsMargins(4, 0, 0, 0)
        sv.addWidget(self.navigator)
        self.tabs = QTabWidget()
        for panel, title in ((self.analysis_panel, "Analysis"), (self.layers_panel, "Layers"),
                             (self.annotations_panel, "Annotations"), (self.info_panel, "Slide")):
            self.tabs.addTab(panel, title)
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

        for seq, fn in ((QKeySequence.Undo, session.undo), (QKeySequence.Redo, session.redo),
                        (QKeySequence.Delete, self.delete_selected)):
            sc = QShortcut(seq, self)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)

        self.autosaving = AutosaveWiring(session, context, self)
        self._autosaver = session.autosaver
        session.annotations_changed.connect(self._annotations_changed)
        session.layers.changed.connect(self._layers_changed)
        session.layers.selection_changed.connect(self._selection_changed)
        self._shown_layers: list = []
        self._set_enabled(False)

    def _expose_widgets(self) -> None:
        """The panels' widgets as the view's attributes (scripts and tests reach them there)."""
        for panel, names in (
                (self.toolbar, ("tool_group", "tool_buttons", "zoom_buttons", "undo_button", "redo_button",
                                "zoom_label")),
                (self.analysis_panel, ("engine_combo", "run_button", "cancel_button", "progress", "progress_label",
                                       "summary_table", "export_results_button")),
                (self.layers_panel, ("layer_list", "cmap_combo", "opacity_slider", "threshold_slider",
                                     "threshold_label", "score_slider")),
                (self.annotations_panel, ("class_combo", "name_edit", "annotation_model", "annotation_list",
                                          "autosave_label")),
                (self.info_panel, ("info_tree", "associated_row"))):
            for name in names:
                setattr(self, name, getattr(panel, name))

    # -- the session's state -----------------------------------------------------------------------------------
    @property
    def slide_path(self) -> Path | None:
        return self.session.slide_path

    @property
    def analysis(self):
        return self.session.analysis

    @property
    def analyses(self) -> dict:
        return self.session.analyses

    def _slide_name(self) -> str:
        return self.slide_path.name if self.slide_path else "slide"

    def _fill_engines(self) -> None:
        try:
            engines = self.context.registry().for_workspace("pathology")
        except Exception:  # noqa: BLE001 - no registry: no engines to offer
            engines = []
        self.analysis_panel.fill_engines(engines)

    def _set_enabled(self, on: bool) -> None:
        self.toolbar.set_slide_enabled(on)
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
        opened = r["opened"]
        # the previous slide's edits are autosaved to its file, then everything starts again with this slide
        self.session.adopt(opened)
        self.canvas.set_slide(opened.reader, r["thumb"], opened.thumb_scale, r["preloaded"])
        meta = self.session.meta
        self.info_panel.show_slide(slide_info_rows(meta), r["associated"])
        self._layers_changed()
        self.analysis_panel.reset()
        self._set_enabled(True)
        self.toolbar.label_presets(self.session.zoom_preset)
        self.status.setText(slide_status(path, meta))
        self.autosave_label.setText(f"<small>Autosaved to {self.session.autosave_path()}</small>")
        for note in self.session.notices:
            self.context.notify("warning", note, "")
        self.context.add_recent(path)
        self.opened.emit(str(path))

    # -- view ------------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        self.canvas.set_tool(tool)
        self.tool_buttons[tool].setChecked(True)

    def zoom_to_magnification(self, mag: float) -> None:
        self.session.viewport.zoom_to_magnification(mag)

    def _view_changed(self) -> None:
        if self.session.meta is None:
            self.zoom_label.setText("")
            return
        mag = self.canvas.magnification()
        self.zoom_label.setText((f"{mag:.1f}x · " if mag else "") + f"level {self.canvas.current_level()}")

    def _cursor(self, x: float, y: float) -> None:
        text = self.session.describe_point(x, y)
        if text:
            self.status.setText(text)

    def _layers_changed(self) -> None:
        shown = [(kind, i, name) for kind, i, name, _ in self.session.layers.entries()]
        if shown != self._shown_layers:  # visibility and style changes need no new list
            self._shown_layers = shown
            self.layers_panel.refresh()
        self.canvas.update()
        self.navigator.update()

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
        self.analysis_panel.started(engine.info().title)
        task = self.context.tasks.submit_engine(engine, request, title=f"{engine.info().title} on {self.slide_path.name}",
                                                owner="pathology:analysis", device=self.context.device(),
                                                on_result=self.add_analysis, on_error=self._analysis_failed)
        task.progress.connect(self.analysis_panel.show_progress)
        task.cancelled.connect(lambda: self._analysis_done("Cancelled."))
        self._task = task
        return task

    def cancel_analysis(self) -> None:
        if self._task is not None and self._task.active:
            self._task.cancel()

    def _analysis_failed(self, message: str, detail: str) -> None:
        self._analysis_done(message)
        self.context.notify("error", message, detail)

    def _analysis_done(self, message: str) -> None:
        self.analysis_panel.finished(message, self.slide_path is not None)

    def add_analysis(self, analysis) -> None:
        """Show a SlideAnalysis: heatmap + detections layers and the summary table."""
        if not self.session.add_analysis(analysis):
            self._analysis_done("The result belongs to another slide; not shown.")
            return
        from app.widgets.check_banner import banner_before, show_result_checks

        if self.check_banner is None:
            self.check_banner = banner_before(self.canvas)
        show_result_checks(self.check_banner, analysis.engine_id, analysis, self.context.notify)
        self.analysis_panel.show_summary(analysis_summary_rows(analysis, self.session.other_analyses()))
        self._analysis_done(f"Done: {len(analysis.detections):,} positive structures.")
        self.analysis_finished.emit(analysis)

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

    # -- annotations -------------------------------------------------------------------------------------------
    def _annotation_drawn(self, shape: str, points) -> None:
        self.session.add_annotation(shape, points, cls=self.class_combo.currentText())

    def _annotations_changed(self, edited: bool = True) -> None:
        s = self.store
        self.canvas.set_annotations(s.items, s.bounds, s.index, s.index_of)
        self.annotations_panel.refresh()
        self.toolbar.show_history(s.can_undo, s.can_redo)
        self.layers_panel.refresh()
        self.canvas.update()

    def _selection_changed(self, ann_id: str) -> None:
        self.annotations_panel.show_selected()
        self.canvas.update()

    def delete_selected(self) -> None:
        self.session.delete(self.session.layers.selected_id)

    def autosave(self) -> None:
        """Queue the unsaved annotations to the autosave writer; the payload is built on a worker."""
        self.session.autosave()

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
        from engines.pathology.session import prepare_import

        name = Path(path).name

        def done(r) -> None:
            parsed = r["parsed"]
            note = parsed.summary(name)
            if note:
                self.context.notify("warning", note, "\n".join(parsed.problems[:200]))
            n_ann, n_det = self.session.add_imported(r, name, version)
            self.context.notify("info", f"Imported {n_ann:,} annotations and {n_det:,} detections from {name}", "")

        base, version = self.store.bounds, self.store.version  # bounds arrays are replaced, never edited in place
        return self.context.tasks.submit(lambda p, c: prepare_import(Path(path), p, c, base),
                                         title=f"Importing {name}", owner="pathology:import", on_result=done,
                                         on_error=lambda m, d: self.context.notify("error", m, d))

    # -- life cycle ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self.autosaving.stop()
        self.session.annotations_changed.disconnect(self._annotations_changed)
        self.session.layers.changed.disconnect(self._layers_changed)
        self.session.layers.selection_changed.disconnect(self._selection_changed)
        self.session.shutdown(timeout=10.0)  # the last snapshot is written before this returns
        self.canvas.shutdown()
