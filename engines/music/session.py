"""The music workspace's state without Qt: the open recording, its chord track, transpose, playback region,
reference and agreement, dirty state and what to autosave (napari's evented-model idea, with psygnal).

The view draws a :class:`MusicSession` and forwards the user's actions to it; every change is announced on
``session.events`` (a psygnal ``SignalGroup``), so a test, a script or a batch job drives the same workflow with no
screen. File work and the agreement score (mir_eval) are plain functions for a worker thread:
:func:`read_recording` opens a file (audio, features, reference, tempo, saved edits) and
:meth:`MusicSession.agreement_job` scores a snapshot of the track; the session itself never blocks.

Opening another recording resets everything (track, selection, transpose, loop region, scores, beats, key, dirty
state): transpose belongs to one file and comes back only with that file's autosave. The beat grid, meter, tempo and
key are computed after opening (:meth:`MusicSession.analysis_job`, off the GUI thread), held by the session, saved
nowhere; with "snap to beats" on, chord boundary edits land on the nearest beat.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from psygnal import Signal, SignalGroup

from engines.core.engine import CancelToken, ProgressFn, no_progress
from engines.core.model_engine import as_token
from engines.music.audio import AudioClip, Features
from engines.music.beats import MIN_BEATS, BeatEstimate
from engines.music.chords import (CHORD_AUTOSAVE_SCHEMA, ChordSegment, ChordTrack, chord_autosave_payload,
                                  chord_track_from_autosave)

log = logging.getLogger(__name__)

AUTOSAVE_KIND = "music-chords"
REFERENCE_SUFFIXES = (".lab", ".reference.lab")
EDGE_S = 0.06  # snapped boundaries stay this far inside a chord (ChordTrack refuses closer than 0.05 s)
SNAP_CONFIDENCE = 0.15  # snapping is on by default when the downbeat estimate is surer than this


# -- file work (worker threads) ----------------------------------------------------------------------------------
def chord_autosave_file(clip: AudioClip) -> Path:
    """Where the chord edits of this recording are autosaved (keyed by its content, so a renamed copy keeps them)."""
    from engines.core.autosave import autosave_path

    return autosave_path(AUTOSAVE_KIND, clip.source, content_key=clip.content_hash)


def read_chord_autosave(clip: AudioClip, name: str) -> dict:
    """The recording's saved chord edits, validated; a bad file is set aside with a sentence for the user.

    Returns {"file", "track", "saved", "notice"}. Edits saved by earlier versions (music-edits/) are read once.
    Runs file I/O: call it off the GUI thread.
    """
    from engines.core.autosave import load_autosave

    target = chord_autosave_file(clip)
    out: dict[str, Any] = {"file": target, "track": None, "saved": None, "notice": None}
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


def read_reference(path: Path, clip: AudioClip, progress: ProgressFn = no_progress) -> ChordTrack | None:
    """The reference chords of a recording: a .lab beside it (``song.lab`` or ``song.reference.lab``), else a
    score's own chords (music21 chordify); None when there is none or it cannot be read (logged)."""
    path = Path(path)
    for cand in (path.with_suffix(".lab"), path.with_name(path.stem + ".reference.lab")):
        if cand.exists():
            try:
                reference = ChordTrack.read_lab(cand, clip.duration)
                reference.source = cand.name
                return reference
            except Exception as exc:  # noqa: BLE001 - a bad reference is reported, not fatal
                log.warning("unreadable reference %s: %s", cand, exc)
                return None
    if clip.midi is not None:  # a score: its own chords are the reference
        from engines.music.chorales import score_reference

        progress(0.95, "reading the score's chords")
        segs = score_reference(path, clip.midi)
        if segs:
            return ChordTrack(segs, clip.duration, source="the score (music21 chordify)")
    return None


def recording_tempo(clip: AudioClip) -> float | None:
    """The first tempo of a MIDI/MusicXML input (beats per minute); None for audio."""
    if clip.midi is None:
        return None
    try:
        return float(clip.midi.get_tempo_changes()[1][0])
    except Exception:  # noqa: BLE001 - a score without tempo marks
        return None


