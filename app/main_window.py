"""The shell: workspace switcher, menus, task area, notification area, status bar with the compute device."""
from __future__ import annotations

import logging
import platform
import sys
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QGridLayout, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QMainWindow, QMessageBox, QPushButton, QStackedWidget,
                               QVBoxLayout, QWidget)

from app import __version__
from app.settings import Settings
from app.widgets.notifications import NotificationArea
from app.widgets.tasks import TaskPanel
from app.worker import TaskManager
from app.workspaces.base import ShellContext, WorkspaceView
from app.workspaces.manifest import WorkspaceManifest, discover_workspaces, workspace_for_kind
from engines.core.paths import config_dir, resources_dir

log = logging.getLogger(__name__)


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


OPEN_FILE_LABEL = "&Open File…"
OPEN_SAMPLE_LABEL = "Open Sa&mple"


def menu_label(text: str) -> str:
    """``text`` as a menu or button label: a literal '&' is doubled so Qt does not take it for a mnemonic."""
    return text.replace("&", "&&")


def shown_label(label: str) -> str:
    """What the user reads for a menu label: mnemonic marks removed, '&&' shown as '&'."""
    return label.replace("&&", "\0").replace("&", "").replace("\0", "&")


class MainWindow(QMainWindow):
    workspace_changed = Signal(str)
    device_resolved = Signal(str)

    def __init__(self, settings: Settings | None = None, manifests: list[WorkspaceManifest] | None = None,
                 detect_device: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("CSI Workstation")
        self.setWindowIcon(QIcon(str(resources_dir() / "icons" / "csi-workstation.svg")))
        self.setAcceptDrops(True)
        self.settings, problems = (settings, []) if settings is not None else Settings.load_with_problems()
        if manifests is None:
            manifests, errors = discover_workspaces()
        else:
            errors = {}
        self.manifests = manifests
        self.views: dict[str, WorkspaceView] = {}
        self._registry = None
        self.device_label = "detecting…"
        self.device_string = "auto"

        self.tasks = TaskManager(self)
        self.notifications = NotificationArea()
        self.tasks.notifications = self.notifications.manager  # errors and notices no caller handles land in Messages
        self.context = ShellContext(tasks=self.tasks, notify=self.notify, add_recent=self.add_recent,
                                    registry=self.registry, device=lambda: self.device_string)
        self._build_central()
        self._build_docks()
        self._build_menus()
        self._build_status()
        self._restore_geometry()
        for problem in problems:
            self.notify("warning", problem)
        for name, err in errors.items():
            self.notify("error", f"The {name} workspace could not be loaded; it is left out of this session "
                                 f"(details in the log).", str(err))
        if detect_device:
            self._detect_device()
            self._discover_engines()
        self._clean_stale_temps()

    # -- layout -------------------------------------------------------------------------------------
    def _build_central(self) -> None:
        self.switcher = QListWidget()
        self.switcher.setObjectName("workspaceSwitcher")
        self.switcher.setIconSize(QSize(28, 28))
        self.switcher.setFixedWidth(230)
        self.switcher.setWordWrap(True)
        self.switcher.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.switcher.setSpacing(2)
        self.switcher.setFocusPolicy(Qt.NoFocus)  # focus would select row 0 and import a workspace at start-up
        self.stack = QStackedWidget()
        self.home = self._build_home()
        self.stack.addWidget(self.home)
        self.placeholders: dict[str, QWidget] = {}
        for m in self.manifests:
            icon = QIcon(str(resources_dir() / "icons" / m.icon)) if m.icon else QIcon()
            item = QListWidgetItem(icon, f"{m.title}\n{m.summary}")
            item.setData(Qt.UserRole, m.id)
            item.setToolTip(m.summary)
            self.switcher.addItem(item)
            holder = QWidget()  # replaced by the real view on first open (lazy import)
            self.placeholders[m.id] = holder
            self.stack.addWidget(holder)
        self.switcher.currentRowChanged.connect(self._on_switch_row)
        container = QWidget()
        row = QHBoxLayout(container)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.switcher)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(container)

    def _build_home(self) -> QWidget:
        """The first page: what each workspace is for, and how to get something on screen."""
        page = QWidget()
        page.setObjectName("homePage")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(32, 24, 32, 24)
        intro = QLabel("<h1>CSI Workstation</h1><p>Review CT/MRI series, whole-slide images and music "
                       "recordings with AI results, on this computer, offline.</p><p>Drop a DICOM folder, a "
                       f"slide, an audio file or an image anywhere on this window, use <b>File ▸ "
                       f"{shown_label(OPEN_FILE_LABEL)}</b> or <b>File ▸ {shown_label(OPEN_SAMPLE_LABEL)}</b>, "
                       f"or pick a workspace:</p>")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QGridLayout()
        for n, m in enumerate(self.manifests):
            button = QPushButton(QIcon(str(resources_dir() / "icons" / m.icon)) if m.icon else QIcon(),
                                 f"  {menu_label(m.title)}")
            button.setIconSize(QSize(32, 32))
            button.setMinimumHeight(48)
            button.clicked.connect(lambda _=False, mid=m.id: self.switch_to(mid))
            holds = "; ".join(m.will_hold[:2])
            text = QLabel(f"<b>{m.summary}.</b> " + holds[:1].upper() + holds[1:] + ".")
            text.setWordWrap(True)
            grid.addWidget(button, n, 0)
            grid.addWidget(text, n, 1)
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)
        layout.addStretch(1)
        foot = QLabel("<i>Research use only. Not for diagnosis.</i>")
        layout.addWidget(foot)
        return page

    def _build_docks(self) -> None:
        self.task_panel = TaskPanel(self.tasks)
        self.tasks_dock = QDockWidget("Tasks", self)
        self.tasks_dock.setObjectName("tasksDock")
        self.tasks_dock.setWidget(self.task_panel)
        self.messages_dock = QDockWidget("Messages", self)
        self.messages_dock.setObjectName("messagesDock")
        self.messages_dock.setWidget(self.notifications)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.tasks_dock)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.messages_dock)
        self.splitDockWidget(self.tasks_dock, self.messages_dock, Qt.Horizontal)
        self.resizeDocks([self.tasks_dock, self.messages_dock], [150, 150], Qt.Vertical)
        self.tasks_dock.setVisible(self.settings.show_tasks)
        self.messages_dock.setVisible(self.settings.show_messages)
        self.notifications.count_changed.connect(
            lambda errors, total: self.messages_dock.setWindowTitle(
                f"Messages ({errors} error{'s' if errors != 1 else ''})" if errors else "Messages"))

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        act = file_menu.addAction(OPEN_FILE_LABEL, self.open_file_dialog)
        act.setShortcut(QKeySequence.Open)
        act = file_menu.addAction("Open &Folder…", self.open_folder_dialog)
        act.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        act = file_menu.addAction("Open &Sample of This Workspace", self.open_current_sample)
        act.setShortcut(QKeySequence("Ctrl+Shift+S"))
        samples_menu = file_menu.addMenu(OPEN_SAMPLE_LABEL)
        for m in self.manifests:
            for sample_id, title in (m.samples or ((m.sample, m.title),) if m.sample else ()):
                samples_menu.addAction(f"{menu_label(m.title)}: {menu_label(title)}",
                                       lambda mid=m.id, sid=sample_id: self.open_sample(mid, sid))
        file_menu.addSeparator()
        act = file_menu.addAction("&Quit", self.close)
        act.setShortcut(QKeySequence.Quit)

        view_menu = self.menuBar().addMenu("&View")
        for n, m in enumerate(self.manifests, start=1):
            act = view_menu.addAction(menu_label(m.title), lambda mid=m.id: self.switch_to(mid))
            if n <= 9:
                act.setShortcut(QKeySequence(f"Ctrl+{n}"))
        view_menu.addSeparator()
        view_menu.addAction(self.tasks_dock.toggleViewAction())
        view_menu.addAction(self.messages_dock.toggleViewAction())
        view_menu.addAction("&Batch…", self.show_batch)

        tasks_menu = self.menuBar().addMenu("&Tasks")
        act = tasks_menu.addAction("Cancel All Tasks", self.tasks.cancel_all)
        act.setShortcut(QKeySequence("Ctrl+."))

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&About CSI Workstation", self.show_about)
        help_menu.addAction("Show &Log Folder Path", lambda: self.notify(
            "info", f"Logs are in {__import__('engines.core.paths', fromlist=['log_dir']).log_dir()}"))

    def _build_status(self) -> None:
        self.device_widget = QLabel(f"Device: {self.device_label}")
        self.device_widget.setObjectName("deviceLabel")
        self.device_widget.setToolTip("Compute device the engines use (set CSI_DEVICE or settings.json 'device')")
        self.statusBar().addPermanentWidget(self.device_widget)
        self.statusBar().showMessage(f"Drop a DICOM folder, slide, audio file or image here, or use File ▸ "
                                     f"{shown_label(OPEN_FILE_LABEL)}")

    # -- geometry & settings --------------------------------------------------------------------------
    def _qsettings(self) -> QSettings:
        return QSettings(str(config_dir() / "window.ini"), QSettings.IniFormat)

    def _restore_geometry(self) -> None:
        qs = self._qsettings()
        geometry = qs.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1360, 860)
        state = qs.value("state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    def save_state(self) -> None:
        qs = self._qsettings()
        qs.setValue("geometry", self.saveGeometry())
        qs.setValue("state", self.saveState())
        qs.sync()
        self.settings.show_tasks = self.tasks_dock.isVisible() if self.isVisible() else self.settings.show_tasks
        self.settings.show_messages = (self.messages_dock.isVisible() if self.isVisible()
                                       else self.settings.show_messages)
        self.settings.save()

    # -- services -----------------------------------------------------------------------------------
    def notify(self, level: str, message: str, detail: str = "") -> None:
        self.notifications.post(level, message, detail)
        if level in ("warning", "error"):
            self.statusBar().showMessage(message, 10_000)
            if level == "error" and not self.messages_dock.isVisible():
                self.messages_dock.show()

    def add_recent(self, path: Path) -> None:
        self.settings.add_recent(path)
        self.settings.save()

    def registry(self):
        """The engines (discovered once; in a worker at start-up, here if a view asks before that finished)."""
        if self._registry is None:
            from engines.core.registry import EngineRegistry

            self._set_registry(EngineRegistry.discover())
        return self._registry

    def _set_registry(self, registry) -> None:
        if self._registry is not None:  # a view asked first and discovered them itself
            return
        self._registry = registry
        for name, err in registry.errors.items():
            self.notify("error", f"The {name} engines could not be loaded; they are left out of this session "
                                 f"(details in the log).", str(err))

    def _discover_engines(self) -> None:
        """Import the engine modules off the GUI thread at start-up (80-200 ms of imports that otherwise land
        on the first study a user opens; benchmarks/gui_stall)."""
        def job(progress, cancel):
            from engines.core.registry import EngineRegistry

            return EngineRegistry.discover()

        self.tasks.submit(job, title="Finding engines", owner="shell:engines", on_result=self._set_registry,
                          on_error=lambda msg, detail: self.notify("error", msg, detail))

    def _clean_stale_temps(self) -> None:
        """Remove temporary files that killed writes left in the settings and data folders (autosaves too).

        A plain background thread, not a task: it is housekeeping the user need not see in the Tasks panel.
        """
        def job() -> None:
            from engines.core.atomic import clean_stale_temps
            from engines.core.paths import data_dir

            try:
                for root in (config_dir(), data_dir()):
                    clean_stale_temps(root)
            except OSError as exc:
                log.warning("temporary files left by interrupted saves were not removed: %s", exc)

        threading.Thread(target=job, name="clean-stale-temps", daemon=True).start()

    def _detect_device(self) -> None:
        def job(progress, cancel):
            from engines.core.device import resolve_device

            return resolve_device(self.settings.device)

        def done(info) -> None:
            self.device_label, self.device_string = info.label, info.device
            self.device_widget.setText(f"Device: {info.label}")
            if info.note:
                self.notify("warning", f"Device: {info.note}; using {info.label}")
            self.device_resolved.emit(info.label)

        self.tasks.submit(job, title="Detecting compute device", owner="shell:device", on_result=done,
                          on_error=lambda msg, detail: self.notify("error", msg, detail))

    # -- workspaces ---------------------------------------------------------------------------------
    def manifest(self, workspace_id: str) -> WorkspaceManifest:
        for m in self.manifests:
            if m.id == workspace_id:
                return m
        raise KeyError(f"no workspace '{workspace_id}' (known: {', '.join(m.id for m in self.manifests)})")

    def view(self, workspace_id: str) -> WorkspaceView:
        """The workspace's view, importing its module on first use."""
        if workspace_id not in self.views:
            manifest = self.manifest(workspace_id)
            try:
                cls = manifest.load_view_class()
                view = cls(manifest, self.context)
            except Exception as exc:  # noqa: BLE001 - a broken workspace is reported, the shell stays up
                import traceback

                self.notify("error", f"The {manifest.title} workspace could not be opened; it shows what it "
                                     f"will hold instead (details in the log).", traceback.format_exc())
                from app.workspaces.base import PlaceholderView

                view = PlaceholderView(manifest, self.context)
            index = self.stack.indexOf(self.placeholders[workspace_id])
            self.stack.removeWidget(self.placeholders[workspace_id])
            self.placeholders[workspace_id].deleteLater()
            self.stack.insertWidget(index, view)
            self.views[workspace_id] = view
        return self.views[workspace_id]

    def current_workspace(self) -> str | None:
        row = self.switcher.currentRow()
        return self.manifests[row].id if 0 <= row < len(self.manifests) else None

    def switch_to(self, workspace_id: str) -> WorkspaceView:
        row = [m.id for m in self.manifests].index(self.manifest(workspace_id).id)
        if self.switcher.currentRow() != row:
            self.switcher.setCurrentRow(row)  # -> _on_switch_row
        return self.view(workspace_id)

    def _on_switch_row(self, row: int) -> None:
        if not 0 <= row < len(self.manifests):
            return
        m = self.manifests[row]
        view = self.view(m.id)
        self.stack.setCurrentWidget(view)
        self.settings.last_workspace = m.id
        self.setWindowTitle(f"CSI Workstation — {m.title}")
        self.workspace_changed.emit(m.id)

    def open_sample(self, workspace_id: str, sample_id: str | None = None) -> None:
        """Switch to ``workspace_id`` and open one of its samples (its default one when no id is given)."""
        self.switch_to(workspace_id)
        self.view(workspace_id).open_sample(sample_id)

    def show_batch(self):
        """The Batch dock (created on first use): one engine over a folder of inputs, on Dask."""
        if getattr(self, "batch_dock", None) is None:
            from app.batch_dock import BatchPanel

            def runnable() -> list[tuple[str, str]]:
                reg = self.registry()
                found = []
                for engine_id in reg.ids():
                    engine = reg.get(engine_id)
                    if engine.input_key is not None:
                        found.append((engine_id, engine.info().title))
                return found

            self.batch_panel = BatchPanel(self.tasks, runnable, lambda p: self.open_path(Path(p)),
                                          lambda level, msg, detail: self.notify(level, msg, detail))
            self.batch_dock = QDockWidget("Batch", self)
            self.batch_dock.setObjectName("batchDock")
            self.batch_dock.setWidget(self.batch_panel)
            self.addDockWidget(Qt.BottomDockWidgetArea, self.batch_dock)
            self.tabifyDockWidget(self.messages_dock, self.batch_dock)
        self.batch_dock.show()
        self.batch_dock.raise_()
        return self.batch_dock

    def open_current_sample(self) -> None:
        wid = self.current_workspace()
        if wid:
            self.view(wid).open_sample()

    # -- opening files ------------------------------------------------------------------------------
    def open_paths(self, paths: list[Path]) -> None:
        for path in paths:
            self.open_path(Path(path))

    def open_path(self, path: Path, workspace_id: str | None = None) -> None:
        """Classify ``path`` off the GUI thread, then hand it to the workspace that opens that kind."""
        path = Path(path).expanduser()

        def job(progress, cancel):
            from engines.core.filetypes import classify

            progress(None, f"identifying {path.name}")
            return classify(path)

        def route(kind: str) -> None:
            if kind == "missing":
                self.notify("error", f"{path}: no such file or folder")
                return
            if kind == "empty":
                self.notify("error", f"{path.name}: the file is empty")
                return
            target = workspace_id
            if target is None:
                manifest = workspace_for_kind(kind, self.manifests)
                if manifest is None:
                    self.notify("error", f"{path.name}: no workspace opens this kind of file. "
                                         f"The workstation opens DICOM, NIfTI/MHA/NRRD, slides, images, "
                                         f"audio and MIDI/MusicXML.", f"file kind: {kind}")
                    return
                target = manifest.id
            self.switch_to(target).open_path(path)

        self.tasks.submit(job, title=f"Identifying {path.name}", owner=f"shell:open:{path}", on_result=route,
                          on_error=lambda msg, detail: self.notify("error", msg, detail))

    def open_file_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open files")
        self.open_paths([Path(f) for f in files])

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder (DICOM series, audio collection…)")
        if folder:
            self.open_path(Path(folder))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        if not self.settings.recent_files:
            act = self.recent_menu.addAction("(none yet)")
            act.setEnabled(False)
            return
        for p in self.settings.recent_files:
            self.recent_menu.addAction(menu_label(p), lambda p=p: self.open_path(Path(p)))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear Recent", self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.recent_files = []
        self.settings.save()

    # -- drag and drop ------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)

    # -- about & close ------------------------------------------------------------------------------
    def about_text(self) -> str:
        rows = [("CSI Workstation", __version__), ("Python", platform.python_version()),
                ("Qt / PySide6", _pkg_version("PySide6-Essentials")),
                ("PyTorch", _pkg_version("torch")), ("pydicom", _pkg_version("pydicom")),
                ("SimpleITK", _pkg_version("SimpleITK")), ("OpenSlide (Python)", _pkg_version("openslide-python")),
                ("pyqtgraph", _pkg_version("pyqtgraph")), ("Compute device", self.device_label),
                ("Platform", f"{platform.system()} {platform.machine()}")]
        table = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;{v}</td></tr>" for k, v in rows)
        return (f"<h3>CSI Workstation</h3><p>AI review of CT/MRI, whole-slide images and music, offline.</p>"
                f"<table>{table}</table><p><i>Research use only. Not for diagnosis.</i></p>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About CSI Workstation", self.about_text())

    def closeEvent(self, event) -> None:
        for view in self.views.values():
            try:
                view.shutdown()
            except Exception:  # noqa: BLE001 - closing must always succeed
                log.exception("workspace shutdown failed")
        if not self.tasks.shutdown(timeout_ms=10_000):
            log.warning("some tasks did not stop within 10 s of cancellation")
        self.save_state()
        event.accept()


def create_app(argv: list[str] | None = None) -> QApplication:
    import gc

    # Full (generation-2) collections ran 55-425 ms each in the GUI thread while the first opens import pydicom,
    # SimpleITK, librosa and numba; collecting the oldest generation 100x less often halved those stalls
    # (benchmarks/gui_stall: CT open 171 -> 82 ms, recording open 226 -> 116 ms). Young objects are still
    # collected as often as before.
    gc.set_threshold(700, 10, 1000)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("CSI Workstation")
    app.setOrganizationName("CSI")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("csi-workstation")
    return app
