"""The music view keeps each recording's own settings and says what it shows: transpose is per file, the info
line follows edits, the rename dialog stays open on a bad name, long recordings get an overview strip.

Recordings are rendered here with the workstation's own synthesizer (a few seconds, 22,050 Hz) and recognized
with the classical template engine, so the tests are quick and need no network weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from engines.music.chords import ChordSegment, ChordTrack
from engines.music.synth import render_chords

PROGRESSION = ("C:maj", "G:maj", "A:min", "F:maj")


def render_wav(path: Path, labels=PROGRESSION, seconds_each: float = 2.0, sr: int = 22050) -> Path:
    segs = [ChordSegment(i * seconds_each, (i + 1) * seconds_each, lab) for i, lab in enumerate(labels)]
    audio = render_chords(segs, len(labels) * seconds_each, sr)
    sf.write(str(path), audio, sr, subtype="PCM_16")
    return path


def open_recording(qtbot, view, path: Path):
    view._fill_engines()
    view.engine_box.setCurrentIndex(view.engine_box.findData("chord-templates"))
    view.track = None
    with qtbot.waitSignal(view.opened, timeout=60_000):
        view.open_path(path)
    qtbot.waitUntil(lambda: view.track is not None, timeout=60_000)
    return view


def errors(window):
    return [n.message for n in window.notifications.items if n.level == "error"]


def test_transpose_belongs_to_one_recording_and_never_leaks_into_the_next(qtbot, window, tmp_path):
    view = window.switch_to("music")
    first = render_wav(tmp_path / "first.wav")
    second = render_wav(tmp_path / "second.wav", ("D:maj", "A:maj", "B:min", "G:maj"))
    open_recording(qtbot, view, first)
    view.transpose_spin.setValue(2)
    assert view.track.transpose == 2
    open_recording(qtbot, view, second)
    assert view.path == second
    assert view.transpose_spin.value() == 0 and view.track.transpose == 0
    assert "transposed" not in view.key_label.text()
    out = tmp_path / "second.lab"
    view.export_to(out)
    qtbot.waitUntil(out.exists, timeout=30_000)
    exported = [s.label for s in ChordTrack.read_lab(out).segments]
    assert exported == [s.label for s in view.track.segments]  # not two semitones off
    # the first recording keeps its own +2 (restored with its autosave)
    open_recording(qtbot, view, first)
    assert view.transpose_spin.value() == 2 and view.track.transpose == 2
    assert errors(window) == []


def test_the_info_line_follows_chord_edits_undo_and_transpose(qtbot, window, tmp_path):
    view = open_recording(qtbot, window.switch_to("music"), render_wav(tmp_path / "info.wav"))
    view.select(1)
    before = view.status.text()
    assert view.track.display_symbol(view.track.segments[1]) in before
    assert view.rename_selected("E7")
    assert view.status.text().startswith("E7 (E:7)") and "confidence 1.00" in view.status.text()
    view.transpose_spin.setValue(2)
    assert "(F#:7)" in view.status.text() and view.status.text() == view.track.describe(1)
    view.transpose_spin.setValue(0)
    view.undo()  # the transposes are not chord edits: undo takes back the rename
    assert view.status.text() == before
    assert view.track.describe(1) == before


def test_renaming_to_an_invalid_name_keeps_the_dialog_open_with_the_reason(qtbot, window, tmp_path):
    from PySide6.QtCore import Qt

    view = open_recording(qtbot, window.switch_to("music"), render_wav(tmp_path / "rename.wav"))
    view.select(2)
    view._ask_rename()
    dialog = view.rename_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=5_000)
    dialog.edit.setText("H7")
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.LeftButton)
    assert dialog.isVisible() and dialog.message.isVisible()
    assert "'H7' is not a chord" in dialog.message.text()
    assert view.track.segments[2].label != "B:7"
    dialog.edit.setText("")
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.LeftButton)
    assert dialog.isVisible() and "Type a chord name" in dialog.message.text()
    dialog.edit.setText("Bb7")
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.LeftButton)
    assert not dialog.isVisible() and dialog.result() == dialog.DialogCode.Accepted
    assert view.track.segments[2].label == "Bb:7"
    assert errors(window) == []  # the reason was shown where the user typed, not as an error elsewhere


def test_a_long_recording_has_an_overview_strip_that_scrolls_the_lanes(qtbot, window, tmp_path):
    labels = ("C:maj", "G:maj", "A:min", "F:maj") * 4
    view = open_recording(qtbot, window.switch_to("music"), render_wav(tmp_path / "long.wav", labels, 4.0))
    assert view.clip.duration > 60
    assert view.overview.isVisible()
    x = view.overview_curve.getData()[0]
    assert x.min() == 0 and x.max() > 60 - 1  # the whole track, not the 20-s window
    (w0, w1), _ = view.wave_plot.getViewBox().viewRange()
    assert (w0, w1) == pytest.approx((0, 20), abs=0.01)
    assert view.overview_region.getRegion() == pytest.approx((0, 20), abs=0.01)
    view.overview_region.setRegion((30, 50))  # what a drag does
    (w0, w1), _ = view.wave_plot.getViewBox().viewRange()
    assert (w0, w1) == pytest.approx((30, 50), abs=0.05)
    assert view.chord_plot.getViewBox().viewRange()[0] == pytest.approx([30, 50], abs=0.05)  # lanes follow
    view.wave_plot.setXRange(5, 15, padding=0)  # scrolling the lanes moves the window in the overview
    assert view.overview_region.getRegion() == pytest.approx((5, 15), abs=0.05)
