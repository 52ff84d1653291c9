"""The chord track's edit bar (undo, redo, rename, split, merge, snap to beats, export, melody) and the rename
dialog.

Widgets only: the buttons emit what the user asked for and ``show_state`` enables them from the session.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QLineEdit, QMenu,
                               QPushButton, QToolButton, QVBoxLayout, QWidget)

EXPORTS = (("MIREX chord labels (.lab)", ".lab"), ("MIDI: chords + melody (.mid)", ".mid"),
           ("MusicXML lead sheet (.musicxml)", ".musicxml"), ("WAV of the synthesized chords (.wav)", ".wav"))


class ChordRenameDialog(QDialog):
    """Asks for a chord name; a name that cannot be read keeps the dialog open with the reason under the field.

    ``apply(text)`` performs the rename and returns None, or the sentence that explains the refusal.
    """

    def __init__(self, current: str, apply, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rename chord")
        self._apply = apply
        self.edit = QLineEdit(current)
        self.edit.selectAll()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #d04040;")
        self.message.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.edit.textEdited.connect(lambda _: self.message.setVisible(False))
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Chord (e.g. Am, G7, C/E, F#:min7, N):"))
        lay.addWidget(self.edit)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)

    def accept(self) -> None:
        text = self.edit.text().strip()
        problem = "Type a chord name, or N for no chord." if not text else self._apply(text)
        if problem:
            self.message.setText(problem)
            self.message.setVisible(True)
            self.edit.setFocus()
            return
        super().accept()


class ChordEditBar(QWidget):
    """'Chord track:' Undo, Redo, Rename..., Split, Merge, Export, and 'Melody over these chords...'."""

    undo_requested = Signal()
    redo_requested = Signal()
    rename_requested = Signal()
    split_requested = Signal()
    merge_requested = Signal()
    export_requested = Signal(str)  # the suffix
    melody_requested = Signal()
    snap_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo_requested)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(self.redo_requested)
        self.rename_button = QPushButton("Rename...")
        self.rename_button.setToolTip("Rename the selected chord (F2 or double-click), e.g. Am, G7, C/E, F#:min7")
        self.rename_button.clicked.connect(self.rename_requested)
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("Split the selected chord at the playhead (S)")
        self.split_button.clicked.connect(self.split_requested)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Merge the selected chord with the next one (M)")
        self.merge_button.clicked.connect(self.merge_requested)
        self.snap_box = QCheckBox("Snap to beats")
        self.snap_box.setToolTip("Moved boundaries and splits land on the nearest beat of the beat grid")
        self.snap_box.setEnabled(False)
        self.snap_box.toggled.connect(self.snap_toggled)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.export_button)
        for text, suffix in EXPORTS:
            menu.addAction(text, lambda s=suffix: self.export_requested.emit(s))
        self.export_button.setMenu(menu)
        self.melody_button = QPushButton("Melody over these chords…")
        self.melody_button.setToolTip("Send the chord track to the Lab's melody generator")
        self.melody_button.clicked.connect(self.melody_requested)
        bar = QHBoxLayout(self)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Chord track:"))
        for w in (self.undo_button, self.redo_button, self.rename_button, self.split_button, self.merge_button,
                  self.snap_box, self.export_button):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.melody_button)

    def show_state(self, track, selected: int | None) -> None:
        """Enable what can be done to ``track`` (a ChordTrack or None) with chord ``selected`` chosen."""
        has_track = track is not None
        sel = has_track and selected is not None
        self.undo_button.setEnabled(has_track and track.can_undo)
        self.redo_button.setEnabled(has_track and track.can_redo)
        self.rename_button.setEnabled(bool(sel))
        self.split_button.setEnabled(bool(sel))
        self.merge_button.setEnabled(bool(sel) and selected < len(track.segments) - 1)
        self.export_button.setEnabled(has_track)

    def show_snap(self, on: bool, available: bool) -> None:
        """Check the snap box as the session says (without echoing back) and enable it when there is a grid."""
        self.snap_box.blockSignals(True)
        self.snap_box.setChecked(on)
        self.snap_box.blockSignals(False)
        self.snap_box.setEnabled(available)
        self.snap_box.setToolTip("Moved boundaries and splits land on the nearest beat of the beat grid" if available
                                 else "No beat grid for this recording: there is nothing to snap to")
