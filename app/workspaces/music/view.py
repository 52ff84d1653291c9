"""The music workspace: waveform, constant-Q spectrum, chromagram and an editable, audible chord lane.

The view draws and routes; everything it computes (loading, features, chord recognition, synthesis,
exports) runs in engines/music through context.tasks, off the GUI thread.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QMenu,
    QPushButton, QSpinBox, QToolButton, QVBoxLayout, QWidget,
)

from app.workspaces.base import WorkspaceView
from app.workspaces.music.lanes import ChordLaneItem
from engines.music.audio import FMIN_MIDI, AudioClip, Features, short_name
from engines.music.chords import PITCH_NAMES, ChordTrack, parse_label

log = logging.getLogger(__name__)
SOURCES = (("Recording", "audio"), ("Chords", "chords"), ("Recording + chords", "mix"))
EXPORTS = (("MIREX chord labels (.lab)", ".lab"), ("MIDI: chords + melody (.mid)", ".mid"),
           ("MusicXML lead sheet (.musicxml)", ".musicxml"), ("WAV of the synthesized chords (.wav)", ".wav"))


def waveform_envelope(samples: np.ndarray, sr: int, points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max pairs per bin for drawing a long waveform quickly (x in seconds)."""
    n = len(samples)
    if n == 0:
        return np.zeros(2), np.zeros(2)
    bins = max(1, min(points, n))
    edges = np.linspace(0, n, bins + 1).astype(int)
    lo = np.minimum.reduceat(samples, edges[:-1])
    hi = np.maximum.reduceat(samples, edges[:-1])
    x = np.repeat(edges[:-1] / sr, 2)
    y = np.empty(2 * bins, np.float32)
    y[0::2], y[1::2] = lo, hi
    return x, y


AUTOSAVE_KIND = "music-chords"


def chord_autosave_file(clip: AudioClip) -> Path:
    """Where the chord edits of this recording are autosaved (keyed by its content, so a renamed copy keeps them)."""
    from engines.core.autosave import autosave_path

    return autosave_path(AUTOSAVE_KIND, clip.source, content_key=clip.content_hash)


def read_chord_autosave(clip: AudioClip, name: str) -> dict:
    """Worker: the recording's saved chord edits, validated; a bad file is set aside with a sentence for the user.

    Returns {"file", "track", "saved", "notice"}. Edits saved by earlier versions (music-edits/) are read once.
    """
    from engines.core.autosave import load_autosave
    from engines.music.chords import CHORD_AUTOSAVE_SCHEMA, chord_track_from_autosave

    target = chord_autosave_file(clip)
    out = {"file": target, "track": None, "saved": None, "notice": None}
    found = load_autosave(target, schema=CHORD_AUTOSAVE_SCHEMA, validate=chord_track_from_autosave, source_name=name)
    if found.data is None and found.notice is None:
        from engines.core.paths import data_dir

        legacy = data_dir() / "music-edits" / f"{clip.content_hash}.json"
        if legacy.is_file():
            try:
                found = type(found)(chord_track_from_autosave(json.loads(legacy.read_text(encoding="utf-8"))),
                                    None, None)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("ignoring the old-style chord autosave %s: %s", legacy, exc)
    out["notice"] = found.notice
    if found.data is not None:
        out["track"], out["saved"] = found.data
    return out


def load_job(path: Path):
    """Worker: audio + features + waveform envelope + tempo + a reference .lab beside the file."""
    from engines.music.audio import compute_features, load_audio

    def job(progress, cancel):
        clip = load_audio(path, progress=progress, cancel=cancel)
        saved = read_chord_autosave(clip, path.name) if clip.content_hash else None
        feats = compute_features(clip, progress=progress, cancel=cancel)
        cancel.raise_if_cancelled()
        progress(0.9, "drawing")
        env = waveform_envelope(clip.samples, clip.sr)
        reference = None
        for cand in (path.with_suffix(".lab"), path.with_name(path.stem + ".reference.lab")):
            if cand.exists():
                try:
                    reference = ChordTrack.read_lab(cand, clip.duration)
                    reference.source = cand.name
                except Exception as exc:  # noqa: BLE001 - a bad reference is reported, not fatal
                    log.warning("unreadable reference %s: %s", cand, exc)
                break
        if reference is None and clip.midi is not None:  # a score: its own chords are the reference
            from engines.music.chorales import score_reference

            progress(0.95, "reading the score's chords")
            segs = score_reference(path, clip.midi)
            if segs:
                reference = ChordTrack(segs, clip.duration, source="the score (music21 chordify)")
        tempo = None
        if clip.midi is not None:
            try:
                tempo = float(clip.midi.get_tempo_changes()[1][0])
            except Exception:  # noqa: BLE001
                tempo = None
        return {"clip": clip, "features": feats, "envelope": env, "reference": reference, "tempo": tempo,
                "autosave": saved}

    return job


