"""'Find versions in catalog…': look a recording up in a cover catalog made by `csi-workstation covers index`.

The dialog only collects the catalog and the recording, shows progress and the ranked matches; the search is the
engines' own two-stage query (engines.music_lab.catalog: hash-table lookup, then the cross-similarity CNN re-ranks
the nearest candidates), run in a worker through the shell's task adapter and cancellable there. A catalog that is
missing, not ours or damaged is one plain sentence in the dialog, in Messages and in the log. The last catalog used
is remembered in the music lab's own small settings file (typed and versioned, under the user config folder).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

log = logging.getLogger(__name__)
SETTINGS_NAME = "music-lab.json"
SETTINGS_VERSION = 1
OWNER = "music-lab:catalog"


# -- the remembered catalog ------------------------------------------------------------------------------------
def _settings_file() -> Path:
    from engines.core.paths import config_dir

    return config_dir() / SETTINGS_NAME


def last_catalog() -> str:
    """The catalog searched last ("" when none, or when the file is unreadable or holds something else: logged)."""
    path = _settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ""
    except (OSError, ValueError, RecursionError) as exc:
        log.warning("ignoring the music lab settings %s: %s", path, exc)
        return ""
    value = data.get("last_catalog") if isinstance(data, dict) else None
    if value is not None and not isinstance(value, str):
        log.warning("ignoring the music lab settings %s: 'last_catalog' is %r, not a path", path, value)
    return value if isinstance(value, str) else ""


def remember_catalog(catalog: str | Path) -> None:
    """Keep ``catalog`` as the one to offer next time (other keys of the file are kept)."""
    from engines.core.atomic import atomic_write_text

    path = _settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        data = {}
    version = data.get("version")
    data["version"] = version if isinstance(version, int) and version > SETTINGS_VERSION else SETTINGS_VERSION
    data["last_catalog"] = str(catalog)
    try:
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        log.warning("could not remember the catalog in %s: %s", path, exc)


# -- worker side -------------------------------------------------------------------------------------------------
def find_catalog(path: Path) -> Path:
    """The catalog file itself, or the one in a folder: the folder ``covers index --out`` wrote into, or its
    ``NAME.parts`` work folder (then ``NAME.npz`` beside it). Raises CatalogError with one sentence."""
    from engines.music_lab.catalog import CatalogError

    path = Path(path).expanduser()
    if not path.exists():
        raise CatalogError(f"{path}: there is no such catalog file or folder")
    if not path.is_dir():
        return path
    beside = path.with_name(path.name[:-len(".parts")] + ".npz") if path.name.endswith(".parts") else None
    found = [beside] if beside is not None and beside.is_file() else []
    found += sorted(p for p in path.glob("*.npz") if p.is_file())
    if not found:
        raise CatalogError(f"{path} holds no cover catalog: make one with 'csi-workstation covers index FOLDER "
                           f"--out CATALOG.npz'")
    return found[0]


def catalog_query_job(catalog: str | Path, song: str | Path, *, top: int = 10, rerank: int = 50):
    """A job for the task adapter: (the catalog file used, engines.music_lab.catalog.QueryResult)."""

    def job(progress, cancel):
        from engines.music_lab.catalog import CoverCatalog, query_catalog

        progress(0.01, "reading the catalog")
        path = find_catalog(Path(catalog))
        found = CoverCatalog.load(path)
        cancel.raise_if_cancelled()
        return path, query_catalog(found, Path(song), top=top, rerank=rerank, catalog_name=path.name,
                                   progress=progress, cancel=cancel)

    return job


def match_rows(result) -> list[tuple[str, str, str, str, str]]:
    """Table rows (rank, recording title, score, stage, path) for a QueryResult."""
    rows = []
    for rank, m in enumerate(result.matches, start=1):
        if m.probability is not None:
            score, stage = f"{m.probability:.0%} cover probability", "re-ranked"
        else:
            score, stage = f"distance {m.distance:.3f}", "hash"
        rows.append((str(rank), Path(m.path).name or m.path, score, stage, m.path))
    return rows


# -- the dialog ----------------------------------------------------------------------------------------------------
class CatalogSearchDialog(QDialog):
    """Pick a catalog and a recording, search in a worker (progress, cancel), list the best matches; a
    double-click on a match asks (``open_requested``) to open that recording in the music workspace."""

    result_ready = Signal(object)  # QueryResult
    failed = Signal(str)
    open_requested = Signal(str)

    def __init__(self, context, song: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.task = None
        self.result = None
        self.setWindowTitle("Find versions in catalog")
        self.resize(820, 480)
        self.catalog_edit = QLineEdit(last_catalog())
        self.catalog_edit.setPlaceholderText("a catalog made by 'csi-workstation covers index' (.npz, or its folder)")
        folder_button = QPushButton("Folder…")
        folder_button.clicked.connect(lambda: self._pick_catalog(folder=True))
        file_button = QPushButton("File…")
        file_button.clicked.connect(lambda: self._pick_catalog(folder=False))
        self.song_edit = QLineEdit(song)
        self.song_edit.setPlaceholderText("the recording whose versions to find")
        song_button = QPushButton("…")
        song_button.clicked.connect(self._pick_song)
        self.top_spin = QSpinBox()
        self.top_spin.setRange(1, 100)
        self.top_spin.setValue(10)
        self.top_spin.setToolTip("How many matches to list")
        self.rerank_spin = QSpinBox()
        self.rerank_spin.setRange(0, 100)
        self.rerank_spin.setValue(50)
        self.rerank_spin.setToolTip("How many of the nearest candidates the cross-similarity CNN re-scores: at "
                                    "least 10, then as many as fit in a second (0: the hash-table lookup only)")
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.message = QLabel("Choose a catalog and a recording, then Search.")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Rank", "Recording", "Score", "Stage"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        for col in (0, 2, 3):
            self.table.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.cellDoubleClicked.connect(self.open_row)
        rows = [(QLabel("Catalog:"), self.catalog_edit, folder_button, file_button),
                (QLabel("Recording:"), self.song_edit, song_button),
                (QLabel("Matches:"), self.top_spin, QLabel("re-rank:"), self.rerank_spin, self.search_button,
                 self.cancel_button, self.progress)]
        lay = QVBoxLayout(self)
        for widgets in rows:
            row = QHBoxLayout()
            for w in widgets:
                row.addWidget(w, 1 if w in (self.catalog_edit, self.song_edit, self.progress) else 0)
            lay.addLayout(row)
        lay.addWidget(self.message)
        lay.addWidget(self.table, 1)
        lay.addWidget(QLabel("Double-click a match to open it in the music workspace."))

    def _pick_catalog(self, folder: bool) -> None:
        start = self.catalog_edit.text().strip()
        if folder:
            path = QFileDialog.getExistingDirectory(self, "The catalog's folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "A cover catalog", start, "Cover catalogs (*.npz)")
        if path:
            self.catalog_edit.setText(path)

    def _pick_song(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A recording", self.song_edit.text().strip(),
                                              "Audio, MIDI, MusicXML (*.wav *.flac *.ogg *.mp3 *.mid *.midi "
                                              "*.musicxml *.xml)")
        if path:
            self.song_edit.setText(path)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #d04040;" if error else "")

    # -- the search ------------------------------------------------------------------------------------------
    def search(self) -> None:
        catalog, song = self.catalog_edit.text().strip(), self.song_edit.text().strip()
        if not catalog or not song:
            self._say("Choose a catalog (made by 'csi-workstation covers index') and a recording first.", True)
            return
        self.cancel()
        self.table.setRowCount(0)
        self.result = None
        self._reset_progress()
        self._say(f"Searching {Path(catalog).name} for versions of {Path(song).name}…")
        remember_catalog(catalog)
        job = catalog_query_job(catalog, song, top=self.top_spin.value(), rerank=self.rerank_spin.value())
        task = self.context.tasks.create(job, title="Searching the cover catalog", owner=OWNER)
        task.progress.connect(self._progress)
        task.result.connect(lambda found, t=task: self._found(t, found))
        task.error.connect(lambda msg, detail, t=task: self._failed(t, msg, detail))
        task.cancelled.connect(lambda t=task: self._cancelled(t))
        self.task = task
        self.search_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        task.start()

    def cancel(self) -> None:
        if self.task is not None and self.task.active:
            self.task.cancel()
            self._cancelled(self.task)

    def _progress(self, fraction: float, message: str) -> None:
        if fraction >= 0:
            self.progress.setValue(int(round(100 * fraction)))
        if message:
            self.progress.setFormat(f"%p% {message}")

    def _done(self, task) -> bool:
        """True when ``task`` is the search still wanted (a cancelled or replaced one is ignored)."""
        if task is not self.task or task.token.cancelled:
            return False
        self.task = None
        self.search_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        return True

    def _reset_progress(self) -> None:
        self.progress.setValue(0)
        self.progress.setFormat("%p%")

    def _cancelled(self, task) -> None:
        if task is self.task:
            self.task = None
            self.search_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            self._reset_progress()
            self._say("Search cancelled.")

    def _failed(self, task, message: str, detail: str) -> None:
        if not self._done(task):
            return
        log.warning("%s", message)
        self._reset_progress()
        self._say(message, True)
        self.context.notify("error", message, detail)
        self.failed.emit(message)

    def _found(self, task, found) -> None:
        if not self._done(task):
            return
        path, result = found
        self.result = result
        rows = match_rows(result)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row[:4]):
                item = QTableWidgetItem(text)
                item.setToolTip(row[4])
                item.setData(Qt.UserRole, row[4])
                self.table.setItem(r, c, item)
        self.progress.setValue(100)
        seconds = sum(result.seconds.values())
        summary = (f"{len(rows)} matches for {Path(result.query).name} in {path.name} ({result.size} recordings; "
                   f"{result.scored} looked at through the hash tables, {result.reranked} re-ranked by the CNN; "
                   f"{seconds:.2f} s).")
        if not rows:
            summary = (f"No recording in {path.name} shares a hash bucket with {Path(result.query).name} "
                       f"({result.size} recordings).")
        self._say(" ".join([summary] + list(result.notes)))
        self.result_ready.emit(result)

    def open_row(self, row: int, _col: int = 0) -> None:
        item = self.table.item(row, 1)
        path = item.data(Qt.UserRole) if item is not None else ""
        if not path:
            return
        if not Path(path).is_file():
            self._say(f"{path} is no longer where it was indexed.", True)
            self.context.notify("warning", f"{path} is no longer where it was indexed.", "")
            return
        self.open_requested.emit(path)

    def done(self, code: int) -> None:  # closing the dialog stops its search
        self.cancel()
        super().done(code)
