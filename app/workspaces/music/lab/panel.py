"""The music lab panel: Harmonizer, Melody generator and Covers tabs over the engines in engines/music_lab (the
catalog search of the Covers tab is lab/catalog_search.py).

Self-contained: ``MusicLabPanel(context)`` with ``context`` an ``app.workspaces.base.ShellContext``. All model
and file work runs through ``context.tasks``; errors go to ``context.notify``. Playback uses the music
workspace's synthesizer and ``AudioPlayer`` (engines.music), imported lazily; without PortAudio or a sound
card the panel says so and everything else keeps working. Locked chords and the chosen melody are autosaved
through engines/core/autosave (read in workers, written by its background thread, validated on the way back)
and restored when the same melody / progression comes back.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QSlider,
                               QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

OWNER = "music-lab"


HARMONIZER_KIND, GENERATOR_KIND = "music-lab-harmonizer", "music-lab-generator"
LOCKS_SCHEMA = 1


def read_locks_job(path: Path, writer):
    """Worker: hash the melody file, then read its saved locked chords (validated; a bad file is set aside)."""
    from engines.core.autosave import autosave_path, load_autosave
    from engines.music.chords import chord_locks_from_autosave

    def job(progress, cancel):
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        target = autosave_path(HARMONIZER_KIND, path, content_key=digest)
        writer.flush()  # a save still queued for this melody is on disk before it is read back
        found = load_autosave(target, schema=LOCKS_SCHEMA, validate=chord_locks_from_autosave,
                              source_name=Path(path).name)
        return target, found.data or {}, found.notice

    return job


def read_chosen_melody_job(chords: str, writer):
    """Worker: the melody chosen earlier for this progression (validated; a bad file is set aside)."""
    from engines.core.autosave import autosave_path, load_autosave
    from engines.music_lab.generator import CHOSEN_MELODY_SCHEMA, chosen_melody_from_autosave

    def job(progress, cancel):
        target = autosave_path(GENERATOR_KIND, chords, content_key=f"progression:{chords}")
        writer.flush()
        found = load_autosave(target, schema=CHOSEN_MELODY_SCHEMA, validate=chosen_melody_from_autosave,
                              source_name=f"the progression '{chords[:40]}'")
        return target, found.data, found.notice

    return job


class PitchAxis(pg.AxisItem):
    """A pitch axis that reads as note names (C4 = MIDI 60, as in scientific pitch notation); ticks on whole
    semitones only, the Cs always among them."""

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph's name
        lo, hi = int(np.ceil(minVal)), int(np.floor(maxVal))
        if hi < lo:
            return []
        every = next(step for step in (1, 2, 3, 4, 6, 12, 24) if (hi - lo) / step * 18 <= max(size, 1))
        major = [m for m in range(lo, hi + 1) if m % 12 == 0]
        minor = [m for m in range(lo, hi + 1) if m % every == 0 and m % 12 != 0] if every < 12 else []
        return [(12.0, major), (float(every), minor)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        import pretty_midi

        return [pretty_midi.note_number_to_name(int(round(v))) if 0 <= round(v) <= 127 else "" for v in values]


class _Roll(pg.PlotWidget):
    """A piano roll: melody notes as bars, chord symbols along the top, locked segments shaded."""

    def __init__(self) -> None:
        super().__init__(axisItems={"left": PitchAxis("left")})
        self.setBackground("w")
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("bottom", "beats")
        self.setLabel("left", "pitch")
        self.setMouseEnabled(y=False)
        self._items: list[Any] = []

    def show_notes(self, notes, chords: list[str], seg_beats: float, locked: set[int] | None = None,
                   beats_per_bar: float = 4.0) -> None:
        for it in self._items:
            self.removeItem(it)
        self._items = []
        if not notes:
            return
        lo = min(n.pitch for n in notes) - 3
        hi = max(n.pitch for n in notes) + 5
        for k, label in enumerate(chords):
            if locked and k in locked:
                region = pg.LinearRegionItem((k * seg_beats, (k + 1) * seg_beats), movable=False,
                                             brush=pg.mkBrush(255, 200, 80, 60), pen=pg.mkPen(None))
                self.addItem(region)
                self._items.append(region)
            text = pg.TextItem(label, color=(20, 60, 160), anchor=(0, 1))
            text.setPos(k * seg_beats + 0.05, hi)
            self.addItem(text)
            self._items.append(text)
        end = max(n.end for n in notes)
        bars = int(np.ceil(end / beats_per_bar)) + 1
        for b in range(bars):
            line = pg.InfiniteLine(b * beats_per_bar, pen=pg.mkPen((150, 150, 150), width=1))
            self.addItem(line)
            self._items.append(line)
        xs, ys = [], []
        for n in notes:
            xs += [n.start, n.end - 0.05, np.nan]
            ys += [n.pitch, n.pitch, np.nan]
        curve = pg.PlotDataItem(np.array(xs, float), np.array(ys, float), pen=pg.mkPen((200, 40, 40), width=6),
                                connect="finite")
        self.addItem(curve)
        self._items.append(curve)
        self.setYRange(lo, hi + 1)
        self.setXRange(0, max(end, len(chords) * seg_beats))


class _Player:
    """Playback through the music workspace's synthesizer and player, created on first use."""

    def __init__(self, panel: "MusicLabPanel") -> None:
        self.panel = panel
        self.player = None

    def play(self, notes, chord_labels: list[str], seg_beats: float, bpm: float) -> bool:
        try:
            from engines.music.playback import AudioPlayer, playback_availability
        except ImportError as exc:  # the music workspace's engines are missing
            self.panel.say(f"Playback is unavailable ({exc}). Everything else works.", "warning")
            return False
        ok, reason = playback_availability()
        if not ok:
            self.panel.say(f"{reason} Everything else works.", "warning")
            return False
        spq = 60.0 / bpm
        items = [(n.start * spq, n.end * spq, n.pitch) for n in notes]
        segs = [(k * seg_beats * spq, (k + 1) * seg_beats * spq, lab) for k, lab in enumerate(chord_labels)]

        def render(progress, cancel):
            from engines.music.chords import ChordSegment
            from engines.music.synth import render_chords, render_notes

            dur = max([e for _, e, _ in items] + [e for _, e, _ in segs] + [0.5]) + 0.5
            y = render_notes([(s, e, p, 0.8) for s, e, p in items], dur, 22050, "piano")
            if segs:
                y = y + render_chords([ChordSegment(s, e, lab) for s, e, lab in segs], dur, 22050, "piano")
            peak = float(np.abs(y).max()) if y.size else 0
            return y * (0.9 / peak) if peak > 0.9 else y

        def start(y) -> None:
            if self.player is None:
                self.player = AudioPlayer()
            self.player.set_buffer(y, 22050)
            self.player.seek(0.0)
            from engines.music.playback import PlaybackError

            try:
                self.player.play()
            except PlaybackError as exc:  # a plain sentence; PortAudio's words are in the log
                self.panel.say(f"{exc} Everything else works.", "warning")

        self.panel.context.tasks.submit(render, title="Synthesizing", owner=f"{OWNER}:synth", on_result=start,
                                        on_error=self.panel.error)
        return True

    def stop(self) -> None:
        if self.player is not None:
            self.player.pause()

    def close(self) -> None:
        if self.player is not None:
            self.player.close(timeout=2.0)  # bounded even when the sound output hangs


