"""The music workspace's workflows driven headless through engines/music/session.py: open the bundled chorale
recording (with its reference .lab beside it), recognize its chords with the classical engine, edit, undo, redo,
transpose, score agreement with the reference, autosave, reopen from the autosave, open another recording; the beat
grid, meter, tempo and key found after opening, and chord boundary edits snapped to the beats."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.core.autosave import AutosaveWriter
from engines.music.beats import BeatEstimate
from engines.music.chords import ChordSegment, ChordTrack
from engines.music.session import (MusicSession, OpenedRecording, RecordingAnalysis, agreement, describe_analysis,
                                   read_recording)

ROOT = Path(__file__).resolve().parents[2]
CHORALE = ROOT / "resources" / "samples" / "music" / "bwv153.1-piano.ogg"
SONG = ROOT / "resources" / "samples" / "music" / "sectoid-feelings-excerpt.ogg"


@pytest.fixture(scope="module")
def recognized():
    """The classical engine's chords for the chorale (computed once; tests edit copies)."""
    from engines.music.audio import compute_features, load_audio
    from engines.music.recognize import TemplateChordEngine

    clip = load_audio(CHORALE)
    engine = TemplateChordEngine()
    engine.load("cpu")
    return engine.predict({"clip": clip, "features": compute_features(clip, use_cache=False)})


def save_and_flush(session) -> None:
    """Autosave a session through a real background writer and wait until it is on disk."""
    writer = AutosaveWriter()
    try:
        assert session.save_autosave(writer) and not session.dirty
        assert writer.flush()
    finally:
        writer.close()


def open_chorale(session: MusicSession, **kw) -> OpenedRecording:
    opened = read_recording(CHORALE, features=False, **kw)
    session.open(opened)
    return opened


def test_opening_the_chorale_finds_its_reference_and_a_clean_session():
    session = MusicSession()
    seen = []
    session.events.opened.connect(seen.append)
    opened = open_chorale(session)
    assert seen == [opened]
    assert session.path == CHORALE and session.clip.sr == 22050 and 40 < session.clip.duration < 50
    assert session.reference is not None and session.reference.source == "bwv153.1-piano.lab"
    assert len(session.reference.segments) > 20
    assert session.track is None and session.transpose == 0 and not session.dirty
    assert session.autosave_file is not None and session.autosave_file.parent.name == "music-chords"


def test_edit_undo_redo_transpose_and_agreement(recognized):
    session = MusicSession()
    open_chorale(session)
    changes, regions, scores = [], [], []
    session.events.track_changed.connect(changes.append)
    session.events.region_changed.connect(regions.append)
    session.events.scores_changed.connect(scores.append)
    session.set_track(recognized.snapshot())
    track = session.track
    assert session.needs_scoring
    first = session.score_now()
    assert 0.6 < first["majmin"] <= 1.0 and not session.needs_scoring
    assert scores[-1] == first

    n, seg = len(track.segments), track.segments[3]
    original = seg.label
    session.rename(3, "C/E")
    assert track.segments[3].label == "C:maj/3" and session.dirty and session.needs_scoring
    index = session.split_at((seg.start + seg.end) / 2)
    assert index == 3 and session.selected == 3 and len(track.segments) == n + 1
    session.merge_next(3)
    assert len(track.segments) == n
    with pytest.raises(ValueError, match="not a note name|unknown chord"):
        session.rename(3, "H7")
    session.set_loop(True)
    assert session.region == (track.segments[3].start, track.segments[3].end) and regions[-1] == session.region
    session.move_boundary(3, track.segments[3].end - 0.1)
    assert session.region == (track.segments[3].start, track.segments[3].end)  # the loop follows the edit
    session.set_transpose(2)
    assert track.display_label(track.segments[3]) == "D:maj/3" and track.display_key() == "B minor"
    assert session.undo() and session.undo() and session.undo()
    assert len(track.segments) == n and track.segments[3].label == "C:maj/3"
    assert session.undo() and track.segments[3].label == original
    assert not session.undo()
    assert session.redo() and track.segments[3].label == "C:maj/3"
    assert track.transpose == 2  # transpose is a setting, not an edit undo takes back
    assert changes[-1] is track

    # a score computed for an older state is dropped; the current one is kept
    stale = session.agreement_job()
    session.rename(0, "F#")
    assert not session.apply_scores(stale(None, None))
    fresh = session.agreement_job()
    assert session.apply_scores(fresh(None, None)) and not session.needs_scoring
    assert session.scores == agreement(session.reference, track.segments)


