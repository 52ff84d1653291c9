"""The music workspace: waveform, constant-Q spectrum, chromagram and an editable, audible chord lane.

A thin view over engines/music/session.py's MusicSession: the session holds the recording, the chord track,
transpose, the loop region, the reference and its agreement score, the beat grid and key; this view composes the
widgets that draw it (timeline.py, beat_grid.py, transport.py, editing.py, results.py), forwards the user's actions
to the session and subscribes to its events. Everything that computes (opening, features, recognition, beats and
key, agreement, synthesis, exports, autosave writes) runs off the GUI thread through context.tasks or the autosave
writer.
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QPushButton, QTabWidget, QVBoxLayout, QWidget

from app.workspaces.base import WorkspaceView
from app.workspaces.music.autosave_wiring import ChordAutosave
from app.workspaces.music.editing import ChordEditBar, ChordRenameDialog
from app.workspaces.music.results import ResultsPanel
from app.workspaces.music.timeline import ChordTimelineView, display_arrays, waveform_envelope
from app.workspaces.music.transport import PlaybackController, TransportBar, weights_job
from engines.music.audio import short_name
from engines.music.chords import ChordTrack
from engines.music.session import MusicSession, OpenedRecording
from engines.music.session import chord_autosave_file  # noqa: F401 - where tests and scripts have found it

log = logging.getLogger(__name__)
SCORE_DELAY_MS = 150  # agreement is recomputed this long after the last edit, in a worker


def load_job(path: Path):
    """Worker: the session's opened recording plus the waveform envelope and display arrays the timeline draws."""
    from engines.music.session import read_recording

    def job(progress, cancel):
        opened = read_recording(path, progress=progress, cancel=cancel)
        progress(0.97, "drawing")
        opened.extra["envelope"] = waveform_envelope(opened.clip.samples, opened.clip.sr)
        opened.extra["display"] = display_arrays(opened)
        return opened

    return job