# ======================================================================================================
class HarmonizerTab(QWidget):
    result_ready = Signal()

    def __init__(self, panel: "MusicLabPanel") -> None:
        super().__init__()
        self.panel = panel
        self.result = None  # engines.music_lab.harmonizer.Harmonization
        self.melody_source: str | None = None
        self.locks: dict[int, str] = {}
        self._seed = 0
        self._autosave_file: Path | None = None
        top = QHBoxLayout()
        self.open_button = QPushButton("Open melody…")
        self.open_button.clicked.connect(self._choose_file)
        self.sample_button = QPushButton("Sample melody")
        self.sample_button.setToolTip("The soprano of BWV 153.1, a chorale the model never saw")
        self.sample_button.clicked.connect(self.open_sample)
        self.method_box = QComboBox()
        for label, data in (("BLSTM (Lim et al.)", "blstm"), ("DNN per bar", "dnn"), ("HMM baseline", "hmm")):
            self.method_box.addItem(label, data)
        self.resolution_box = QComboBox()
        self.resolution_box.addItem("a chord per bar", "bar")
        self.resolution_box.addItem("a chord per half bar", "half")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.2, 3.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(1.0)
        self.temperature.setToolTip("How adventurous the alternatives are")
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 24)
        self.top_k.setValue(4)
        self.top_k.setToolTip("Alternatives only from each bar's k likeliest chords (0 = all)")
        self.harmonize_button = QPushButton("Harmonize")
        self.harmonize_button.clicked.connect(lambda: self.harmonize(sample=False))
        self.alt_button = QPushButton("Regenerate unlocked")
        self.alt_button.clicked.connect(lambda: self.harmonize(sample=True))
        self.play_button = QPushButton("Play")
        self.play_button.clicked.connect(self.play)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export)
        # two rows, so the tab fits a 1280 x 720 window beside the workspace switcher
        for w in (self.open_button, self.sample_button, QLabel("Model:"), self.method_box, self.resolution_box,
                  self.harmonize_button):
            top.addWidget(w)
        top.addStretch(1)
        second = QHBoxLayout()
        for w in (QLabel("Temperature:"), self.temperature, QLabel("Top-k:"), self.top_k, self.alt_button,
                  self.play_button, self.export_button):
            second.addWidget(w)
        second.addStretch(1)
        self.roll = _Roll()
        self.table = QTableWidget(3, 0)
        self.table.setVerticalHeaderLabels(["Chord", "Locked", "Likeliest"])
        self.table.setMaximumHeight(130)
        self.table.itemChanged.connect(self._item_changed)
        self.info = QLabel("Open a melody (MIDI or MusicXML) or the sample melody, then Harmonize. Type a chord in "
                           "the Chord row or tick Locked to keep it; Regenerate unlocked draws alternatives around "
                           "the locked chords.")
        self.info.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(second)
        lay.addWidget(self.info)
        lay.addWidget(self.roll, 1)
        lay.addWidget(self.table)
        self._updating = False

    # -- input ---------------------------------------------------------------------------------------
    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a melody", "", "Melodies (*.mid *.midi *.musicxml *.xml *.mxl)")
        if path:
            self.open_melody(Path(path))

    def open_sample(self) -> None:
        from engines.core.samples import sample_path

        self.panel.context.tasks.submit(lambda p, c: sample_path("music_lab-melody"), title="Preparing the sample melody",
                                        owner=f"{OWNER}:sample", on_result=lambda p: self.open_melody(Path(p)),
                                        on_error=self.panel.error)

    def open_melody(self, path: Path) -> None:
        """Read the melody's saved locks in a worker (it hashes the file), then harmonize."""
        path = Path(path)

        def opened(found) -> None:
            self._autosave_file, self.locks, notice = found
            self.melody_source = str(path)
            if notice:
                self.panel.say(notice, "warning")
            self.panel.context.add_recent(path)
            self.harmonize(sample=False)

        self.panel.context.tasks.submit(read_locks_job(path, self.panel.autosaver), title=f"Opening {path.name}",
                                        owner=f"{OWNER}:open", on_result=opened, on_error=self.panel.error)

    # -- running ---------------------------------------------------------------------------------------
    def request(self, sample: bool) -> dict:
        req: dict[str, Any] = {"melody": self.melody_source, "method": self.method_box.currentData(),
                               "resolution": self.resolution_box.currentData(), "locks": dict(self.locks)}
        if sample:
            self._seed += 1
            req.update(temperature=self.temperature.value(), top_k=self.top_k.value(), seed=self._seed)
        return req

    def harmonize(self, sample: bool = False) -> None:
        if not self.melody_source:
            self.panel.say("Open a melody first.", "info")
            return
        engine = self.panel.engine("melody-harmonizer")
        if engine is None:
            return
        self.panel.context.tasks.submit_engine(engine, self.request(sample), title="Harmonizing the melody",
                                               owner=f"{OWNER}:harmonize", device=self.panel.context.device(),
                                               on_result=self._show, on_error=self.panel.error)

    def _show(self, result) -> None:
        self.result = result
        self.locks = {i: s for i, s in self.locks.items() if i < len(result.chords)}
        self._fill_table()
        self.roll.show_notes(result.melody.notes, result.symbols, result.seg_beats, set(self.locks),
                             result.melody.beats_per_bar)
        self.info.setText(f"{Path(self.melody_source).name}: key {result.key}, {len(result.chords)} "
                          f"{'bars' if result.seg_beats == result.melody.beats_per_bar else 'half bars'}, "
                          f"model {result.method}; the chords cover {result.coverage():.0%} of the melody's "
                          f"duration with chord tones.")
        self._autosave()
        self.result_ready.emit()

    def _fill_table(self) -> None:
        from engines.music_lab.melody import chord_class_symbol

        r = self.result
        self._updating = True
        self.table.setColumnCount(len(r.chords))
        self.table.setHorizontalHeaderLabels([str(i + 1) for i in range(len(r.chords))])
        for k, sym in enumerate(r.symbols):
            item = QTableWidgetItem(sym)
            self.table.setItem(0, k, item)
            lock = QTableWidgetItem("")
            lock.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
            lock.setCheckState(Qt.Checked if k in self.locks else Qt.Unchecked)
            self.table.setItem(1, k, lock)
            top = np.argsort(-r.probs[k])[:3]
            best = QTableWidgetItem(" ".join(f"{chord_class_symbol(int(c))} {r.probs[k, c]:.0%}" for c in top))
            best.setFlags(Qt.ItemIsEnabled)
            self.table.setItem(2, k, best)
        self.table.resizeColumnsToContents()
        self._updating = False

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or self.result is None:
            return
        col = item.column()
        if item.row() == 1:
            if item.checkState() == Qt.Checked:
                self.locks[col] = self.result.symbols[col]
            else:
                self.locks.pop(col, None)
            self._autosave()
            self.roll.show_notes(self.result.melody.notes, self.result.symbols, self.result.seg_beats,
                                 set(self.locks), self.result.melody.beats_per_bar)
        elif item.row() == 0:
            self.set_chord(col, item.text())

    def set_chord(self, col: int, text: str) -> bool:
        """Type a chord into bar ``col``: it is locked and the rest re-harmonized around it."""
        from engines.core.engine import EngineError
        from engines.music_lab.melody import chord_class_of

        try:
            chord_class_of(text)
        except EngineError as exc:
            self.panel.error(str(exc), "")
            self._fill_table()
            return False
        self.locks[col] = text.strip()
        self._autosave()
        self.harmonize(sample=False)
        return True

    def toggle_lock(self, col: int, locked: bool) -> None:
        self.table.item(1, col).setCheckState(Qt.Checked if locked else Qt.Unchecked)

    # -- output ----------------------------------------------------------------------------------------
    def play(self) -> None:
        if self.result is None:
            self.panel.say("Harmonize a melody first.", "info")
            return
        r = self.result
        self.panel.player.play(r.melody.notes, r.labels(), r.seg_beats, r.melody.bpm)

    def _choose_export(self) -> None:
        if self.result is None:
            self.panel.say("Harmonize a melody first.", "info")
            return
        from app.widgets.export_dialog import ask_save_path

        source = getattr(self, "melody_source", None)
        name = f"{Path(source).stem}-harmonized.mid" if source else "harmonized.mid"
        path = ask_save_path(self, "music", "Export", source, name, "MIDI (*.mid);;MusicXML (*.musicxml)")
        if path:
            self.export(path)

    def export(self, path: Path) -> None:
        engine = self.panel.engine("melody-harmonizer")
        result = self.result
        self.panel.context.tasks.submit(lambda p, c: engine.write_result(result, path), title=f"Exporting {path.name}",
                                        owner=f"{OWNER}:export", on_result=lambda w: self.panel.say(
                                            f"Wrote {', '.join(Path(x).name for x in w)}", "info"),
                                        on_error=self.panel.error)

    # -- autosave ------------------------------------------------------------------------------------
    def _autosave(self) -> None:
        """Queue the locks for the background writer (no file is read or written here)."""
        if self._autosave_file is None:
            return
        payload = {"melody": self.melody_source, "locks": {str(k): v for k, v in self.locks.items()},
                   "chords": self.result.symbols if self.result is not None else []}
        self.panel.autosaver.save(self._autosave_file, payload, schema=LOCKS_SCHEMA)


