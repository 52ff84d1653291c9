"""The music workspace's transport: the bar (recognizer, Recognize, Play, what to play, voice, loop, transpose) and
the playback controller over engines.music.playback.AudioPlayer.

Playback never blocks the GUI: chords are synthesized in a task, the player's position is polled by a timer, and
closing stops the player within a bounded time whether or not there is a sound card.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QPushButton, QSpinBox, QWidget

from engines.music.chords import ChordSegment

log = logging.getLogger(__name__)
SOURCES = (("Recording", "audio"), ("Chords", "chords"), ("Recording + chords", "mix"))


def _weights_present(name: str | None) -> bool:
    """Whether an engine's weights file and card are there (cheap: no hashing; the GUI thread may ask)."""
    if not name:
        return True
    from engines.core.weights import WeightsError, WeightsStore

    try:
        weights, card = WeightsStore.default().paths(name)
    except WeightsError:
        return False
    return weights.exists() and card.exists()


def weights_job(engines: list):
    """Worker: each engine's full weights status (engine id -> 'ok', 'none needed' or why not)."""
    def job(progress, cancel):
        return {engine.info().id: engine.weights_status() for engine in engines}

    return job


class TransportBar(QWidget):
    """The row of controls above the lanes. Emits what the user asked for; shows what it is told."""

    recognize_requested = Signal()
    play_requested = Signal()
    source_changed = Signal()
    loop_toggled = Signal(bool)
    transpose_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine_box = QComboBox()
        self._ranks: dict[str, int] = {}  # engine id -> preference for the default (BTC 25 > networks > rest)
        self._default = None  # the engine chosen by default (the user's own choice is never overridden)
        self._statuses: dict[str, str] = {}  # engine id -> weights status (see weights_status)
        self.engine_box.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.engine_box.setMinimumWidth(190)
        self.engine_box.setToolTip("Chord recognizer: BTC (network trained on rendered chorales) or the "
                                   "classical template + HMM baseline")
        self.recognize_button = QPushButton("Recognize")
        self.recognize_button.clicked.connect(self.recognize_requested)
        self.play_button = QPushButton("Play")
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(self.play_requested)
        self.source_box = QComboBox()
        for text, value in SOURCES:
            self.source_box.addItem(text, value)
        self.source_box.setCurrentIndex(2)
        self.source_box.setToolTip("What to play: the recording, the chord track through the built-in "
                                   "synthesizer, or both")
        self.source_box.currentIndexChanged.connect(self.source_changed)
        self.voice_box = QComboBox()
        self.voice_box.addItem("Piano", "piano")
        self.voice_box.addItem("Pad", "pad")
        self.voice_box.currentIndexChanged.connect(self.source_changed)
        self.loop_box = QCheckBox("Loop chord")
        self.loop_box.setToolTip("Loop the selected chord while playing")
        self.loop_box.toggled.connect(self.loop_toggled)
        self.transpose_spin = QSpinBox()
        self.transpose_spin.setRange(-11, 11)
        self.transpose_spin.setPrefix("Transpose ")
        self.transpose_spin.setSuffix(" st")
        self.transpose_spin.setToolTip("Transpose the chord track (capo): labels, key, playback and exports; "
                                       "slash basses move with it")
        self.transpose_spin.valueChanged.connect(self.transpose_requested)
        bar = QHBoxLayout(self)
        bar.setContentsMargins(0, 0, 0, 0)
        for w in (self.engine_box, self.recognize_button, self.play_button, self.source_box, self.voice_box,
                  self.loop_box, self.transpose_spin):
            bar.addWidget(w)
        bar.addStretch(1)

    def show_transpose(self, semitones: int) -> None:
        """Show ``semitones`` without treating it as the user's request."""
        self.transpose_spin.blockSignals(True)
        self.transpose_spin.setValue(int(semitones))
        self.transpose_spin.blockSignals(False)

    def fill_engines(self, registry, notify: Callable[[str, str, str], None]) -> list | None:
        """List the chord recognizers once; the default is BTC 25 classes, else any network, else templates.

        Whether an engine's weights are usable is first judged by their files being there; the full check
        (the SHA-256 of each weights file against its card) is the worker job ``weights_job`` of the engines
        returned here, and ``show_weights_status`` applies its answer. Returns None when already filled."""
        if self.engine_box.count():
            return None
        try:
            engines = [registry.get(i) for i in registry.ids()]
        except Exception as exc:  # noqa: BLE001 - no engines: the view still shows audio
            notify("error", f"Music engines are unavailable: {exc}", "")
            return None
        chord_engines = []
        for engine in engines:
            info = engine.info()
            if info.workspace != "music" or info.task != "chord recognition":
                continue
            chord_engines.append(engine)
            self._ranks[info.id] = 2 if info.id == "chord-recognition" else 1 if info.weights else 0
            # files absent: the status says why at once (no hashing); present: 'ok' until the full check says
            status = ("ok" if info.weights else "none needed") if _weights_present(info.weights) \
                else engine.weights_status()
            self._statuses[info.id] = status
            short = info.extra.get("short_title", info.title)
            usable = status in ("ok", "none needed")
            self.engine_box.addItem(short + ("" if usable else " (weights missing)"), info.id)
            self.engine_box.setItemData(self.engine_box.count() - 1, info.title, Qt.ToolTipRole)
        self._choose_default(self._statuses)
        return chord_engines

    def weights_status(self, engine_id: str) -> str:
        """The engine's weights status as last checked: the full check's answer once it came, else 'ok' when
        its files are there (the recognition job checks the hash again before it runs)."""
        return self._statuses.get(engine_id, "ok")

    def _choose_default(self, statuses: dict[str, str]) -> None:
        best = None
        for index in range(self.engine_box.count()):
            engine_id = self.engine_box.itemData(index)
            rank = self._ranks.get(engine_id, 0)
            if statuses.get(engine_id) in ("ok", "none needed") and (best is None or rank > best[1]):
                best = (index, rank)
        if best is not None:
            self.engine_box.setCurrentIndex(best[0])
        self._default = self.engine_box.currentData()

    def show_weights_status(self, statuses: dict[str, str]) -> None:
        """The full weights check's answer (engine id -> status): unusable engines are marked, and the default
        moves to the best usable one unless the user chose another meanwhile."""
        self._statuses.update(statuses)
        for index in range(self.engine_box.count()):
            status = statuses.get(self.engine_box.itemData(index))
            text = self.engine_box.itemText(index).removesuffix(" (weights missing)")
            self.engine_box.setItemText(index, text + ("" if status in (None, "ok", "none needed")
                                                       else " (weights missing)"))
        if self.engine_box.currentData() == self._default:
            self._choose_default(statuses)

    def set_enabled_for(self, has_recording: bool) -> None:
        self.recognize_button.setEnabled(has_recording)
        self.play_button.setEnabled(has_recording)