class MusicWorkspace(WorkspaceView):
    """Open a recording (or MIDI/MusicXML), see its spectrum and chords, hear them, fix them, export them."""

    def __init__(self, manifest, context, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        self.session = MusicSession()
        self.rename_dialog: ChordRenameDialog | None = None
        self._build()
        self.playback = PlaybackController(self.session, self.transport, self._submit_synth, self._say, self)
        self.player = self.playback.player
        self.playback.position_changed.connect(self._playhead_moved)
        self.autosave = ChordAutosave(self.session, self.context.notify, self)
        self._autosaver = self.autosave.writer
        self._score_timer = QTimer(self)
        self._score_timer.setSingleShot(True)
        self._score_timer.setInterval(SCORE_DELAY_MS)
        self._score_timer.timeout.connect(self._score)
        events = self.session.events
        events.opened.connect(self._opened)
        events.track_changed.connect(self._track_changed)
        events.selection_changed.connect(self._selection_changed)
        events.scores_changed.connect(self._scores_changed)
        events.transpose_changed.connect(self.transport.show_transpose)
        events.analysis_changed.connect(self._analysis_changed)
        events.snap_changed.connect(lambda on: self.edit_bar.show_snap(on, self.session.can_snap))
        self._show_controls()

    # -- the session's state, under the names the view has always had ---------------------------------
    path = property(lambda self: self.session.path)
    clip = property(lambda self: self.session.clip)
    features = property(lambda self: self.session.features)
    reference = property(lambda self: self.session.reference)
    tempo = property(lambda self: self.session.tempo)
    selected = property(lambda self: self.session.selected)
    last_scores = property(lambda self: self.session.scores)
    playhead_s = property(lambda self: self.playback.playhead)
    _chord_audio = property(lambda self: self.playback.chord_audio)

    @property
    def track(self) -> ChordTrack | None:
        return self.session.track

    @track.setter
    def track(self, track: ChordTrack | None) -> None:
        self.session.set_track(track)

    # -- layout --------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.transport = TransportBar()
        self.edit_bar = ChordEditBar()
        self.timeline = ChordTimelineView()
        self.open_sample_button = QPushButton("Open the bundled chorale (BWV 153.1)")
        self.open_sample_button.clicked.connect(self.open_sample)
        self.results = ResultsPanel(self.open_sample_button)
        # the widgets' names as tests, scripts and the Lab know them
        for part, names in ((self.transport, ("engine_box", "recognize_button", "play_button", "source_box",
                                              "voice_box", "loop_box", "transpose_spin")),
                            (self.edit_bar, ("undo_button", "redo_button", "rename_button", "split_button",
                                             "merge_button", "snap_box", "export_button", "melody_button")),
                            (self.timeline, ("overview", "overview_curve", "overview_region", "plots", "wave_plot",
                                             "cqt_plot", "chroma_plot", "chord_plot", "ref_plot", "wave_curve",
                                             "cqt_image", "chroma_image", "lane", "ref_lane", "playheads",
                                             "beat_grid")),
                            (self.results, ("title", "key_label", "analysis_label", "status"))):
            for name in names:
                setattr(self, name, getattr(part, name))
        t, e, tl = self.transport, self.edit_bar, self.timeline
        t.recognize_requested.connect(lambda: self.recognize(force=True))
        t.play_requested.connect(self.toggle_play)
        t.source_changed.connect(lambda: self.playback.source_changed())
        t.loop_toggled.connect(self.session.set_loop)
        t.transpose_requested.connect(self.set_transpose)
        e.undo_requested.connect(self.undo)
        e.redo_requested.connect(self.redo)
        e.rename_requested.connect(self._ask_rename)
        e.split_requested.connect(self.split_at_playhead)
        e.merge_requested.connect(self.merge_selected)
        e.export_requested.connect(self._ask_export)
        e.melody_requested.connect(self.send_chords_to_lab)
        e.snap_toggled.connect(self.session.set_snap)
        tl.chord_clicked.connect(self._lane_clicked)
        tl.chord_double_clicked.connect(self._lane_double_clicked)
        tl.seek_requested.connect(self.seek)
        tl.boundary_moved.connect(self.move_boundary)

        from app.workspaces.music.lab import MusicLabPanel

        self.analysis = QWidget()  # the recording, its chords and playback
        root = QVBoxLayout(self.analysis)
        root.addLayout(self.results.header)
        root.addWidget(t)
        root.addWidget(e)
        root.addWidget(tl, 1)
        root.addLayout(self.results.footer)
        self.lab = MusicLabPanel(self.context)  # harmonizer, melody generator, covers (issue 7)
        self.lab.open_recording_requested.connect(self._open_from_lab)
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

    @property
    def check_banner(self):
        return self.results.check_banner

    def _say(self, level: str, message: str) -> None:
        """Playback problems: the info line says it and that the rest works; Messages gets the sentence."""
        self.status.setText(f"{message} Everything else works.")
        self.context.notify(level, message, "")

    def _error(self, message: str, detail: str) -> None:
        self.status.setText(message)
        self.context.notify("error", message, detail)

    def _fill_engines(self) -> None:
        try:
            registry = self.context.registry()
        except Exception as exc:  # noqa: BLE001 - no engines: the view still shows audio
            self.context.notify("error", f"Music engines are unavailable: {exc}", "")
            return
        engines = self.transport.fill_engines(registry, self.context.notify)
        if engines:  # the weights' SHA-256 against their cards: in a worker (it took 50-130 ms here)
            self.context.tasks.submit(weights_job(engines), title="Checking the chord recognizers' weights",
                                      owner=f"{self.manifest.id}:weights", on_result=self.transport.show_weights_status,
                                      on_error=self._error)

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
                                  owner=f"{self.manifest.id}:load", on_result=self._loaded, on_error=self._error)

    def _loaded(self, opened: OpenedRecording) -> None:
        self.playback.stop()
        self._score_timer.stop()
        notice = opened.autosave.get("notice")
        if notice:
            self.context.notify("warning", notice, "")
        restored = self.session.open(opened)
        job = self.session.analysis_job()  # beats, meter, tempo and key: after the audio is shown, in a worker
        self.context.tasks.submit(job, title=f"Beats and key of {short_name(opened.path.name)}",
                                  owner=f"{self.manifest.id}:analysis", on_result=self.session.apply_analysis,
                                  on_error=self._error)
        if restored:  # the user's edits (and transpose) for this recording came back
            saved = opened.autosave.get("saved")
            self.status.setText(f"Restored your chord track for this recording (saved {saved}). "
                                f"'Recognize' starts again from the engine.")
            self.context.notify("info", f"{opened.path.name}: restored your chord edits from {saved}.", "")
        else:
            self.recognize()

    def _opened(self, opened: OpenedRecording) -> None:  # session event
        self.timeline.show_recording(opened, opened.extra.get("envelope")
                                     or waveform_envelope(opened.clip.samples, opened.clip.sr))
        self.seek(0.0)
        self.results.show_opened(opened)
        self.status.setText("Audio ready. Recognizing chords...")
        self.context.add_recent(opened.path)
        self.lab.current_recording = opened.path  # the query the Lab's catalog search offers first
        self.opened.emit(str(opened.path))

    def _analysis_changed(self, analysis) -> None:  # session event: beats and key arrived, or the transpose moved
        session = self.session
        self.timeline.show_beats(session.beats if session.can_snap else None)
        warned = analysis is not None and (analysis.beats is None or bool(analysis.beats.warnings))
        self.results.show_analysis(session.info_line, warned)
        self.edit_bar.show_snap(session.snap, session.can_snap)

    def _open_from_lab(self, path: str) -> None:
        """A catalog match double-clicked in the Lab: open that recording here, on the Chords tab."""
        self.tabs.setCurrentWidget(self.analysis)
        self.open_path(Path(path))

    # -- chords --------------------------------------------------------------------------------------
    def recognize(self, force: bool = False) -> None:  # noqa: ARG002 - the button's wording
        if self.clip is None:
            self.context.notify("info", "Open a recording first.", "")
            return
        engine_id = self.engine_box.currentData()
        if not engine_id:
            self.context.notify("error", "No chord recognizer is available.", "")
            return
        registry = self.context.registry()
        engine, fallback = registry.get(engine_id), registry.get("chord-templates")
        status = self.transport.weights_status(engine_id)  # the last full check's answer (else: files present)
        if status not in ("ok", "none needed"):
            self.context.notify("warning", f"{engine.info().title}: {status}. Using the template baseline.", "")
            engine = fallback
        self.status.setText(f"Recognizing chords with {engine.info().title}...")
        token = self.session.token
        run = self.context.tasks.engine_job
        request, device = {"clip": self.clip, "features": self.features}, self.context.device()

        def job(progress, cancel):
            chosen = engine
            status = engine.weights_status()  # hashes the weights file: here, never in the GUI thread
            if status not in ("ok", "none needed"):
                progress.notice(f"{engine.info().title}: {status}. Using the template baseline.")
                chosen = fallback
            return run(chosen, request, device=device)(progress, cancel)

        self.context.tasks.submit(job, title=f"Chords: {engine.id}", owner=f"{self.manifest.id}:chords",
                                  on_result=lambda track: self._recognized(track, token), on_error=self._error)

    def _recognized(self, track: ChordTrack, token: int | None = None) -> None:
        """A recognizer's answer: scored against the reference in a worker, then shown with its score."""
        if token is not None and token != self.session.token:
            return  # recognized for a recording that is no longer open
        from engines.music.session import agreement

        reference, token = self.session.reference, self.session.token
        segments = track.snapshot().segments
        self.context.tasks.submit(lambda progress, cancel: agreement(reference, segments),
                                  title="Scoring against the reference", owner=f"{self.manifest.id}:score",
                                  on_result=lambda scores: self._install_recognized(track, scores, token),
                                  on_error=self._error)

    def _install_recognized(self, track: ChordTrack, scores, token: int) -> None:
        if token != self.session.token:
            return
        self.session.set_track(track, scores=scores)
        self.results.show_recognized(track, self.context.notify)
        job = self.autosave.keep_previous_job()  # a fresh recognition replaces the edits; keep them one step back
        if job is not None:
            self.context.tasks.submit(job, title="Keeping the previous chord edits",
                                      owner=f"{self.manifest.id}:autosave", on_error=self._error)

    def set_track(self, track: ChordTrack) -> None:
        self.session.set_track(track)

    def _track_changed(self, track: ChordTrack | None) -> None:  # session event: new track, edit, undo, transpose
        self.timeline.show_track(track, self.session.selected)
        self.results.show_key(track)
        self.playback.chord_audio = None
        self._show_controls()
        self.results.show_selection(track, self.session.selected)
        if self.session.needs_scoring:
            self._score_timer.start()  # debounced: a burst of edits is scored once, off the GUI thread

    def _selection_changed(self, index: int | None) -> None:
        self.timeline.show_track(self.session.track, index)
        self._show_controls()
        self.results.show_selection(self.session.track, index)

    def _score(self) -> None:
        job = self.session.agreement_job()
        if job is not None:
            self.context.tasks.submit(job, title="Scoring against the reference", owner=f"{self.manifest.id}:score",
                                      on_result=self.session.apply_scores, on_error=self._error)

    def _scores_changed(self, scores) -> None:
        self.timeline.show_scores(scores, self.session.reference)

    def _show_controls(self) -> None:
        self.edit_bar.show_state(self.session.track, self.session.selected)
        self.transport.set_enabled_for(self.session.clip is not None)

    # -- selection and seeking -----------------------------------------------------------------------
    def select(self, index: int | None) -> None:
        self.session.select(index)

    def select_relative(self, step: int) -> None:
        track = self.track
        if track is None or not track.segments:
            return
        index = 0 if self.selected is None else self.selected + step
        index = max(0, min(len(track.segments) - 1, index))
        self.select(index)
        self.seek(track.segments[index].start)

    def _lane_clicked(self, t: float, index: int) -> None:
        self.select(index if index >= 0 else None)
        self.seek(t)

    def _lane_double_clicked(self, t: float, index: int) -> None:  # noqa: ARG002
        if index >= 0:
            self.select(index)
            self._ask_rename()

    def seek(self, t: float) -> None:
        dur = self.clip.duration if self.clip is not None else 0.0
        self.playback.seek(min(max(float(t), 0.0), dur))
        self.timeline.set_playhead(self.playback.playhead)

    def _playhead_moved(self, t: float) -> None:
        self.timeline.set_playhead(t)

    # -- edits (the session makes them; its events redraw) -------------------------------------------
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
            self.session.rename(self.selected, label)
        except ValueError as exc:
            return (f"'{label}' is not a chord the workstation reads ({exc}). Examples: Am, G7, Bbmaj7, C/E, "
                    f"F#:min7, N.")
        return None

    def rename_selected(self, label: str) -> bool:
        problem = self._rename_problem(label)
        if problem is not None:
            self.context.notify("error", problem, "")
        return problem is None

    def _edit(self, what: str, fn, *args) -> None:
        if self.track is None:
            return
        try:
            fn(*args)
        except ValueError as exc:
            self.context.notify("info", f"{what}: {exc}.", "")

    def split_at_playhead(self) -> None:
        self._edit("Cannot split here", self.session.split_at, self.playhead_s)

    def merge_selected(self) -> None:
        if self.selected is not None:
            self._edit("Cannot merge", self.session.merge_next, self.selected)

    def move_boundary(self, index: int, t: float) -> None:
        self._edit("Cannot move the boundary", self.session.move_boundary, index, t)

    def undo(self) -> None:
        self.session.undo()

    def redo(self) -> None:
        self.session.redo()

    def set_transpose(self, semitones: int) -> None:
        if self.transpose_spin.value() != semitones:
            self.transpose_spin.setValue(semitones)  # re-enters through valueChanged
            return
        self.session.set_transpose(semitones)

    # -- playback ------------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        self.playback.toggle()

    def _submit_synth(self, job, on_result) -> None:
        self.context.tasks.submit(job, title="Synthesizing chords", owner=f"{self.manifest.id}:synth",
                                  on_result=on_result, on_error=self._error)

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
        from engines.music.export import export_track

        snapshot, clip, tempo = self.track.snapshot(), self.clip, self.tempo
        melody = clip.midi if clip is not None else None
        voice, out = self.voice_box.currentData(), Path(out)

        beats = self.session.beats if self.session.can_snap else None
        meter = None
        if beats is not None and tempo is None:  # the beat grid already found: the lead sheet uses its bars
            tempo, first_beat, meter = beats.bpm, float(beats.downbeats[0]), beats.meter
        else:
            first_beat = 0.0

        def job(progress, cancel):
            bpm, first = tempo, first_beat
            if out.suffix.lower() in (".musicxml", ".xml") and bpm is None and clip is not None:
                from engines.music.export import estimate_beats

                progress(None, "finding the beat for the lead sheet")
                found = estimate_beats(clip.samples, clip.sr)
                if found:
                    bpm, first = found
            cancel.raise_if_cancelled()
            return (export_track(snapshot, out, melody=melody, tempo_bpm=bpm, voice=voice, first_beat_s=first,
                                 meter=meter), bpm)

        def done(result) -> None:
            path, bpm = result
            extra = (f" (lead sheet at {bpm:.0f} bpm{', ' + meter if meter else ''})"
                     if path.suffix.lower() in (".musicxml", ".xml") and bpm else "")
            self.context.notify("info", f"Exported {path.name} to {path.parent}{extra}", "")

        self.context.tasks.submit(job, title=f"Exporting {short_name(out.name)}", owner=f"{self.manifest.id}:export",
                                  on_result=done, on_error=self._error)

    def send_chords_to_lab(self) -> None:
        if self.track is None or not self.track.segments:
            self.context.notify("info", "Recognize or open chords first; then they can seed the melody generator.", "")
            return
        self.lab.set_progression([seg.label for seg in self.track.segments])
        self.tabs.setCurrentWidget(self.lab)

    def shutdown(self) -> None:
        """Bounded and non-blocking without a sound card: stop scoring and playback, write pending edits."""
        self._score_timer.stop()
        self.playback.close(timeout=2.0)
        self.autosave.close(timeout=3.0)  # the last edits reach the disk before the window goes
        self.lab.shutdown()