# ======================================================================================================
class GeneratorTab(QWidget):
    result_ready = Signal()

    def __init__(self, panel: "MusicLabPanel") -> None:
        super().__init__()
        self.panel = panel
        self.result = None  # GeneratedMelodies
        self._seed = 0
        self._autosave_file: Path | None = None
        self._saved: dict | None = None
        top = QHBoxLayout()
        self.chords_edit = QLineEdit("C Am F G C F G C")
        self.chords_edit.setToolTip("One chord per bar; 'C G | Am F' puts two chords in a bar")
        self.from_harmonizer = QPushButton("Chords from the harmonizer")
        self.from_harmonizer.clicked.connect(self._take_harmonizer_chords)
        self.distance = QSlider(Qt.Horizontal)
        self.distance.setRange(0, 30)
        self.distance.setValue(10)
        self.distance_label = QLabel()
        self.distance.valueChanged.connect(self._distance_changed)
        self._distance_changed(self.distance.value())
        self.n_box = QSpinBox()
        self.n_box.setRange(1, 16)
        self.n_box.setValue(4)
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.play_button = QPushButton("Play")
        self.play_button.clicked.connect(self.play)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export)
        for w in (QLabel("Chords:"), self.chords_edit, self.from_harmonizer, QLabel("Latent distance:"), self.distance,
                  self.distance_label, QLabel("Melodies:"), self.n_box, self.generate_button, self.play_button,
                  self.export_button):
            top.addWidget(w)
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._select)
        self.list.setMinimumWidth(300)
        self.roll = _Roll()
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(self.roll)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 900])
        self.info = QLabel("Type a progression and Generate. The slider samples nearer to (left) or farther from "
                           "(right) the progression's centre in latent space.")
        self.info.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.info)
        lay.addWidget(split, 1)

    def _distance_changed(self, v: int) -> None:
        self.distance_label.setText(f"{v / 10:.1f}")

    def _take_harmonizer_chords(self) -> None:
        r = self.panel.harmonizer.result
        if r is None:
            self.panel.say("Harmonize a melody first.", "info")
            return
        if r.seg_beats < r.melody.beats_per_bar:
            syms = r.symbols
            self.chords_edit.setText(" | ".join(" ".join(syms[i:i + 2]) for i in range(0, len(syms), 2)))
        else:
            self.chords_edit.setText(" ".join(r.symbols))

    def generate(self) -> None:
        """Read the melody chosen earlier for this progression (worker), then generate."""
        engine = self.panel.engine("melody-generator")
        if engine is None:
            return
        self._seed += 1
        chords = self.chords_edit.text().strip()
        req = {"chords": self.chords_edit.text(), "distance": self.distance.value() / 10.0, "n": self.n_box.value(),
               "seed": self._seed}

        def restored(found) -> None:
            self._autosave_file, self._saved, notice = found
            if notice:
                self.panel.say(notice, "warning")
            self.panel.context.tasks.submit_engine(engine, req, title="Generating melodies",
                                                   owner=f"{OWNER}:generate", device=self.panel.context.device(),
                                                   on_result=self._show, on_error=self.panel.error)

        self.panel.context.tasks.submit(read_chosen_melody_job(chords, self.panel.autosaver),
                                        title="Reading the chosen melody", owner=f"{OWNER}:restore",
                                        on_result=restored, on_error=self.panel.error)

    def _show(self, result) -> None:
        self.result = result
        saved = self._saved
        if saved is not None and saved["distance"] == result.distance and saved["notes"]:
            result.melodies.insert(0, list(saved["notes"]))
            result.stats.insert(0, {"strong_beat_chord_tones": float("nan"), "range": 0, "mean_abs_interval": 0})
        self.list.clear()
        for i, (m, s) in enumerate(zip(result.melodies, result.stats)):
            ct = s.get("strong_beat_chord_tones", float("nan"))
            text = (f"Melody {i + 1}: {len(m)} notes, range {s.get('range', 0):.0f}, strong-beat chord tones "
                    f"{ct:.0%}" if ct == ct else f"Melody {i + 1}: your chosen melody (restored)")
            self.list.addItem(QListWidgetItem(text))
        self.info.setText(f"{len(result.melodies)} melodies over {len(result.bars)} bars; diversity between samples "
                          f"{result.diversity:.0%} of 16th steps differ. Select one to see it; Play or Export it.")
        self.list.setCurrentRow(0)
        self.result_ready.emit()

    def _select(self, row: int) -> None:
        if self.result is None or not 0 <= row < len(self.result.melodies):
            return
        self.result.chosen = row
        self.roll.show_notes(self.result.melodies[row], [s for s in self.result.chord_symbols()], 4.0)
        self._autosave()

    def play(self) -> None:
        if self.result is None:
            self.panel.say("Generate melodies first.", "info")
            return
        from engines.music_lab.melody import CHORD_CLASSES

        r = self.result
        self.panel.player.play(r.melodies[r.chosen], [CHORD_CLASSES[c] for c in r.half_bar_chords()], 2.0, r.bpm)

    def _choose_export(self) -> None:
        if self.result is None:
            self.panel.say("Generate melodies first.", "info")
            return
        from app.widgets.export_dialog import ask_save_path

        path = ask_save_path(self, "music", "Export the selected melody", None, "melody.mid",
                             "MIDI (*.mid);;MusicXML (*.musicxml)")
        if path:
            self.export(path)

    def export(self, path: Path) -> None:
        from engines.music_lab.melody import write_result_file

        r = self.result
        mel, chords = r.melodies[r.chosen], r.half_bar_chords()
        self.panel.context.tasks.submit(lambda p, c: write_result_file(path, mel, chords, 2.0, 4.0, r.bpm),
                                        title=f"Exporting {path.name}", owner=f"{OWNER}:export",
                                        on_result=lambda w: self.panel.say(f"Wrote {Path(w).name}", "info"),
                                        on_error=self.panel.error)

    def _autosave(self) -> None:
        """Queue the chosen melody for the background writer (no disk I/O here)."""
        if self._autosave_file is None or self.result is None:
            return
        from engines.music_lab.generator import CHOSEN_MELODY_SCHEMA, chosen_melody_payload

        r = self.result
        self.panel.autosaver.save(self._autosave_file,
                                  chosen_melody_payload(self.chords_edit.text().strip(), r.distance,
                                                        r.melodies[r.chosen]), schema=CHOSEN_MELODY_SCHEMA)