class PlaybackController(QObject):
    """Plays the session's recording, its chords or both; loops the session's region; reports the playhead.

    ``submit(job, on_result)`` runs the chord synthesis off the GUI thread; ``say(level, message)`` tells the user
    why playback is off. The player is polled by a 40 ms timer while it plays.
    """

    position_changed = Signal(float)
    playing_changed = Signal(bool)

    def __init__(self, session, bar: TransportBar, submit, say, parent: QObject | None = None) -> None:
        super().__init__(parent)
        from engines.music.playback import AudioPlayer

        self.session, self.bar, self._submit, self._say = session, bar, submit, say
        self.player = AudioPlayer()
        self.chord_audio: np.ndarray | None = None
        self.playhead = 0.0  # seconds; where playback starts
        self._chord_audio_key: tuple | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self.tick)
        session.events.region_changed.connect(self._region_changed)

    def _region_changed(self, region) -> None:
        self.player.set_loop(*(region or (None,)))

    def stop(self) -> None:
        """Pause and forget the rendered chords (a new recording or a new track)."""
        self.player.pause()
        self._timer.stop()
        self.chord_audio = None
        self.bar.play_button.setText("Play")

    def seek(self, t: float) -> None:
        self.playhead = float(t)
        self.player.seek(t)

    def source_changed(self) -> None:
        if self.player.playing:
            self.player.pause()
            self.toggle()

    def toggle(self) -> None:
        session = self.session
        if session.clip is None:
            return
        if self.player.playing:
            self.player.pause()
            self._timer.stop()
            self.bar.play_button.setText("Play")
            self.playing_changed.emit(False)
            return
        from engines.music.playback import playback_availability

        ok, reason = playback_availability()
        if not ok:
            self._say("warning", reason)
            return
        track = session.track
        if self.bar.source_box.currentData() != "audio" and track is not None:
            key = (id(track), track.revision, self.bar.voice_box.currentData())
            if self.chord_audio is None or self._chord_audio_key != key:
                self._render_chords_then_play(key)
                return
        self._start()

    def _render_chords_then_play(self, key: tuple) -> None:
        from engines.music.synth import render_chords

        track, clip = self.session.track, self.session.clip
        segments = [ChordSegment(s.start, s.end, s.label, s.confidence) for s in track.segments]
        duration, sr, voice, transpose = clip.duration, clip.sr, self.bar.voice_box.currentData(), track.transpose

        def done(audio) -> None:
            self.chord_audio, self._chord_audio_key = audio, key
            self._start()

        self._submit(lambda progress, cancel: render_chords(segments, duration, sr, voice, transpose), done)

    def _start(self) -> None:
        from engines.music.playback import PlaybackError, mix

        self.player.set_buffer(mix(self.session.clip.samples, self.chord_audio, self.bar.source_box.currentData()),
                               self.session.clip.sr)
        self.player.seek(self.playhead)
        self._region_changed(self.session.region)
        try:
            self.player.play()
        except PlaybackError as exc:  # a plain sentence; PortAudio's words are in the log
            self._say("warning", str(exc))
            return
        self.bar.play_button.setText("Pause")
        self.playing_changed.emit(True)
        self.tick()  # the player may have jumped to the loop start
        self._timer.start()

    def tick(self) -> None:
        self.playhead = self.player.position()
        self.position_changed.emit(self.playhead)
        if not self.player.playing:
            self._timer.stop()
            self.bar.play_button.setText("Play")

    def close(self, timeout: float = 2.0) -> None:
        """Stop the timer and the player; bounded even when the sound output hangs (see AudioPlayer.close)."""
        self._timer.stop()
        self.player.close(timeout=timeout)
