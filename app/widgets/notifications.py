"""The Messages dock: a view of the shell's ``NotificationManager`` (engines/core/notifications.py).

Every error, warning and notice lands in the manager (from any thread) and in the log; this widget shows the
newest first. Posts from a worker thread reach the list through a queued signal, posts from the GUI thread
are shown at once (so the dock title is right as soon as ``post`` returns).
"""
from __future__ import annotations

import threading
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QStyle,
                               QVBoxLayout, QWidget)

from engines.core.notifications import LEVELS, Notification, NotificationManager

__all__ = ["LEVELS", "Notification", "NotificationArea"]

_ICONS = {"info": QStyle.SP_MessageBoxInformation, "warning": QStyle.SP_MessageBoxWarning,
          "error": QStyle.SP_MessageBoxCritical}


class NotificationArea(QWidget):
    posted = Signal(object)  # Notification, emitted in the GUI thread once it is shown
    count_changed = Signal(int, int)  # errors, total
    _changed = Signal(str, object)  # a manager event from another thread, delivered in the GUI thread

    def __init__(self, manager: NotificationManager | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._gui_thread = threading.get_ident()  # widgets are made in the GUI thread
        self.manager = manager if manager is not None else NotificationManager()
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setObjectName("notificationList")
        self.empty = QLabel("No messages. Errors and warnings from any workspace appear here.")
        self.empty.setStyleSheet("color: palette(mid); padding: 6px;")
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        top = QHBoxLayout()
        top.addWidget(self.empty, 1)
        top.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.list)
        self._changed.connect(self._apply, Qt.QueuedConnection)
        for note in self.manager.items:
            self._show(note)
        unsubscribe = self._unsubscribe = self.manager.subscribe(self._on_manager)
        self.destroyed.connect(lambda *_: unsubscribe())  # the manager may outlive this view

    # ------------------------------------------------------------------ the model's API, kept for callers
    @property
    def items(self) -> list[Notification]:
        return self.manager.items

    def post(self, level: str, message: str, detail: str = "", source: str = "") -> Notification:
        return self.manager.post(level, message, detail, source)

    def error_count(self) -> int:
        return self.manager.error_count()

    def clear(self) -> None:
        self.manager.clear()

    # ------------------------------------------------------------------ the view
    def _on_manager(self, event: str, note: Notification | None) -> None:  # any thread
        try:
            if threading.get_ident() == self._gui_thread:
                self._apply(event, note)
            else:
                self._changed.emit(event, note)
        except RuntimeError:  # the widget is gone (window closed); the manager keeps the message
            self._unsubscribe()

    def _apply(self, event: str, note: Notification | None) -> None:
        if event == "cleared":
            self.list.clear()
        elif note is not None:
            self._show(note)
            while self.list.count() > self.manager.maxlen:  # the oldest row fell off the model
                self.list.takeItem(self.list.count() - 1)
            self.posted.emit(note)
        self.empty.setVisible(self.list.count() == 0)
        self.count_changed.emit(self.manager.error_count(), len(self.manager))

    def _show(self, note: Notification) -> None:
        icon = self.style().standardIcon(_ICONS[note.level])
        source = f"[{note.source}] " if note.source else ""
        item = QListWidgetItem(icon, f"{time.strftime('%H:%M:%S', time.localtime(note.when))}  {source}{note.message}")
        item.setData(Qt.UserRole, note.level)
        if note.detail:
            item.setToolTip(note.detail[-4000:])
        self.list.insertItem(0, item)
        self.empty.setVisible(False)
