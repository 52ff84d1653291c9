"""The Lab's piano rolls label pitches as note names (C4 = MIDI 60), not MIDI numbers."""
from __future__ import annotations

from PySide6.QtWidgets import QApplication

from engines.music_lab.melody import Note


def test_piano_roll_pitch_axis_reads_note_names(qtbot):
    from app.workspaces.music.lab.panel import _Roll

    roll = _Roll()
    qtbot.addWidget(roll)
    roll.resize(600, 400)
    roll.show()
    notes = [Note(0.0, 1.0, 60), Note(1.0, 1.0, 64), Note(2.0, 2.0, 67), Note(4.0, 1.0, 72)]
    roll.show_notes(notes, ["C", "G"], 2.0)
    QApplication.processEvents()
    axis = roll.getAxis("left")
    assert axis.tickStrings([60, 61, 69, 72], 1.0, 1.0) == ["C4", "C#4", "A4", "C5"]
    lo, hi = roll.getViewBox().viewRange()[1]
    levels = axis.tickValues(lo, hi, 400)
    shown = [v for _, values in levels for v in values]
    assert 60 in levels[0][1] and 72 in levels[0][1]  # every C is a major tick
    assert all(float(v).is_integer() for v in shown)  # whole semitones only: no "61.5"
    strings = axis.tickStrings(shown, 1.0, 1.0)
    assert all(s[0] in "CDEFGAB" and s[-1].isdigit() for s in strings), strings
    assert "MIDI" not in axis.labelText
