"""The music workspace in the real window (offscreen): open the bundled chorale, see chords, key, tempo, meter
and the beat grid, edit, undo, transpose, autosave and restore, playback without a sound card, export."""
from __future__ import annotations

from pathlib import Path


from engines.music.chords import ChordTrack





def _open_sample(qtbot, window):
    view = window.switch_to("music")
    with qtbot.waitSignal(view.opened, timeout=120_000):
        view.open_sample()
    qtbot.waitUntil(lambda: view.track is not None, timeout=120_000)
    qtbot.waitUntil(lambda: view.session.analysis is not None, timeout=120_000)  # beats and key, from a worker
    return view


def errors(window):
    return [n.message for n in window.notifications.items if n.level == "error"]


def test_sample_opens_with_chords_key_and_reference(qtbot, window):
    view = _open_sample(qtbot, window)
    assert view.engine_box.currentData() == "chord-recognition"  # BTC when its weights are present
    assert view.track.source == "chord-recognition"
    assert len(view.lane.segments) > 20
    assert view.key_label.text() == "Key: A minor"
    assert view.analysis_label.text() == "tempo 76 bpm · 4/4 · key A minor"  # rendered at 76 bpm, common time
    beats = view.session.beats
    assert len(view.beat_grid.bar_labels) == len(beats.downbeats) > 10 and view.snap_box.isChecked()
    assert view.reference is not None and view.ref_plot.isVisible()
    assert view.last_scores["majmin"] > 0.7
    assert view.cqt_image.image.shape[1] == 144 and view.chroma_image.image.shape[1] == 12
    assert errors(window) == []


def test_edit_undo_transpose_autosave_and_restore(qtbot, window, tmp_path):
    view = _open_sample(qtbot, window)
    track = view.track
    n = len(track.segments)
    seg = track.segments[3]
    original = seg.label
    view._lane_clicked((seg.start + seg.end) / 2, 3)
    assert view.selected == 3 and abs(view.playhead_s - (seg.start + seg.end) / 2) < 1e-6
    assert view.rename_selected("C/E")
    assert track.segments[3].label == "C:maj/3"
    view.split_at_playhead()
    assert len(track.segments) == n + 1
    view.select(3)
    view.merge_selected()
    assert len(track.segments) == n
    view.move_boundary(3, track.segments[3].end - 0.1)
    view.transpose_spin.setValue(2)
    assert view.track.display_label(track.segments[3]) == "D:maj/3"  # the slash bass moves too
    assert view.key_label.text().startswith("Key: B minor")
    assert not view.rename_selected("H7")  # refused with a message, nothing changed
    assert any("is not a chord" in e for e in errors(window))
    view.undo()
    view.undo()
    view.undo()
    assert len(track.segments) == n and track.segments[3].label == "C:maj/3"
    view.undo()
    assert track.segments[3].label == original
    view.redo()
    # the autosave holds the latest state; reopening restores it instead of recognizing again
    import json

    from app.workspaces.music.view import chord_autosave_file

    assert view._autosaver.flush()
    saved = ChordTrack.from_dict(json.loads(chord_autosave_file(view.clip).read_text())["data"])
    assert saved.segments[3].label == "C:maj/3" and saved.transpose == 2
    path = view.path
    with qtbot.waitSignal(view.opened, timeout=60_000):
        view.open_path(path)
    qtbot.waitUntil(lambda: view.track is not None and view.track.segments[3].label == "C:maj/3", timeout=60_000)
    assert view.transpose_spin.value() == 2
    assert any("restored your chord edits" in n.message for n in window.notifications.items)


def test_playback_without_a_device_says_why_and_export_works(qtbot, window, tmp_path):
    view = _open_sample(qtbot, window)
    from engines.music.playback import playback_availability

    ok, reason = playback_availability()
    view.toggle_play()
    if not ok:
        assert any(n.message == reason for n in window.notifications.items)
        assert not view.player.playing
    view.source_box.setCurrentIndex(1)
    for suffix in (".lab", ".mid", ".musicxml", ".wav"):
        out = tmp_path / f"export{suffix}"
        view.export_to(out)
        qtbot.waitUntil(out.exists, timeout=60_000)
        assert out.stat().st_size > 100
    import music21

    sheet = music21.converter.parse(str(tmp_path / "export.musicxml"))
    bpm = sheet.recurse().getElementsByClass("MetronomeMark")[0].number
    assert 70 <= bpm <= 82  # the chorale was rendered at 76 bpm; the beat tracker finds it
    lab = ChordTrack.read_lab(tmp_path / "export.lab")
    assert len(lab.segments) == len(view.track.segments)
    assert errors(window) == []


def test_bad_file_is_a_message_not_a_crash(qtbot, window, tmp_path):
    view = window.switch_to("music")
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    view.open_path(bad)
    qtbot.waitUntil(lambda: bool(errors(window)), timeout=30_000)
    assert "broken.wav" in errors(window)[0]
    assert view.track is None


def test_a_musicxml_score_opens_with_its_own_chords_as_reference(qtbot, window, tmp_path):
    from music21 import chord, meter, stream, tempo

    part = stream.Part()
    part.append(tempo.MetronomeMark(number=90))
    part.append(meter.TimeSignature("4/4"))
    for names in (["C3", "E4", "G4", "C5"], ["A2", "E4", "A4", "C5"], ["F2", "F4", "A4", "C5"],
                  ["G2", "D4", "G4", "B4"]):
        part.append(chord.Chord(names, quarterLength=4))
    score = stream.Score([part])
    path = tmp_path / "cadence.musicxml"
    score.write("musicxml", fp=str(path))
    view = window.switch_to("music")
    with qtbot.waitSignal(view.opened, timeout=120_000):
        view.open_path(path)
    qtbot.waitUntil(lambda: view.track is not None, timeout=120_000)
    assert view.reference is not None and "chordify" in view.reference.source
    assert [s.label for s in view.reference.segments][:4] == ["C:maj", "A:min", "F:maj", "G:maj"]
    assert view.clip.midi is not None and view.last_scores["majmin"] > 0.5
    assert errors(window) == []