# ======================================================================================================
class CoversTab(QWidget):
    result_ready = Signal()

    def __init__(self, panel: "MusicLabPanel") -> None:
        super().__init__()
        self.panel = panel
        self.result = None
        self.query_edit = QLineEdit()
        self.query_edit.setPlaceholderText("a recording (audio, MIDI or MusicXML)")
        self.ref_edit = QLineEdit()
        self.ref_edit.setPlaceholderText("another recording, or a folder of recordings")
        q_button = QPushButton("…")
        q_button.clicked.connect(lambda: self._pick(self.query_edit, folder=False))
        r_button = QPushButton("File…")
        r_button.clicked.connect(lambda: self._pick(self.ref_edit, folder=False))
        f_button = QPushButton("Folder…")
        f_button.clicked.connect(lambda: self._pick(self.ref_edit, folder=True))
        self.sample_button = QPushButton("Sample clips")
        self.sample_button.clicked.connect(self.use_sample)
        self.transposition = QComboBox()
        for label, data in (("patch-wise transposition", "patch"), ("one OTI shift", "oti"), ("no transposition", "none")):
            self.transposition.addItem(label, data)
        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self.compare)
        self.catalog_button = QPushButton("Find versions in catalog…")
        self.catalog_button.setToolTip("Look the recording up in a catalog made by 'csi-workstation covers index'")
        self.catalog_button.clicked.connect(panel.find_in_catalog)
        row1 = QHBoxLayout()
        for w in (QLabel("Query:"), self.query_edit, q_button, QLabel("Against:"), self.ref_edit, r_button, f_button,
                  self.sample_button, self.transposition, self.compare_button, self.catalog_button):
            row1.addWidget(w)
        self.verdict = QLabel("Choose two recordings (or one and a folder) and Compare.")
        self.verdict.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "reference (s)")
        self.plot.setLabel("left", "query (s)")
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get("viridis"))
        self.plot.addItem(self.image)
        self.path_item = pg.PlotDataItem(pen=pg.mkPen((255, 60, 60), width=2))
        self.plot.addItem(self.path_item)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Reference", "Cover probability", "Qmax", "Dmax", "Key shift"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.currentCellChanged.connect(lambda r, *_: self._show_matrix(r))
        split = QSplitter()
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([760, 540])
        for col in range(1, 5):
            self.table.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeToContents)
        lay = QVBoxLayout(self)
        lay.addLayout(row1)
        lay.addWidget(self.verdict)
        lay.addWidget(split, 1)

    def _pick(self, edit: QLineEdit, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self, "A folder of recordings")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "A recording", "", "Audio, MIDI, MusicXML (*.wav *.flac *.ogg "
                                                  "*.mp3 *.mid *.midi *.musicxml *.xml)")
        if path:
            edit.setText(path)

    def use_sample(self) -> None:
        from engines.core.samples import sample_path

        def done(folder) -> None:
            clips = sorted(Path(folder).glob("*.ogg"))
            self.query_edit.setText(str(clips[0]))
            self.ref_edit.setText(str(folder))
            self.compare()

        self.panel.context.tasks.submit(lambda p, c: sample_path("music_lab-cover-clips"), title="Preparing clips",
                                        owner=f"{OWNER}:sample", on_result=done, on_error=self.panel.error)

    def compare(self) -> None:
        q, r = self.query_edit.text().strip(), self.ref_edit.text().strip()
        if not q or not r:
            self.panel.say("Choose a query recording and a reference (file or folder).", "info")
            return
        engine = self.panel.engine("cover-id")
        if engine is None:
            return
        req = {"query": q, "references": [r], "transposition": self.transposition.currentData()}
        self.panel.context.tasks.submit_engine(engine, req, title="Comparing recordings", owner=f"{OWNER}:covers",
                                               device=self.panel.context.device(), on_result=self._show,
                                               on_error=self.panel.error)

    def _show(self, result) -> None:
        self.result = result
        ranking = result.ranking
        self.table.setRowCount(len(ranking))
        for i, c in enumerate(ranking):
            vals = [Path(c.reference).name, f"{c.probability:.0%}" if c.probability is not None else "-",
                    f"{c.qmax:.1f}", f"{c.dmax:.1f}", f"{c.oti:+d}" if c.oti <= 6 else f"{c.oti - 12:+d}"]
            for j, v in enumerate(vals):
                self.table.setItem(i, j, QTableWidgetItem(v))
        best = ranking[0]
        verdict = "is probably a version of" if (best.probability or 0) >= 0.5 else "is probably not a version of"
        self.verdict.setText(f"{Path(result.query).name} {verdict} {Path(best.reference).name} (cover probability "
                             f"{best.probability:.0%}, Qmax {best.qmax:.1f}, Dmax {best.dmax:.1f})."
                             + (" " + " ".join(result.notes) if result.notes else ""))
        self.table.selectRow(0)
        self._show_matrix(0)
        self.result_ready.emit()

    def _show_matrix(self, row: int) -> None:
        if self.result is None or not 0 <= row < len(self.result.comparisons):
            return
        c = self.result.ranking[row]
        f = c.frame_s
        # ImageItem axes: first index -> x. x = reference time, y = query time
        self.image.setImage(c.matrix.T, autoLevels=True)
        self.image.setRect(0, 0, c.matrix.shape[1] * f, c.matrix.shape[0] * f)
        if len(c.path):
            self.path_item.setData((c.path[:, 1] + 0.5) * f, (c.path[:, 0] + 0.5) * f)
        else:
            self.path_item.setData([], [])