def agreement(reference: ChordTrack | None, segments: list[ChordSegment]) -> dict[str, float] | None:
    """mir_eval's weighted chord symbol recall of ``segments`` against ``reference`` ({"root", "majmin",
    "sevenths"}); None when there is no reference or mir_eval cannot read it (logged). Seconds of CPU on a long
    recording: call it off the GUI thread."""
    if reference is None or not reference.segments:
        return None
    from engines.music.evaluate import wcsr

    try:
        scores, _ = wcsr(reference.segments, segments)
    except Exception as exc:  # noqa: BLE001 - a reference mir_eval cannot read is reported, not fatal
        log.warning("cannot score against the reference: %s", exc)
        return None
    return scores


@dataclass(frozen=True)
class RecordingAnalysis:
    """What :func:`analyse_recording` found: the beat grid (beats, downbeats, meter, tempo) and the key (as
    recorded, before any transpose); either is None when it could not be estimated."""

    beats: BeatEstimate | None
    key: Any = None  # engines.music.keys.KeyEstimate

    @property
    def has_grid(self) -> bool:
        """True when there is a steady pulse to draw and snap to (the estimator found enough beats and bars)."""
        return has_beat_grid(self.beats)


def has_beat_grid(beats: BeatEstimate | None) -> bool:
    return beats is not None and len(beats.beats) >= MIN_BEATS and len(beats.downbeats) > 0


def analyse_recording(clip: AudioClip, features: Features | None = None, *, progress: ProgressFn = no_progress,
                      cancel: CancelToken | None = None) -> RecordingAnalysis:
    """Beats, downbeats, meter and tempo (engines.music.beats) and the key (the learned key model over the
    log-CQT, Krumhansl-Schmuckler when its weights cannot be used) of ``clip``. Seconds of CPU: call it off the GUI
    thread."""
    from engines.music.beats import estimate_beats
    from engines.music.keys import estimate_key_audio

    cancel = as_token(cancel)
    progress(0.1, "finding the beat")
    try:
        beats = estimate_beats(clip.samples, clip.sr)
    except Exception as exc:  # noqa: BLE001 - no grid is not fatal: the chords still work
        log.warning("beat tracking failed on %s: %s", clip.source, exc)
        beats = None
    cancel.raise_if_cancelled()
    progress(0.8, "estimating the key")
    if features is None or not features.n_frames:
        from engines.music.audio import compute_features

        features = compute_features(clip, cancel=cancel)
    key = estimate_key_audio(features.logcqt) if features.n_frames else None
    progress(1.0, "done")
    return RecordingAnalysis(beats, key)


def describe_analysis(analysis: RecordingAnalysis | None, transpose: int = 0) -> str:
    """The info line: "tempo 120 bpm · 4/4 · key A minor" (the key as displayed, after ``transpose``), then the
    estimator's warning when it has one; "" before the analysis arrives."""
    if analysis is None:
        return ""
    beats, key = analysis.beats, analysis.key
    parts = []
    if has_beat_grid(beats):
        parts += [f"tempo {beats.bpm:.0f} bpm", beats.meter]
    if key is not None:
        parts.append(f"key {key.transpose(transpose).name}")
    text = " · ".join(parts)
    warning = beats.warnings[0] if beats is not None and beats.warnings else ""
    if beats is None:
        warning = "the beat could not be tracked: the beat grid is not shown"
    if not warning and key is not None and key.warning:
        warning = key.warning
    if warning:
        text = f"{text} · {warning}" if text else warning
    return text


@dataclass
class OpenedRecording:
    """What :func:`read_recording` found for one file (built in a worker, handed to :meth:`MusicSession.open`)."""

    path: Path
    clip: AudioClip
    features: Features | None = None
    reference: ChordTrack | None = None
    tempo: float | None = None
    autosave: dict = field(default_factory=dict)  # read_chord_autosave's answer ({} when the clip has no hash)
    scores: dict[str, float] | None = None  # agreement of the restored track with the reference
    extra: dict = field(default_factory=dict)  # what the caller's worker added (e.g. a waveform to draw)

    @property
    def restorable(self) -> ChordTrack | None:
        """The autosaved track when it holds the user's edits (a recognizer's own output is not restored)."""
        track = self.autosave.get("track")
        return track if track is not None and track.source == "edited" else None