def test_autosave_then_reopen_restores_edits_and_transpose(recognized):
    session = MusicSession()
    open_chorale(session)
    session.set_track(recognized.snapshot())
    session.set_transpose(-3)
    session.rename(3, "Bb7")
    save_and_flush(session)
    stored = json.loads(session.autosave_file.read_text(encoding="utf-8"))
    assert stored["schema"] == 1 and stored["data"]["transpose"] == -3

    again = MusicSession()  # as after a restart
    opened = read_recording(CHORALE, features=False)
    assert opened.restorable is not None and opened.scores is not None  # scored in the worker, with the read
    assert again.open(opened)
    assert again.track.segments[3].label == session.track.segments[3].label == "C#:7"  # Bb7 typed at -3 is C#7 in the recording
    assert again.transpose == -3 and again.track.transpose == -3 and not again.dirty
    assert again.scores == opened.scores and not again.needs_scoring


def test_opening_another_recording_resets_everything(recognized):
    session = MusicSession()
    open_chorale(session)
    session.set_track(recognized.snapshot())
    session.set_transpose(4)
    session.select(2)
    session.set_loop(True)
    session.score_now()
    dirty = []
    session.events.dirty_changed.connect(dirty.append)
    session.open(read_recording(SONG, features=False))
    assert session.path == SONG and session.reference is None
    assert session.track is None and session.selected is None and session.region is None
    assert session.transpose == 0 and session.scores is None and not session.dirty and dirty == [False]
    assert session.agreement_job() is None and not session.needs_scoring
    assert session.autosave_payload() is None
    # a recognizer's track for the new file starts untransposed
    session.set_track(recognized.snapshot())
    assert session.track.transpose == 0


# -- beats, meter, tempo, key and snapping ---------------------------------------------------------------------
def test_the_chorale_is_analysed_as_four_four_in_a_minor_and_the_key_follows_transpose():
    session = MusicSession()
    open_chorale(session)
    changes, snaps = [], []
    session.events.analysis_changed.connect(changes.append)
    session.events.snap_changed.connect(snaps.append)
    analysis = session.analyse_now()
    beats = analysis.beats
    assert changes == [analysis] and analysis.has_grid
    assert beats.beats_per_bar == 4 and 60 < beats.bpm < 90  # a chorale in common time, about 76 crotchets a minute
    # the beats are where the estimator said, evenly spaced over the whole recording; bars are every 4th beat
    gaps = abs(beats.beats[1:] - beats.beats[:-1])
    assert len(beats.beats) > 40 and abs(gaps.mean() - 60 / beats.bpm) < 0.05
    assert set(beats.downbeats.round(4)) <= set(beats.beats.round(4))
    assert session.key.name == "A minor"  # the reference's key (BWV 153.1)
    assert session.key.method != "krumhansl-schmuckler" and not session.key.warning  # the learned key model
    assert session.info_line.startswith(f"tempo {beats.bpm:.0f} bpm · 4/4 · key A minor")
    assert beats.confidence > 0.15 and session.snap and snaps == [True]  # sure downbeats: snapping is on
    session.set_transpose(3)
    assert session.key.name == "C minor" and "key C minor" in session.info_line and changes[-1] is analysis
    assert session.analysis.key.name == "A minor"  # what was recorded stays as it was
    # the analysis is saved nowhere: not in the chord autosave
    session.set_track(ChordTrack([ChordSegment(0.0, 10.0, "A:min")], 10.0))
    assert not any(k in session.autosave_payload() for k in ("beats", "downbeats", "key_estimate", "tempo"))


def test_the_real_song_has_a_grid_and_a_stale_analysis_is_dropped():
    session = MusicSession()
    session.open(read_recording(SONG, features=False))
    stale = session.analysis_job()
    open_chorale(session)  # another recording opened before the song's analysis came back
    assert not session.apply_analysis(stale(lambda *a: None, None))
    assert session.analysis is None and not session.snap
    session.open(read_recording(SONG, features=False))
    analysis = session.analyse_now()
    # the song's chords change every ~2.47 s: 97 bpm in 4/4 with a chord per bar (or a metrical level of it)
    assert analysis.has_grid and 60 < analysis.beats.bpm < 200 and analysis.key is not None
    beats = analysis.beats
    assert beats.beats[0] < 1.0 and beats.beats[-1] > session.clip.duration - 2.0  # the grid spans the song
    assert session.snap == (beats.confidence > 0.15)