# ======================================================================================================
class MusicLabPanel(QWidget):
    """Three tabs - Harmonizer, Melody generator, Covers - for the music workspace."""

    autosave_failed = Signal(str)
    open_recording_requested = Signal(str)  # a catalog match to open in the music workspace

    def __init__(self, context, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.current_recording: Path | None = None  # the music workspace's open recording (set by the view)
        self.catalog_dialog = None
        self.player = _Player(self)
        self._engines: dict[str, Any] = {}
        from engines.core.autosave import AutosaveWriter

        # one background writer for the tabs' autosaves; failures come back through a queued signal
        self.autosaver = AutosaveWriter(on_error=self.autosave_failed.emit)
        self.autosave_failed.connect(lambda msg: self.say(msg, "warning"))
        self.tabs = QTabWidget()
        self.harmonizer = HarmonizerTab(self)
        self.generator = GeneratorTab(self)
        self.covers = CoversTab(self)
        self.tabs.addTab(self.harmonizer, "Harmonizer")
        self.tabs.addTab(self.generator, "Melody generator")
        self.tabs.addTab(self.covers, "Covers")
        self.status = QLabel("")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.status)

    # -- hooks for the music workspace ---------------------------------------------------------------
    def set_progression(self, labels: list[str]) -> None:
        """Put chords (MIREX labels or symbols, one per bar; e.g. from the chord lane) into the generator tab."""
        from engines.music.chords import parse_label

        symbols = []
        for lab in labels:
            try:
                chord = parse_label(lab)
            except ValueError:
                continue
            if not chord.is_none and (not symbols or symbols[-1] != chord.symbol()):
                symbols.append(chord.symbol())
        self.generator.chords_edit.setText(" ".join(symbols))
        self.tabs.setCurrentWidget(self.generator)

    def open_melody(self, path: Path) -> None:
        """Harmonize a MIDI/MusicXML melody (e.g. the file the workspace just opened)."""
        self.tabs.setCurrentWidget(self.harmonizer)
        self.harmonizer.open_melody(Path(path))

    def find_in_catalog(self) -> None:
        """Open the catalog search (lab/catalog_search.py) for the Covers query or the workspace's recording."""
        from app.workspaces.music.lab.catalog_search import CatalogSearchDialog

        song = self.covers.query_edit.text().strip() or str(self.current_recording or "")
        if self.catalog_dialog is None:
            self.catalog_dialog = CatalogSearchDialog(self.context, song, self)
            self.catalog_dialog.open_requested.connect(self.open_recording_requested)
        elif song:
            self.catalog_dialog.song_edit.setText(song)
        self.catalog_dialog.show()
        self.catalog_dialog.raise_()

    def engine(self, engine_id: str):
        if engine_id not in self._engines:
            try:
                self._engines[engine_id] = self.context.registry().get(engine_id)
            except KeyError:
                self.error(f"The engine '{engine_id}' is not installed.", "")
                return None
        return self._engines[engine_id]

    def say(self, message: str, level: str = "info") -> None:
        self.status.setText(message)
        if level != "info":
            self.context.notify(level, message, "")

    def error(self, message: str, detail: str = "") -> None:
        self.status.setText(message)
        self.context.notify("error", message, detail)

    def shutdown(self) -> None:
        """Call from the workspace's shutdown(): stops playback, writes pending autosaves (running tasks are
        cancelled by the shell)."""
        self.player.close()
        if self.catalog_dialog is not None:
            self.catalog_dialog.cancel()
        self.autosaver.close()