def read_recording(path: str | Path, *, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                   features: bool = True) -> OpenedRecording:
    """Open a recording for the session: audio (or MIDI/MusicXML rendered), features, reference chords, tempo,
    the saved chord edits and their agreement with the reference. Raises EngineError with a plain reason."""
    from engines.music.audio import compute_features, load_audio

    path = Path(path)
    cancel = as_token(cancel)
    clip = load_audio(path, progress=progress, cancel=cancel)
    saved = read_chord_autosave(clip, path.name) if clip.content_hash else {}
    feats = compute_features(clip, progress=progress, cancel=cancel) if features else None
    cancel.raise_if_cancelled()
    opened = OpenedRecording(path, clip, feats, read_reference(path, clip, progress), recording_tempo(clip), saved)
    if opened.restorable is not None:
        opened.scores = agreement(opened.reference, opened.restorable.segments)
    return opened


def set_previous_autosave_aside(target: Path | None, writer) -> Path | None:
    """Worker: after a fresh recognition, keep the edits autosaved so far one step back (``.previous.json``)."""
    if target is None:
        return None
    writer.flush()
    if target.exists():
        previous = target.with_suffix(".previous.json")
        target.replace(previous)
        return previous
    return None


# -- the session -------------------------------------------------------------------------------------------------
class MusicSessionEvents(SignalGroup):
    """What a view subscribes to. Every signal is emitted on the thread that changed the session (the GUI's)."""

    opened = Signal(object)  # OpenedRecording
    track_changed = Signal(object)  # ChordTrack or None: a new track, an edit, undo, redo, transpose
    transpose_changed = Signal(int)
    selection_changed = Signal(object)  # segment index or None
    region_changed = Signal(object)  # (start s, end s) to loop, or None
    scores_changed = Signal(object)  # {"root", "majmin", "sevenths"} or None
    dirty_changed = Signal(bool)
    analysis_changed = Signal(object)  # RecordingAnalysis or None (beats, meter, tempo, key)
    snap_changed = Signal(bool)


