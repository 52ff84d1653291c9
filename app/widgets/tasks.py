"""The task area: each running job with its progress and a cancel button."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.worker import Task, TaskManager


class TaskRow(QWidget):
    def __init__(self, task: Task, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task = task
        self.label = QLabel(task.title)
        self.label.setMinimumWidth(160)
        self.label.setToolTip(task.title)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first fraction arrives
        self.bar.setTextVisible(True)
        self.status = QLabel("starting")
        self.status.setStyleSheet("color: palette(mid);")
        for label in (self.label, self.status):  # a long file name is cut on screen, never widens the window
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.status.setMinimumWidth(80)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(f"Cancel '{task.title}'")
        self.cancel_button.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.addWidget(self.label, 2)  # the title gets the room first: 'Opening lung1' reads, a bar still shows
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.status, 1)
        layout.addWidget(self.cancel_button)
        task.progress.connect(self._on_progress)

    def _on_progress(self, fraction: float, message: str) -> None:
        if fraction < 0:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(round(fraction * 1000)))
        self.status.setText(message)
        self.status.setToolTip(message)

    def _cancel(self) -> None:
        self.task.cancel()
        self.cancel_button.setEnabled(False)
        self.status.setText("cancelling…")

    def finish(self, state: str) -> None:
        self.cancel_button.setEnabled(False)
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000 if state == Task.DONE else self.bar.value())
        self.status.setText({Task.DONE: "done", Task.FAILED: "failed (see Messages)",
                             Task.CANCELLED: "cancelled"}.get(state, state))


class TaskPanel(QWidget):
    """Lists active tasks; finished rows stay for a few seconds so the user sees how they ended."""

    LINGER_MS = 4000

    def __init__(self, manager: TaskManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        self.rows: dict[int, TaskRow] = {}
        self.idle = QLabel("No running tasks.")
        self.idle.setStyleSheet("color: palette(mid); padding: 6px;")
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(4, 4, 4, 4)
        self.box.addWidget(self.idle)
        self.box.addStretch(1)
        manager.task_added.connect(self._add)
        manager.task_finished.connect(self._finished)

    def _add(self, task: Task) -> None:
        row = TaskRow(task, self)
        self.rows[id(task)] = row
        self.box.insertWidget(self.box.count() - 1, row)
        self.idle.setVisible(False)

    def _finished(self, task: Task) -> None:
        row = self.rows.get(id(task))
        if row is None:
            return
        row.finish(task.state)
        QTimer.singleShot(self.LINGER_MS, self, lambda: self._remove(id(task)))

    def _remove(self, key: int) -> None:
        row = self.rows.pop(key, None)
        if row is not None:
            row.setParent(None)
            row.deleteLater()
        self.idle.setVisible(not self.rows)
