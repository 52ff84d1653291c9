"""The music workspace's workflows driven headless through engines/music/session.py: open the bundled chorale
recording (with its reference .lab beside it), recognize its chords with the classical engine, edit, undo, redo,
transpose, score agreement with the reference, autosave, reopen from the autosave, open another recording."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.core.autosave import AutosaveWriter
from engines.music.session import MusicSession, OpenedRecording, agreement, read_recording

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
writer = AutosaveWriter(); session.save_autosave(writer); writer.close()
print("JSON" + json.dumps({"qt": sorted(m for m in sys.modules if m.startswith(("PySide", "PyQt", "pyqtgraph"))),
                           "majmin": scores["majmin"], "saved": session.autosave_file.exists()}))
"""


def test_the_workflow_imports_no_qt(tmp_path):
    env = dict(os.environ, CSI_WORKSTATION_HOME=str(tmp_path), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", NO_QT, str(CHORALE)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=240)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("JSON")), None)
    assert line is not None, proc.stderr[-3000:]
    out = json.loads(line[4:])
    assert out["qt"] == [] and out["saved"] and out["majmin"] > 0.5