class ChordRenameDialog(QDialog):
    """Asks for a chord name; a name that cannot be read keeps the dialog open with the reason under the field.

    ``apply(text)`` performs the rename and returns None, or the sentence that explains the refusal.
    """

    def __init__(self, current: str, apply, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rename chord")
        self._apply = apply
        self.edit = QLineEdit(current)
        self.edit.selectAll()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #d04040;")
        self.message.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.edit.textEdited.connect(lambda _: self.message.setVisible(False))
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Chord (e.g. Am, G7, C/E, F#:min7, N):"))
        lay.addWidget(self.edit)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)

    def accept(self) -> None:
        text = self.edit.text().strip()
        problem = "Type a chord name, or N for no chord." if not text else self._apply(text)
        if problem:
            self.message.setText(problem)
            self.message.setVisible(True)
            self.edit.setFocus()
            return
        super().accept()


class MusicWorkspace(WorkspaceView):
    """Open a recording (or MIDI/MusicXML), see its spectrum and chords, hear them, fix them, export them."""

    autosave_failed = Signal(str)

    def __init__(self, manifest, context, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        from engines.music.playback import AudioPlayer

        self.path: Path | None = None
        self.clip: AudioClip | None = None
        self.features: Features | None = None
        self.track: ChordTrack | None = None
        self.reference: ChordTrack | None = None
        self.tempo: float | None = None
        self.selected: int | None = None
        self.player = AudioPlayer()
        self._chord_audio: np.ndarray | None = None
        self._chord_audio_key: tuple | None = None
        self.playhead_s = 0.0
        self.last_scores: dict[str, float] | None = None
        self.rename_dialog: ChordRenameDialog | None = None
        self._autosave_file: Path | None = None
        from engines.core.autosave import AutosaveWriter

        # written on its own thread; a failed write comes back to the GUI thread through a queued signal
        self._autosaver = AutosaveWriter(on_error=self.autosave_failed.emit)
        self.autosave_failed.connect(lambda msg: self.context.notify("warning", msg, ""))
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._tick)

    # -- layout --------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.title = QLabel("<b>Music</b> - open a recording (WAV, FLAC, OGG, MP3) or a MIDI/MusicXML file, or "
                            "the bundled chorale.")
        self.title.setTextFormat(Qt.RichText)
        self.title.setWordWrap(True)  # a long file name wraps instead of widening the window
        self.key_label = QLabel("Key: -")
        self.key_label.setStyleSheet("font-size: 15px; font-weight: bold; padding: 0 12px;")
        self.key_label.setToolTip("Krumhansl-Schmuckler key estimate over the whole recording (transposed with "
                                  "the chord track)")
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.key_label)

        self.engine_box = QComboBox()
        self.engine_box.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.engine_box.setMinimumWidth(190)
        self.engine_box.setToolTip("Chord recognizer: BTC (network trained on rendered chorales) or the "
                                   "classical template + HMM baseline")
        self.recognize_button = QPushButton("Recognize")
        self.recognize_button.clicked.connect(lambda: self.recognize(force=True))
        self.play_button = QPushButton("Play")
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.source_box = QComboBox()
        for text, value in SOURCES:
            self.source_box.addItem(text, value)
        self.source_box.setCurrentIndex(2)
        self.source_box.setToolTip("What to play: the recording, the chord track through the built-in "
                                   "synthesizer, or both")
        self.source_box.currentIndexChanged.connect(self._source_changed)
        self.voice_box = QComboBox()
        self.voice_box.addItem("Piano", "piano")
        self.voice_box.addItem("Pad", "pad")
        self.voice_box.currentIndexChanged.connect(self._source_changed)
        self.loop_box = QCheckBox("Loop chord")
        self.loop_box.setToolTip("Loop the selected chord while playing")
        self.loop_box.toggled.connect(self._update_loop)
        self.transpose_spin = QSpinBox()
        self.transpose_spin.setRange(-11, 11)
        self.transpose_spin.setPrefix("Transpose ")
        self.transpose_spin.setSuffix(" st")
        self.transpose_spin.setToolTip("Transpose the chord track (capo): labels, key, playback and exports; "
                                       "slash basses move with it")
        self.transpose_spin.valueChanged.connect(self.set_transpose)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(self.redo)
        self.rename_button = QPushButton("Rename...")
        self.rename_button.setToolTip("Rename the selected chord (F2 or double-click), e.g. Am, G7, C/E, F#:min7")
        self.rename_button.clicked.connect(self._ask_rename)
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("Split the selected chord at the playhead (S)")
        self.split_button.clicked.connect(self.split_at_playhead)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Merge the selected chord with the next one (M)")
        self.merge_button.clicked.connect(self.merge_selected)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.export_button)
        for text, suffix in EXPORTS:
            menu.addAction(text, lambda s=suffix: self._ask_export(s))
        self.export_button.setMenu(menu)

        bar = QHBoxLayout()
        for w in (self.engine_box, self.recognize_button, self.play_button, self.source_box, self.voice_box,
                  self.loop_box, self.transpose_spin):
            bar.addWidget(w)
        bar.addStretch(1)
        edit_bar = QHBoxLayout()
        edit_bar.addWidget(QLabel("Chord track:"))
        for w in (self.undo_button, self.redo_button, self.rename_button, self.split_button, self.merge_button,
                  self.export_button):
            edit_bar.addWidget(w)
        edit_bar.addStretch(1)
        self.melody_button = QPushButton("Melody over these chords…")
        self.melody_button.setToolTip("Send the chord track to the Lab's melody generator")
        self.melody_button.clicked.connect(self.send_chords_to_lab)
        edit_bar.addWidget(self.melody_button)

        pg.setConfigOptions(antialias=False)
        # the whole recording at a glance; the shaded window is what the lanes below show (drag it to scroll)
        self.overview = pg.PlotWidget()
        self.overview.setBackground((24, 24, 28))
        self.overview.setFixedHeight(56)
        self.overview.setMouseEnabled(x=False, y=False)
        self.overview.setMenuEnabled(False)
        self.overview.hideButtons()
        self.overview.hideAxis("bottom")
        self.overview.getAxis("left").setWidth(62)
        self.overview.getAxis("left").setStyle(showValues=False)
        self.overview.setLabel("left", "Overview")
        self.overview_curve = self.overview.plot(pen=pg.mkPen((120, 190, 255), width=1))
        self.overview_region = pg.LinearRegionItem((0, 1), brush=pg.mkBrush(255, 215, 0, 50),
                                                   pen=pg.mkPen((255, 215, 0), width=1))
        self.overview_region.setToolTip("The part shown below: drag it to scroll, drag an edge to zoom")
        self.overview_region.setZValue(10)
        self.overview.addItem(self.overview_region)
        self.overview_region.sigRegionChanged.connect(self._overview_dragged)
        self.overview.setVisible(False)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground((24, 24, 28))
        self.wave_plot = self.plots.addPlot(row=0, col=0)
        self.cqt_plot = self.plots.addPlot(row=1, col=0)
        self.chroma_plot = self.plots.addPlot(row=2, col=0)
        self.chord_plot = self.plots.addPlot(row=3, col=0)
        self.ref_plot = self.plots.addPlot(row=4, col=0)
        layout = self.plots.ci.layout
        for row, stretch in enumerate((2, 5, 3, 2, 2)):
            layout.setRowStretchFactor(row, stretch)
        self.wave_curve = self.wave_plot.plot(pen=pg.mkPen((120, 190, 255), width=1))
        self.cqt_image = pg.ImageItem()
        self.cqt_plot.addItem(self.cqt_image)
        self.chroma_image = pg.ImageItem()
        self.chroma_plot.addItem(self.chroma_image)
        self.lane = ChordLaneItem(self._display_symbol)
        self.chord_plot.addItem(self.lane)
        self.ref_lane = ChordLaneItem()
        self.ref_plot.addItem(self.ref_lane)
        cmap = pg.colormap.get("viridis")
        self.cqt_image.setColorMap(cmap)
        self.chroma_image.setColorMap(pg.colormap.get("inferno"))
        for plot, name in ((self.wave_plot, "Waveform"), (self.cqt_plot, "Constant-Q (log)"),
                           (self.chroma_plot, "Chroma"), (self.chord_plot, "Chords"), (self.ref_plot, "Reference")):
            plot.setMouseEnabled(x=True, y=False)
            plot.setMenuEnabled(False)
            plot.getAxis("left").setWidth(62)
            plot.setLabel("left", name)
            plot.hideButtons()
            if plot is not self.wave_plot:
                plot.setXLink(self.wave_plot)
            if plot is not self.ref_plot:
                plot.getAxis("bottom").setStyle(showValues=False)
        self.ref_plot.setLabel("bottom", "time (s)")
        self.chroma_plot.getAxis("left").setTicks([[(i + 0.5, PITCH_NAMES[i]) for i in (0, 4, 7, 11)],
                                                   [(i + 0.5, "") for i in range(12)]])
        self.wave_plot.getAxis("left").setStyle(showValues=False)
        self.wave_plot.getAxis("left").enableAutoSIPrefix(False)
        self.cqt_plot.getAxis("left").setTicks([[(m + 0.5, f"C{m // 12 - 1}") for m in range(24, 97, 12)]])
        for lane_plot in (self.chord_plot, self.ref_plot):
            lane_plot.setYRange(0, 1, padding=0)
            lane_plot.getAxis("left").setTicks([[]])
        self.wave_plot.setYRange(-1, 1, padding=0.02)
        self.ref_plot.setVisible(False)
        self.plots.ci.layout.setRowStretchFactor(4, 0)
        self.plots.ci.layout.setRowMaximumHeight(4, 0)
        self.playheads = []
        for plot in (self.wave_plot, self.cqt_plot, self.chroma_plot, self.chord_plot, self.ref_plot):
            line = pg.InfiniteLine(0, angle=90, pen=pg.mkPen((255, 80, 80), width=2))
            line.setZValue(50)
            plot.addItem(line)
            self.playheads.append(line)
        self.boundary_lines: list[pg.InfiniteLine] = []
        self.lane.clicked.connect(self._lane_clicked)
        self.lane.double_clicked.connect(self._lane_double_clicked)
        self.plots.scene().sigMouseClicked.connect(self._scene_clicked)
        self.wave_plot.sigXRangeChanged.connect(lambda *_: (self.lane.update_label_visibility(),
                                                            self.ref_lane.update_label_visibility(),
                                                            self._sync_overview()))

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #888;")
        self.open_sample_button = QPushButton("Open the bundled chorale (BWV 153.1)")
        self.open_sample_button.clicked.connect(self.open_sample)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.open_sample_button)

        from PySide6.QtWidgets import QTabWidget

        from app.workspaces.music.lab import MusicLabPanel

        self.analysis = QWidget()  # the recording, its chords and playback
        root = QVBoxLayout(self.analysis)
        root.addLayout(header)
        root.addLayout(bar)
        root.addLayout(edit_bar)
        root.addWidget(self.overview)
        root.addWidget(self.plots, 1)
        root.addLayout(bottom)
        self.lab = MusicLabPanel(self.context)  # harmonizer, melody generator, covers (issue 7)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.analysis, "Chords")
        self.tabs.addTab(self.lab, "Lab: harmonize · generate · covers")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.tabs)

        for keys, fn in (("Space", self.toggle_play), (QKeySequence.Undo, self.undo), (QKeySequence.Redo, self.redo),
                         ("Ctrl+Y", self.redo), ("F2", self._ask_rename), ("S", self.split_at_playhead),
                         ("M", self.merge_selected), ("Left", lambda: self.select_relative(-1)),
                         ("Right", lambda: self.select_relative(1))):
            sc = QShortcut(QKeySequence(keys), self.analysis)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        self._update_controls()

    def _fill_engines(self) -> None:
        if self.engine_box.count():
            return
        try:
            registry = self.context.registry()
            engines = [registry.get(i) for i in registry.ids()]
        except Exception as exc:  # noqa: BLE001 - no engines: the view still shows audio
            self.context.notify("error", f"Music engines are unavailable: {exc}", "")
            return
        best = None
        for engine in engines:
            info = engine.info()
            if info.workspace != "music" or info.task != "chord recognition":
                continue
            status = engine.weights_status()
            usable = status in ("ok", "none needed")
            short = info.extra.get("short_title", info.title)
            self.engine_box.addItem(short + ("" if usable else " (weights missing)"), info.id)
            self.engine_box.setItemData(self.engine_box.count() - 1, info.title, Qt.ToolTipRole)
            # default: BTC 25 classes (best majmin on held-out chorales), else any network, else templates
            rank = 2 if info.id == "chord-recognition" else 1 if info.weights else 0
            if usable and (best is None or rank > best[1]):
                best = (self.engine_box.count() - 1, rank)
        if best is not None:
            self.engine_box.setCurrentIndex(best[0])

    # -- opening -------------------------------------------------------------------------------------
    def open_path(self, path: Path) -> None:
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
            if not files:
                self.context.notify("error", f"{path.name}: no audio files in this folder", "")
                return
            path = files[0]
            self.context.notify("info", f"Opened the first audio file of the folder: {path.name}", "")
        self._fill_engines()
        self.status.setText(f"Reading {path.name}...")
        self.context.tasks.submit(load_job(path), title=f"Reading {short_name(path.name)}",
                                  owner=f"{self.manifest.id}:load",
                                  on_result=lambda data: self._loaded(path, data),
                                  on_error=self._error)

    def _error(self, message: str, detail: str) -> None:
        self.status.setText(message)
        self.context.notify("error", message, detail)

    def _loaded(self, path: Path, data: dict) -> None:
        self.player.pause()
        self._timer.stop()
        self.path, self.clip, self.features = path, data["clip"], data["features"]
        self.reference, self.tempo = data["reference"], data["tempo"]
        self.track, self.selected, self._chord_audio = None, None, None
        self.last_scores = None
        self._show_transpose(0)  # transpose is per recording: restored with its autosave, never carried over
        clip, feats = self.clip, self.features
        self.wave_curve.setData(*data["envelope"])
        peak = float(np.abs(clip.samples).max()) if len(clip.samples) else 0.0
        self.wave_plot.setYRange(-max(peak, 1e-3), max(peak, 1e-3), padding=0.05)
        dur = max(clip.duration, 1e-3)
        n = max(feats.n_frames, 1)
        span = n * feats.frame_s
        if feats.n_frames:
            cqt = feats.logcqt
            lo, hi = np.percentile(cqt, 5), np.percentile(cqt, 99.7)
            self.cqt_image.setImage(cqt, levels=(lo, max(hi, lo + 1e-3)), autoLevels=False)
            self.cqt_image.setRect(0, FMIN_MIDI, span, cqt.shape[1] / 2)
            chroma = feats.chroma / np.maximum(feats.chroma.max(axis=1, keepdims=True), 1e-9)
            self.chroma_image.setImage(chroma, levels=(0, 1), autoLevels=False)
            self.chroma_image.setRect(0, 0, span, 12)
        self.cqt_plot.setYRange(FMIN_MIDI, FMIN_MIDI + 72, padding=0)
        self.chroma_plot.setYRange(0, 12, padding=0)
        # open on the first 20 s so chord names are readable; the wheel zooms out to the whole recording
        self.wave_plot.setLimits(xMin=0, xMax=dur, minXRange=0.5)
        self.overview_curve.setData(*data["envelope"])
        self.overview.setXRange(0, dur, padding=0)
        self.overview.setYRange(-max(peak, 1e-3), max(peak, 1e-3), padding=0.05)
        self.overview_region.setBounds((0, dur))
        self.overview.setVisible(True)
        self.wave_plot.setXRange(0, min(dur, 20.0) if dur > 30.0 else dur, padding=0)
        self._sync_overview()
        self.plots.ci.layout.setRowStretchFactor(4, 2 if self.reference is not None else 0)
        self.plots.ci.layout.setRowMaximumHeight(4, 1e6 if self.reference is not None else 0)
        if self.reference is not None:
            self.ref_plot.setVisible(True)
            self.ref_plot.setLabel("left", "Reference")
            self.ref_lane.set_segments(self.reference.segments)
        else:
            self.ref_plot.setVisible(False)
            self.ref_lane.set_segments([])
        self.lane.set_segments([])
        self.seek(0.0)
        notes = f" ({'; '.join(clip.notes)})" if clip.notes else ""
        self.title.setText(f"<b>{path.name}</b> - {clip.duration:.1f} s, {clip.original_sr or clip.sr} Hz, "
                           f"{clip.original_channels} ch{notes}")
        self.status.setText("Audio ready. Recognizing chords...")
        self.context.add_recent(path)
        self.opened.emit(str(path))
        saved = data.get("autosave") or {}
        self._autosave_file = saved.get("file")
        if saved.get("notice"):
            self.context.notify("warning", saved["notice"], "")
        if not self._restore_autosave(saved.get("track"), saved.get("saved")):
            self.recognize()

    # -- chords --------------------------------------------------------------------------------------
    def recognize(self, force: bool = False) -> None:
        if self.clip is None:
            self.context.notify("info", "Open a recording first.", "")
            return
        engine_id = self.engine_box.currentData()
        if not engine_id:
            self.context.notify("error", "No chord recognizer is available.", "")
            return
        engine = self.context.registry().get(engine_id)
        status = engine.weights_status()
        if status not in ("ok", "none needed"):
            self.context.notify("warning", f"{engine.info().title}: {status}. Using the template baseline.", "")
            engine = self.context.registry().get("chord-templates")
        self.status.setText(f"Recognizing chords with {engine.info().title}...")
        self.context.tasks.submit_engine(engine, {"clip": self.clip, "features": self.features},
                                         title=f"Chords: {engine.id}", owner=f"{self.manifest.id}:chords",
                                         device=self.context.device(), on_result=self._recognized,
                                         on_error=self._error)

    def _recognized(self, track: ChordTrack) -> None:
        track.set_transpose(self.transpose_spin.value())
        self.set_track(track)
        from app.widgets.check_banner import banner_before, show_result_checks

        if getattr(self, "check_banner", None) is None:
            self.check_banner = banner_before(self.status)
        show_result_checks(self.check_banner, "Chord recognition", track, self.context.notify)
        if self._autosave_file is not None:  # a fresh recognition replaces the edits; keep them one step back
            saved, writer = self._autosave_file, self._autosaver

            def keep_previous(progress, cancel):
                writer.flush()
                if saved.exists():
                    saved.replace(saved.with_suffix(".previous.json"))

            self.context.tasks.submit(keep_previous, title="Keeping the previous chord edits",
                                      owner=f"{self.manifest.id}:autosave", on_error=self._error)
        self.status.setText(f"{len(track.segments)} chords from {track.source}. Click a chord to select and "
                            f"seek; double-click or F2 renames; S splits at the playhead; M merges; drag the "
                            f"yellow lines to move a boundary; Ctrl+Z undoes.")

    def set_track(self, track: ChordTrack) -> None:
        self.track = track
        self.selected = None
        self._refresh_track()

    def _display_symbol(self, seg) -> str:
        return self.track.display_symbol(seg) if self.track is not None else parse_label(seg.label).symbol()

    def _refresh_track(self) -> None:
        track = self.track
        if track is None:
            return
        if self.selected is not None and not 0 <= self.selected < len(track.segments):
            self.selected = None
        self.lane.set_segments(track.segments, self.selected)
        self._update_boundaries()
        self._update_key()
        self._update_controls()
        self._update_loop()
        self._chord_audio = None
        self._score_against_reference()
        self._show_selection_info()  # the info line shows the chord as it is now, not as it was

    def _update_key(self) -> None:
        track = self.track
        if track is None or not track.key:
            self.key_label.setText("Key: -")
            return
        shown = track.display_key()
        extra = f" (transposed {track.transpose:+d})" if track.transpose else ""
        self.key_label.setText(f"Key: {shown}{extra}")
        self.key_label.setToolTip(f"Krumhansl-Schmuckler estimate, correlation {track.key_confidence:.2f}")

    def _score_against_reference(self) -> None:
        if self.reference is None or self.track is None or not self.reference.segments:
            return
        from engines.music.evaluate import wcsr

        try:
            scores, _ = wcsr(self.reference.segments, self.track.segments)
        except Exception as exc:  # noqa: BLE001 - a reference mir_eval cannot read is reported, not fatal
            self.ref_plot.setLabel("left", "Reference")
            log.warning("cannot score against the reference: %s", exc)
            return
        self.last_scores = scores
        self.ref_plot.setLabel("left", f"Ref. {scores['majmin'] * 100:.0f}%")
        self.ref_plot.getAxis("left").setToolTip(
            f"Reference {self.reference.source}: agreement (mir_eval WCSR) root {scores['root']:.2f}, "
            f"majmin {scores['majmin']:.2f}, sevenths {scores['sevenths']:.2f}")

    def _sync_overview(self) -> None:
        """Move the overview's window to what the lanes show (without echoing back into the lanes)."""
        (x0, x1), _ = self.wave_plot.getViewBox().viewRange()
        self.overview_region.blockSignals(True)
        self.overview_region.setRegion((x0, x1))
        self.overview_region.blockSignals(False)

    def _overview_dragged(self) -> None:
        x0, x1 = self.overview_region.getRegion()
        if x1 - x0 >= 0.5:
            self.wave_plot.setXRange(x0, x1, padding=0)

    def _update_boundaries(self) -> None:
        for line in self.boundary_lines:
            self.chord_plot.removeItem(line)
        self.boundary_lines = []
        if self.track is None or self.selected is None:
            return
        segs = self.track.segments
        for index in (self.selected - 1, self.selected):
            if 0 <= index < len(segs) - 1:
                line = pg.InfiniteLine(segs[index].end, angle=90, movable=True,
                                       pen=pg.mkPen((255, 215, 0), width=2),
                                       hoverPen=pg.mkPen((255, 255, 255), width=3))
                line.setToolTip("Drag to move the chord boundary")
                line.sigPositionChangeFinished.connect(lambda ln, i=index: self.move_boundary(i, ln.value()))
                self.chord_plot.addItem(line)
                self.boundary_lines.append(line)

    def _update_controls(self) -> None:
        has_track = self.track is not None
        sel = has_track and self.selected is not None
        self.undo_button.setEnabled(has_track and self.track.can_undo)
        self.redo_button.setEnabled(has_track and self.track.can_redo)
        self.rename_button.setEnabled(bool(sel))
        self.split_button.setEnabled(bool(sel))
        self.merge_button.setEnabled(bool(sel) and self.selected < len(self.track.segments) - 1)
        self.export_button.setEnabled(has_track)
        self.recognize_button.setEnabled(self.clip is not None)
        self.play_button.setEnabled(self.clip is not None)

    # -- selection and seeking -----------------------------------------------------------------------
    def select(self, index: int | None) -> None:
        if self.track is None:
            return
        self.selected = index if index is not None and 0 <= index < len(self.track.segments) else None
        self.lane.set_segments(self.track.segments, self.selected)
        self._update_boundaries()
        self._update_controls()
        self._update_loop()
        self._show_selection_info()

    def _show_selection_info(self) -> None:
        if self.track is not None and self.selected is not None:
            self.status.setText(self.track.describe(self.selected))

    def select_relative(self, step: int) -> None:
        if self.track is None or not self.track.segments:
            return
        index = 0 if self.selected is None else self.selected + step
        index = max(0, min(len(self.track.segments) - 1, index))
        self.select(index)
        self.seek(self.track.segments[index].start)

    def _lane_clicked(self, t: float, index: int) -> None:
        self.select(index if index >= 0 else None)
        self.seek(t)

    def _lane_double_clicked(self, t: float, index: int) -> None:
        if index >= 0:
            self.select(index)
            self._ask_rename()

    def _scene_clicked(self, ev) -> None:
        if ev.button() != Qt.LeftButton or self.clip is None:
            return
        pos = ev.scenePos()
        for plot in (self.wave_plot, self.cqt_plot, self.chroma_plot):
            vb = plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                self.seek(float(vb.mapSceneToView(pos).x()))
                return

    def seek(self, t: float) -> None:
        dur = self.clip.duration if self.clip is not None else 0.0
        self.playhead_s = float(np.clip(t, 0.0, dur))
        self.player.seek(self.playhead_s)
        for line in self.playheads:
            line.setValue(self.playhead_s)

    # -- edits ---------------------------------------------------------------------------------------
    def _edited(self) -> None:
        self._refresh_track()
        self._autosave()

    def _ask_rename(self) -> None:
        if self.track is None or self.selected is None:
            return
        current = self.track.display_symbol(self.track.segments[self.selected])
        self.rename_dialog = ChordRenameDialog(current, self._rename_problem, self)
        self.rename_dialog.open()  # window-modal, without a nested event loop

    def _rename_problem(self, label: str) -> str | None:
        """Rename the selected chord to ``label``; None when done, else the sentence saying why not."""
        if self.track is None or self.selected is None:
            return "Select a chord first."
        try:
            self.track.rename(self.selected, label)
        except ValueError as exc:
            return (f"'{label}' is not a chord the workstation reads ({exc}). Examples: Am, G7, Bbmaj7, C/E, "
                    f"F#:min7, N.")
        self._edited()
        return None

    def rename_selected(self, label: str) -> bool:
        problem = self._rename_problem(label)
        if problem is not None:
            self.context.notify("error", problem, "")
        return problem is None

    def split_at_playhead(self) -> None:
        if self.track is None:
            return
        index = self.track.index_at(self.playhead_s)
        if index is None:
            return
        try:
            self.track.split(index, self.playhead_s)
        except ValueError as exc:
            self.context.notify("info", f"Cannot split here: {exc}.", "")
            return
        self.selected = index
        self._edited()

    def merge_selected(self) -> None:
        if self.track is None or self.selected is None:
            return
        try:
            self.track.merge_next(self.selected)
        except ValueError as exc:
            self.context.notify("info", f"Cannot merge: {exc}.", "")
            return
        self._edited()

    def move_boundary(self, index: int, t: float) -> None:
        if self.track is None:
            return
        try:
            self.track.move_boundary(index, t)
        except ValueError as exc:
            self.context.notify("info", f"Cannot move the boundary: {exc}.", "")
            return
        self._edited()

    def undo(self) -> None:
        if self.track is not None and self.track.undo():
            self._edited()

    def redo(self) -> None:
        if self.track is not None and self.track.redo():
            self._edited()

    def set_transpose(self, semitones: int) -> None:
        if self.transpose_spin.value() != semitones:
            self.transpose_spin.setValue(semitones)  # re-enters through valueChanged
            return
        if self.track is None:
            return
        self.track.set_transpose(semitones)
        self.track.source = "edited"  # the capo setting is the user's choice: autosaved and restored
        self._edited()

    def _show_transpose(self, semitones: int) -> None:
        """Show ``semitones`` in the spin box without treating it as the user's edit."""
        self.transpose_spin.blockSignals(True)
        self.transpose_spin.setValue(int(semitones))
        self.transpose_spin.blockSignals(False)

    # -- autosave ------------------------------------------------------------------------------------
    def _autosave(self) -> None:
        """Queue the chord track for the background writer (no disk I/O here)."""
        if self.track is None or self.path is None or self._autosave_file is None:
            return
        from engines.music.chords import CHORD_AUTOSAVE_SCHEMA, chord_autosave_payload

        self._autosaver.save(self._autosave_file, chord_autosave_payload(self.track, str(self.path)),
                             schema=CHORD_AUTOSAVE_SCHEMA)

    def _restore_autosave(self, track: ChordTrack | None, saved: str | None) -> bool:
        if track is None or track.source != "edited":
            return False
        self._show_transpose(track.transpose)
        self.set_track(track)
        self.status.setText(f"Restored your chord track for this recording (saved {saved}). "
                            f"'Recognize' starts again from the engine.")
        self.context.notify("info", f"{self.path.name}: restored your chord edits from {saved}.", "")
        return True

    # -- playback ------------------------------------------------------------------------------------
    def _source_changed(self) -> None:
        if self.player.playing:
            self.player.pause()
            self.toggle_play()

    def _update_loop(self) -> None:
        if self.loop_box.isChecked() and self.track is not None and self.selected is not None:
            seg = self.track.segments[self.selected]
            self.player.set_loop(seg.start, seg.end)
        else:
            self.player.set_loop(None)

    def toggle_play(self) -> None:
        if self.clip is None:
            return
        if self.player.playing:
            self.player.pause()
            self._timer.stop()
            self.play_button.setText("Play")
            return
        from engines.music.playback import playback_availability

        ok, reason = playback_availability()
        if not ok:
            self.status.setText(f"{reason} Everything else works.")
            self.context.notify("warning", reason, "")
            return
        mode = self.source_box.currentData()
        if mode != "audio" and self.track is not None:
            key = (id(self.track), len(self.track._undo), self.track.transpose, self.voice_box.currentData())
            if self._chord_audio is None or self._chord_audio_key != key:
                self._render_chords_then_play(key)
                return
        self._start_playback()

    def _render_chords_then_play(self, key: tuple) -> None:
        from engines.music.synth import render_chords

        segments = [type(s)(s.start, s.end, s.label, s.confidence) for s in self.track.segments]
        duration, sr, voice, transpose = self.clip.duration, self.clip.sr, self.voice_box.currentData(), \
            self.track.transpose

        def done(audio) -> None:
            self._chord_audio, self._chord_audio_key = audio, key
            self._start_playback()

        self.context.tasks.submit(lambda progress, cancel: render_chords(segments, duration, sr, voice, transpose),
                                  title="Synthesizing chords", owner=f"{self.manifest.id}:synth",
                                  on_result=done, on_error=self._error)

    def playback_buffer(self) -> np.ndarray:
        from engines.music.playback import mix

        return mix(self.clip.samples, self._chord_audio, self.source_box.currentData())

    def _start_playback(self) -> None:
        self.player.set_buffer(self.playback_buffer(), self.clip.sr)
        self.player.seek(self.playhead_s)
        self._update_loop()
        from engines.music.playback import PlaybackError

        try:
            self.player.play()
        except PlaybackError as exc:  # a plain sentence; PortAudio's words are in the log
            self.status.setText(f"{exc} Everything else works.")
            self.context.notify("warning", str(exc), "")
            return
        self.play_button.setText("Pause")
        self._tick()  # the player may have jumped to the loop start
        self._timer.start()

    def _tick(self) -> None:
        t = self.player.position()
        self.playhead_s = t
        for line in self.playheads:
            line.setValue(t)
        if not self.player.playing:
            self._timer.stop()
            self.play_button.setText("Play")

    # -- export --------------------------------------------------------------------------------------
    def _ask_export(self, suffix: str) -> None:
        if self.track is None or self.path is None:
            return
        default = str(self.path.with_name(self.path.stem + ("-chords" if suffix in (".wav", ".mid") else "") + suffix))
        name, _ = QFileDialog.getSaveFileName(self, "Export chords", default, f"*{suffix}")
        if name:
            self.export_to(Path(name))

    def export_to(self, out: Path) -> None:
        """Write the chord track (as displayed: transposed, edited) to ``out``, off the GUI thread."""
        if self.track is None:
            return
        from engines.music.chords import ChordSegment
        from engines.music.export import export_track

        snapshot = ChordTrack([ChordSegment(s.start, s.end, s.label, s.confidence) for s in self.track.segments],
                              self.track.duration, self.track.key, self.track.key_confidence, self.track.source,
                              self.track.transpose)
        melody = self.clip.midi if self.clip is not None else None
        tempo, voice = self.tempo, self.voice_box.currentData()
        clip = self.clip
        out = Path(out)

        def job(progress, cancel):
            bpm, first = tempo, 0.0
            if out.suffix.lower() in (".musicxml", ".xml") and bpm is None and clip is not None:
                from engines.music.export import estimate_beats

                progress(None, "finding the beat for the lead sheet")
                found = estimate_beats(clip.samples, clip.sr)
                if found:
                    bpm, first = found
            cancel.raise_if_cancelled()
            return export_track(snapshot, out, melody=melody, tempo_bpm=bpm, voice=voice, first_beat_s=first), bpm

        def done(result) -> None:
            path, bpm = result
            extra = f" (lead sheet at {bpm:.0f} bpm)" if path.suffix.lower() in (".musicxml", ".xml") and bpm else ""
            self.context.notify("info", f"Exported {path.name} to {path.parent}{extra}", "")

        self.context.tasks.submit(job, title=f"Exporting {short_name(out.name)}",
                                  owner=f"{self.manifest.id}:export",
                                  on_result=done, on_error=self._error)

    def send_chords_to_lab(self) -> None:
        if self.track is None or not self.track.segments:
            self.context.notify("info", "Recognize or open chords first; then they can seed the melody generator.", "")
            return
        self.lab.set_progression([seg.label for seg in self.track.segments])
        self.tabs.setCurrentWidget(self.lab)

    def shutdown(self) -> None:
        self._timer.stop()
        self.player.close()
        self._autosaver.close()  # the last edits reach the disk before the window goes
        self.lab.shutdown()