def _grid_session(confidence: float = 0.6) -> MusicSession:
    """A session over the chorale with a known grid injected: a beat every 0.5 s, bars of 4 from 0.0 s."""
    import numpy as np

    session = MusicSession()
    open_chorale(session)
    beats = np.arange(0.0, 20.0, 0.5)
    session.set_analysis(RecordingAnalysis(BeatEstimate(beats, beats[::4], 120.0, 4, confidence), None))
    session.set_track(ChordTrack([ChordSegment(0.0, 4.0, "A:min"), ChordSegment(4.0, 8.0, "E:maj"),
                                  ChordSegment(8.0, 12.0, "A:min")], 12.0))
    return session


def test_boundary_edits_snap_to_the_nearest_beat_only_when_snapping_is_on():
    session = _grid_session()
    assert session.snap and session.info_line == "tempo 120 bpm · 4/4"
    session.move_boundary(0, 5.37)
    assert session.track.segments[0].end == session.track.segments[1].start == 5.5
    session.move_boundary(0, 5.2)
    assert session.track.segments[0].end == 5.0
    # past the next chord's end: the nearest beat that leaves the next chord some length
    session.move_boundary(0, 11.9)
    assert session.track.segments[0].end == 7.5
    session.split_at(9.13)  # the split lands on a beat too
    assert [s.start for s in session.track.segments] == [0.0, 7.5, 8.0, 9.0]
    session.undo()
    session.set_snap(False)
    assert not session.snap
    session.move_boundary(0, 5.37)
    assert session.track.segments[0].end == 5.37
    session.split_at(9.13)
    assert [s.start for s in session.track.segments] == [0.0, 5.37, 8.0, 9.13]


def test_snapping_defaults_off_for_an_unsure_grid_and_is_refused_without_one():
    import numpy as np

    assert not _grid_session(confidence=0.1).snap  # unsure bar lines: the user may still turn it on
    unsure = _grid_session(confidence=0.1)
    unsure.set_snap(True)
    assert unsure.snap
    session = _grid_session()
    beats = np.arange(0.0, 20.0, 0.5)
    warning = "no steady pulse: the recording has no rhythmic onsets to follow; the beat grid is not shown"
    session.set_analysis(RecordingAnalysis(BeatEstimate(beats, beats[:0], 120.0, 4, 0.0, (warning,)), None))
    assert not session.can_snap and not session.snap
    session.set_snap(True)
    assert not session.snap
    assert session.info_line == warning
    session.move_boundary(0, 5.37)
    assert session.track.segments[0].end == 5.37
    assert describe_analysis(None) == ""


def test_a_drone_has_no_steady_pulse_and_says_so():
    import numpy as np

    from engines.music.audio import AudioClip
    from engines.music.session import analyse_recording

    sr = 22050
    t = np.arange(int(sr * 12)) / sr
    drone = (0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 165 * t)).astype(np.float32)
    analysis = analyse_recording(AudioClip(drone, sr, source="drone"))
    assert not analysis.has_grid and "beat grid is not shown" in describe_analysis(analysis)
    assert analysis.key is not None and analysis.key.tonic == 9  # A and E: the drone's fifth, A major or minor


NO_QT = r"""
import json, sys
from engines.core.autosave import AutosaveWriter
from engines.music.session import MusicSession, read_recording
from engines.music.recognize import TemplateChordEngine
opened = read_recording(sys.argv[1])
session = MusicSession()
session.open(opened)
engine = TemplateChordEngine(); engine.load("cpu")
session.set_track(engine.predict({"clip": opened.clip, "features": opened.features}))
session.rename(1, "G7"); session.undo(); session.redo(); session.set_transpose(1)
scores = session.score_now()
analysis = session.analyse_now()
writer = AutosaveWriter(); session.save_autosave(writer); writer.close()
print("JSON" + json.dumps({"qt": sorted(m for m in sys.modules if m.startswith(("PySide", "PyQt", "pyqtgraph"))),
                           "majmin": scores["majmin"], "saved": session.autosave_file.exists(),
                           "info": session.info_line}))
"""


def test_the_workflow_imports_no_qt(tmp_path):
    env = dict(os.environ, CSI_WORKSTATION_HOME=str(tmp_path), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", NO_QT, str(CHORALE)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=240)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("JSON")), None)
    assert line is not None, proc.stderr[-3000:]
    out = json.loads(line[4:])
    assert out["qt"] == [] and out["saved"] and out["majmin"] > 0.5
    assert out["info"].startswith("tempo ") and "key Bb minor" in out["info"]  # A minor, transposed +1
