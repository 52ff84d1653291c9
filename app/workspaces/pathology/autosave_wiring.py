"""How the pathology view autosaves its session: a short debounce after each edit, the snapshot serialised on the
shell's task manager (never on the GUI thread), write errors turned into a notification on the GUI thread. The
policy itself (numbering, what is saved where, the final write when closing) is the session's, through
``engines.core.autosave``."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal


class AutosaveWiring(QObject):
    """Connects a :class:`~engines.pathology.session.PathologySession` to a QTimer and the shell's tasks."""

    failed = Signal(str)  # emitted from the writer thread; delivered on the GUI thread

    def __init__(self, session, context, parent: QObject | None = None, debounce_ms: int = 400) -> None:
        super().__init__(parent)
        self.session, self.context = session, context
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(debounce_ms)
        self.timer.timeout.connect(session.autosave)
        session.background = self._in_background
        session.annotations_changed.connect(self._edited)
        session.autosave_failed.connect(self._writer_failed)
        self.failed.connect(self._notify)

    def _in_background(self, fn, key: str) -> None:
        self.context.tasks.submit(lambda progress, cancel: fn(), title="Autosaving annotations", owner=key,
                                  on_error=lambda m, d: self.context.notify("error", m, d))

    def _edited(self, edited: bool) -> None:
        if edited and self.session.slide_path is not None:
            self.timer.start()

    def _writer_failed(self, message: str) -> None:  # the writer's thread: only a signal
        self.failed.emit(message)

    def _notify(self, message: str) -> None:
        self.context.notify("error", message, "")

    def stop(self) -> None:
        self.timer.stop()
        self.session.annotations_changed.disconnect(self._edited)
        self.session.autosave_failed.disconnect(self._writer_failed)
