"""Damaged chord-edit autosaves never wedge the music view: each is validated against its schema, set aside with
a sentence in Messages, and the recording opens and is recognized as if there were none. Good ones restore."""
from __future__ import annotations

import json

import pytest

from engines.music.chords import CHORD_AUTOSAVE_SCHEMA, ChordSegment, ChordTrack, chord_track_from_autosave
from tests.music.test_trust_view import open_recording, render_wav


def _good_payload(duration: float = 8.0) -> dict:
    track = ChordTrack([ChordSegment(0.0, 4.0, "D:maj"), ChordSegment(4.0, duration, "E:min")], duration,
                       "D major", 0.8, "edited", 3)
    return json.loads(track.to_json()) | {"audio": "x.wav", "saved_at": "2024-01-01 10:00:00"}


BAD = {
    "a list instead of an object": "[]",
    "an unknown chord label": json.dumps({"schema": 1, "data": _good_payload() | {
        "segments": [{"start": 0.0, "end": 8.0, "label": "Q:weird", "confidence": 1.0}]}}),
    "transpose as a word": json.dumps({"schema": 1, "data": _good_payload() | {"transpose": "up"}}),
    "a bare list as data": json.dumps({"schema": 1, "data": []}),
    "not JSON at all": "{\"schema\": 1, \"data\": {",
    "a newer schema": json.dumps({"schema": 99, "data": _good_payload()}),
}


@pytest.mark.parametrize("damage", sorted(BAD))
def test_a_damaged_chord_autosave_is_set_aside_and_the_recording_opens(qtbot, window, tmp_path, damage):
    from app.workspaces.music.view import chord_autosave_file
    from engines.music.audio import load_audio

    wav = render_wav(tmp_path / "song.wav")
    target = chord_autosave_file(load_audio(wav))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(BAD[damage], encoding="utf-8")
    view = open_recording(qtbot, window.switch_to("music"), wav)
    assert view.track.source == "chord-templates"  # recognized, not stuck on "Recognizing chords..."
    assert view.transpose_spin.value() == 0
    warnings = [n.message for n in window.notifications.items if n.level == "warning"]
    assert any("song.wav" in m and "set aside" in m for m in warnings), warnings
    tag = ".newer-*" if "newer" in damage else ".damaged-*"  # a newer version's autosave is kept for it
    assert not target.exists() and list(target.parent.glob(target.name + tag))


def test_an_old_style_damaged_autosave_does_not_wedge_the_view(qtbot, window, tmp_path):
    from engines.core.paths import data_dir
    from engines.music.audio import load_audio

    wav = render_wav(tmp_path / "old.wav")
    legacy = data_dir() / "music-edits" / f"{load_audio(wav).content_hash}.json"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text("[]", encoding="utf-8")
    view = open_recording(qtbot, window.switch_to("music"), wav)
    assert view.track.source == "chord-templates"
    assert [n.message for n in window.notifications.items if n.level == "error"] == []


def test_a_good_autosave_restores_its_edits_and_transpose(qtbot, window, tmp_path):
    from app.workspaces.music.view import chord_autosave_file
    from engines.music.audio import load_audio

    wav = render_wav(tmp_path / "kept.wav")
    target = chord_autosave_file(load_audio(wav))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"schema": CHORD_AUTOSAVE_SCHEMA, "data": _good_payload()}), encoding="utf-8")
    view = open_recording(qtbot, window.switch_to("music"), wav)
    assert [s.label for s in view.track.segments] == ["D:maj", "E:min"]
    assert view.transpose_spin.value() == 3 and view.track.transpose == 3
    # an edit goes back through the background writer, in the versioned envelope
    view.select(0)
    assert view.rename_selected("G")
    assert view._autosaver.flush()
    stored = json.loads(target.read_text(encoding="utf-8"))
    assert stored["schema"] == CHORD_AUTOSAVE_SCHEMA
    track, _ = chord_track_from_autosave(stored["data"])
    assert track.segments[0].label == "E:maj" and track.transpose == 3  # typed G at +3 is E in the recording


@pytest.mark.parametrize("change, problem", [
    ({"duration": float("nan")}, "finite"), ({"transpose": 12}, "transpose"), ({"transpose": True}, "transpose"),
    ({"segments": [{"start": 2.0, "end": 1.0, "label": "C"}]}, "out of order"),
    ({"segments": "C G"}, "list"), ({"key": 5}, "key"), ({"format": "something else"}, "not a chord track"),
])
def test_chord_autosave_validation_names_the_problem(change, problem):
    with pytest.raises((ValueError, TypeError), match=problem):
        chord_track_from_autosave(_good_payload() | change)