class MusicSession:
    """One open recording and the user's work on it. Qt-free; mutate it from one thread (the GUI's)."""

    def __init__(self) -> None:
        self.events = MusicSessionEvents()
        self.recording: OpenedRecording | None = None
        self.track: ChordTrack | None = None
        self.selected: int | None = None
        self.transpose = 0
        self.loop = False
        self.region: tuple[float, float] | None = None
        self.scores: dict[str, float] | None = None
        self.dirty = False
        self.autosave_file: Path | None = None
        self.token = 0  # bumped on every open: results computed for an earlier recording are dropped
        self._scored_revision: tuple[int, int] | None = None
        self.analysis: RecordingAnalysis | None = None
        self.snap = False

    # -- what is open ------------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self.recording.path if self.recording else None

    @property
    def clip(self) -> AudioClip | None:
        return self.recording.clip if self.recording else None

    @property
    def features(self) -> Features | None:
        return self.recording.features if self.recording else None

    @property
    def reference(self) -> ChordTrack | None:
        return self.recording.reference if self.recording else None

    @property
    def tempo(self) -> float | None:
        return self.recording.tempo if self.recording else None

    @property
    def beats(self) -> BeatEstimate | None:
        return self.analysis.beats if self.analysis else None

    @property
    def key(self):
        """The recording's key as displayed (transposed with the chord track); None before the analysis."""
        key = self.analysis.key if self.analysis else None
        return key.transpose(self.transpose) if key is not None else None

    @property
    def info_line(self) -> str:
        return describe_analysis(self.analysis, self.transpose)

    def open(self, opened: OpenedRecording) -> bool:
        """Show ``opened`` instead of whatever was open (everything resets); True when its autosaved edits were
        restored (then no recognition is needed)."""
        self.token += 1
        self.recording = opened
        self.track, self.selected, self.scores, self.region = None, None, None, None  # the loop switch stays
        self.transpose = 0
        self.autosave_file = opened.autosave.get("file")
        self._scored_revision = None
        self._set_dirty(False)
        self.analysis = None
        self.events.opened.emit(opened)
        self.events.analysis_changed.emit(None)
        self._set_snap(False)
        self.events.transpose_changed.emit(0)
        restored = opened.restorable
        if restored is not None:
            self.transpose = restored.transpose
            self.events.transpose_changed.emit(self.transpose)
            self.set_track(restored, scores=opened.scores)
        else:
            self.set_track(None)
        return restored is not None

    # -- the chord track ---------------------------------------------------------------------------------
    def set_track(self, track: ChordTrack | None, *, scores: dict[str, float] | None = None) -> None:
        """Show ``track`` (a recognizer's answer or restored edits) with the session's transpose; ``scores`` is its
        agreement with the reference when already computed (else :meth:`needs_scoring` says so)."""
        if track is not None and track.transpose != self.transpose:
            track.set_transpose(self.transpose)
        self.track, self.selected = track, None
        self.scores = scores
        self._scored_revision = (id(track), track.revision) if track is not None and scores is not None else None
        self.events.track_changed.emit(track)
        self.events.selection_changed.emit(None)
        self.events.scores_changed.emit(scores)
        self._update_region()

    def _edited(self) -> None:
        track = self.track
        if self.selected is not None and track is not None and not 0 <= self.selected < len(track.segments):
            self.selected = None
            self.events.selection_changed.emit(None)
        self._set_dirty(True)
        self.events.track_changed.emit(track)
        self._update_region()

    def _need_track(self) -> ChordTrack:
        if self.track is None:
            raise ValueError("there is no chord track yet")
        return self.track

    def rename(self, index: int, label: str) -> None:
        """Rename chord ``index`` (read in the displayed, transposed key); ValueError for a name it cannot read."""
        self._need_track().rename(index, label)
        self._edited()

    def split_at(self, t: float) -> int:
        """Split the chord under time ``t`` there (at the nearest beat inside it when snapping); returns its index
        (selected). ValueError when it cannot."""
        track = self._need_track()
        index = track.index_at(t)
        if index is None:
            raise ValueError("there is no chord at the playhead")
        seg = track.segments[index]
        track.split(index, self.snap_time(t, seg.start + EDGE_S, seg.end - EDGE_S))
        self.selected = index
        self.events.selection_changed.emit(index)
        self._edited()
        return index

    def merge_next(self, index: int) -> None:
        self._need_track().merge_next(index)
        self._edited()

    def move_boundary(self, index: int, t: float) -> None:
        """Move the boundary after chord ``index`` to ``t`` (to the nearest beat between its neighbours' edges
        when snapping)."""
        track = self._need_track()
        if 0 <= index < len(track.segments) - 1:
            t = self.snap_time(t, track.segments[index].start + EDGE_S, track.segments[index + 1].end - EDGE_S)
        track.move_boundary(index, t)
        self._edited()

    def undo(self) -> bool:
        if self.track is None or not self.track.undo():
            return False
        self._edited()
        return True

    def redo(self) -> bool:
        if self.track is None or not self.track.redo():
            return False
        self._edited()
        return True

    def set_transpose(self, semitones: int) -> None:
        """Transpose the chord track (capo) for display, playback and export; the user's choice for this file."""
        semitones = int(semitones)
        if not -11 <= semitones <= 11:
            raise ValueError(f"transpose must be -11..11 semitones, not {semitones}")
        if semitones == self.transpose and (self.track is None or self.track.transpose == semitones):
            return
        self.transpose = semitones
        self.events.transpose_changed.emit(semitones)
        if self.analysis is not None:
            self.events.analysis_changed.emit(self.analysis)  # the key shown moves with the transpose
        if self.track is not None:
            self.track.set_transpose(semitones)
            self.track.source = "edited"  # autosaved and restored with the file
            self._edited()

    # -- beats, meter, tempo and key (computed off the GUI thread) ----------------------------------------
    def analysis_job(self) -> Callable[[ProgressFn, CancelToken], tuple[int, RecordingAnalysis]] | None:
        """A job for the task adapter that finds the open recording's beats and key; hand its result to
        :meth:`apply_analysis`. None when nothing is open."""
        if self.recording is None:
            return None
        token, clip, features = self.token, self.recording.clip, self.recording.features

        def job(progress, cancel):
            return token, analyse_recording(clip, features, progress=progress, cancel=cancel)

        return job

    def apply_analysis(self, result: tuple[int, RecordingAnalysis]) -> bool:
        """Take an :meth:`analysis_job` result; one for a recording that is no longer open is dropped (False)."""
        token, analysis = result
        if token != self.token or self.recording is None:
            return False
        self.set_analysis(analysis)
        return True

    def set_analysis(self, analysis: RecordingAnalysis | None) -> None:
        """Hold ``analysis`` for the open recording; snapping goes on when its downbeats are sure enough."""
        self.analysis = analysis
        self.events.analysis_changed.emit(analysis)
        sure = analysis is not None and analysis.has_grid and analysis.beats.confidence > SNAP_CONFIDENCE
        self._set_snap(bool(sure))

    def analyse_now(self) -> RecordingAnalysis | None:
        """Analyse on the calling thread (scripts and tests; a view submits :meth:`analysis_job` instead)."""
        job = self.analysis_job()
        if job is None:
            return None
        self.apply_analysis(job(no_progress, CancelToken()))
        return self.analysis

    @property
    def can_snap(self) -> bool:
        return self.analysis is not None and self.analysis.has_grid

    def set_snap(self, on: bool) -> None:
        """Snap chord boundary edits to the nearest beat (only possible when there is a beat grid)."""
        self._set_snap(bool(on) and self.can_snap)

    def _set_snap(self, on: bool) -> None:
        if on != self.snap:
            self.snap = on
            self.events.snap_changed.emit(on)

    def snap_time(self, t: float, lo: float = float("-inf"), hi: float = float("inf")) -> float:
        """``t`` moved to the nearest beat within [lo, hi] when snapping is on; ``t`` itself when it is off or no
        beat lies in that range."""
        beats = self.beats
        if not self.snap or beats is None or not len(beats.beats):
            return float(t)
        inside = beats.beats[(beats.beats >= lo) & (beats.beats <= hi)]
        if not len(inside):
            return float(t)
        return float(inside[int(abs(inside - t).argmin())])

    # -- selection and playback region -------------------------------------------------------------------
    def select(self, index: int | None) -> None:
        track = self.track
        if track is None:
            return
        self.selected = index if index is not None and 0 <= index < len(track.segments) else None
        self.events.selection_changed.emit(self.selected)
        self._update_region()

    def set_loop(self, on: bool) -> None:
        """Loop the selected chord while playing (the region follows the selection and its edits)."""
        self.loop = bool(on)
        self._update_region()

    def _update_region(self) -> None:
        region = None
        if self.loop and self.track is not None and self.selected is not None:
            seg = self.track.segments[self.selected]
            region = (seg.start, seg.end)
        if region != self.region:
            self.region = region
            self.events.region_changed.emit(region)

    # -- agreement with the reference (computed off the GUI thread) --------------------------------------
    @property
    def needs_scoring(self) -> bool:
        """True when there is a reference and the track changed since its agreement was computed."""
        if self.reference is None or self.track is None or not self.reference.segments:
            return False
        return self._scored_revision != (id(self.track), self.track.revision)

    def agreement_job(self) -> Callable[[ProgressFn, CancelToken], tuple[tuple, dict | None]] | None:
        """A job for the task adapter that scores the track as it is now (a snapshot), or None when there is
        nothing to score. Hand its result to :meth:`apply_scores`."""
        if self.reference is None or self.track is None:
            return None
        key = (self.token, id(self.track), self.track.revision)
        reference, segments = self.reference, self.track.snapshot().segments

        def job(progress, cancel):  # noqa: ARG001 - one mir_eval call, seconds at most
            return key, agreement(reference, segments)

        return job

    def apply_scores(self, result: tuple[tuple, dict | None]) -> bool:
        """Take an :meth:`agreement_job` result; a result for an older state of the track is dropped (False)."""
        (token, track_id, revision), scores = result
        if self.track is None or (token, track_id, revision) != (self.token, id(self.track), self.track.revision):
            return False
        self._scored_revision = (track_id, revision)
        self.scores = scores
        self.events.scores_changed.emit(scores)
        return True

    def score_now(self) -> dict[str, float] | None:
        """Score on the calling thread (scripts and tests; a view submits :meth:`agreement_job` instead)."""
        job = self.agreement_job()
        if job is None:
            return None
        self.apply_scores(job(no_progress, CancelToken()))
        return self.scores

    # -- autosave (written by engines.core.autosave's background writer) --------------------------------
    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self.events.dirty_changed.emit(dirty)

    def autosave_payload(self) -> dict | None:
        """What to autosave for the open recording: the track with its transpose; None when there is nothing."""
        if self.track is None or self.path is None or self.autosave_file is None:
            return None
        return chord_autosave_payload(self.track, str(self.path))

    def save_autosave(self, writer) -> bool:
        """Queue the autosave on ``writer`` (an engines.core.autosave.AutosaveWriter: no disk I/O here); the
        session is clean afterwards. False when there is nothing to save."""
        payload = self.autosave_payload()
        if payload is None:
            return False
        writer.save(self.autosave_file, payload, schema=CHORD_AUTOSAVE_SCHEMA)
        self._set_dirty(False)
        return True
