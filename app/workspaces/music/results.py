"""What the music workspace says about its result: the title line (file, length, rate), the estimated key, the
tempo/meter/key line of the beat analysis, the info line under the lanes and the check banner of a recognition
whose input checks warn.

It only formats what the session holds (engines/music/session.py); nothing here computes.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

WELCOME = ("<b>Music</b> - open a recording (WAV, FLAC, OGG, MP3) or a MIDI/MusicXML file, or the bundled "
           "chorale.")
EDIT_HELP = ("Click a chord to select and seek; double-click or F2 renames; S splits at the playhead; M merges; "
             "drag the yellow lines to move a boundary; Ctrl+Z undoes.")


class ResultsPanel:
    """The labels that report on the open recording and its chords; the view places ``header`` and ``footer``."""

    def __init__(self, open_sample_button: QWidget) -> None:
        self.title = QLabel(WELCOME)
        self.title.setTextFormat(Qt.RichText)
        self.title.setWordWrap(True)  # a long file name wraps instead of widening the window
        self.key_label = QLabel("Key: -")
        self.key_label.setStyleSheet("font-size: 15px; font-weight: bold; padding: 0 12px;")
        self.key_label.setToolTip("Krumhansl-Schmuckler key estimate over the whole recording (transposed with "
                                  "the chord track)")
        self.analysis_label = QLabel("")
        self.analysis_label.setToolTip("Tempo and meter from the beat tracker, key from the chroma (Krumhansl-"
                                       "Schmuckler); recomputed whenever the recording opens")
        self.header = QHBoxLayout()
        self.header.addWidget(self.title, 1)
        self.header.addWidget(self.analysis_label)
        self.header.addWidget(self.key_label)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #888;")
        self.footer = QHBoxLayout()
        self.footer.addWidget(self.status, 1)
        self.footer.addWidget(open_sample_button)
        self.check_banner: QLabel | None = None

    def say(self, text: str) -> None:
        self.status.setText(text)

    def show_opened(self, opened) -> None:
        """The title line of a freshly opened recording (engines.music.session.OpenedRecording)."""
        clip = opened.clip
        notes = f" ({'; '.join(clip.notes)})" if clip.notes else ""
        self.title.setText(f"<b>{opened.path.name}</b> - {clip.duration:.1f} s, {clip.original_sr or clip.sr} Hz, "
                           f"{clip.original_channels} ch{notes}")

    def show_analysis(self, text: str, warned: bool) -> None:
        """The session's info line ("tempo 120 bpm · 4/4 · key A minor"), amber when the estimator warns."""
        self.analysis_label.setText(text)
        self.analysis_label.setStyleSheet("color: #e0a030;" if warned else "")

    def show_key(self, track) -> None:
        if track is None or not track.key:
            self.key_label.setText("Key: -")
            return
        extra = f" (transposed {track.transpose:+d})" if track.transpose else ""
        self.key_label.setText(f"Key: {track.display_key()}{extra}")
        self.key_label.setToolTip(key_tooltip(track.key_confidence, getattr(track, "key_method", "")))

    def show_selection(self, track, index: int | None) -> None:
        """The info line shows the selected chord as it is now (after edits, undo and transpose)."""
        if track is not None and index is not None:
            self.status.setText(track.describe(index))

    def show_recognized(self, track, notify: Callable[[str, str, str], None]) -> None:
        """A fresh recognition: its input-check warnings above the lanes and in Messages, and what to do next."""
        from app.widgets.check_banner import banner_before, show_result_checks

        if self.check_banner is None:
            self.check_banner = banner_before(self.status)
        show_result_checks(self.check_banner, "Chord recognition", track, notify)
        self.status.setText(f"{len(track.segments)} chords from {track.source}. {EDIT_HELP}")


def key_tooltip(confidence: float | None, method: str = "") -> str:
    """What the key's number means: the learned model's probability, or Krumhansl-Schmuckler's correlation."""
    from engines.music.keys import KS_METHOD

    if confidence is None:
        return "Key of the whole recording"
    if method == KS_METHOD:
        return f"Krumhansl-Schmuckler estimate, correlation {confidence:.2f}"
    return f"Key of the whole recording (learned key model), probability {confidence:.2f}"
