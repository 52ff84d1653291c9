"""The music workspace's autosave: every chord edit of the session goes to engines.core.autosave's background
writer (debounced, atomic, versioned); nothing is read or written on the GUI thread.

A failed write comes back as a queued Qt signal and becomes a warning in Messages. ``close`` writes what is
pending within a bounded time when the window closes.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal


class ChordAutosave(QObject):
    """Binds a MusicSession to one AutosaveWriter: edits are queued, a fresh recognition keeps the old edits."""

    failed = Signal(str)  # emitted on the writer thread, delivered on the GUI thread

    def __init__(self, session, notify: Callable[[str, str, str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        from engines.core.autosave import AutosaveWriter

        self.session = session
        self.writer = AutosaveWriter(on_error=self.failed.emit)
        self.failed.connect(lambda msg: notify("warning", msg, ""))
        session.events.track_changed.connect(self._track_changed)

    def _track_changed(self, _track) -> None:
        if self.session.dirty:
            self.session.save_autosave(self.writer)  # serialises and queues; the writer thread writes

    def keep_previous_job(self):
        """A job for the task adapter: the edits autosaved so far are kept one step back (``.previous.json``)
        before a fresh recognition replaces them; None when the recording has no autosave."""
        from engines.music.session import set_previous_autosave_aside

        target, writer = self.session.autosave_file, self.writer
        if target is None:
            return None
        return lambda progress, cancel: set_previous_autosave_aside(target, writer)

    def close(self, timeout: float = 3.0) -> bool:
        """Write what is pending (the last edits reach the disk before the window goes); bounded by ``timeout``."""
        self.session.events.track_changed.disconnect(self._track_changed)
        return self.writer.close(timeout)
