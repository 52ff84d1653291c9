"""The one notification area: every error, warning and notice lands here in plain language (and in the log)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QStyle,
                               QVBoxLayout, QWidget)

log = logging.getLogger("csi.notifications")
LEVELS = ("info", "warning", "error")


@dataclass(frozen=True)
class Notification:
    level: str
    message: str
    detail: str = ""
    when: float = 0.0


class NotificationArea(QWidget):
    posted = Signal(object)  # Notification
    count_changed = Signal(int, int)  # errors, total

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[Notification] = []
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

    def post(self, level: str, message: str, detail: str = "") -> Notification:
        level = level if level in LEVELS else "info"
        note = Notification(level, message, detail, time.time())
        self.items.append(note)
        getattr(log, {"info": "info", "warning": "warning", "error": "error"}[level])(
            "%s%s", message, f"\n{detail}" if detail else "")
        icon = self.style().standardIcon({
            "info": QStyle.SP_MessageBoxInformation,
            "warning": QStyle.SP_MessageBoxWarning,
            "error": QStyle.SP_MessageBoxCritical}[level])
        item = QListWidgetItem(icon, f"{time.strftime('%H:%M:%S', time.localtime(note.when))}  {message}")
        item.setData(Qt.UserRole, level)
        if detail:
            item.setToolTip(detail[-4000:])
        self.list.insertItem(0, item)
        self.empty.setVisible(False)
        self.posted.emit(note)
        self.count_changed.emit(self.error_count(), len(self.items))
        return note

    def error_count(self) -> int:
        return sum(1 for n in self.items if n.level == "error")

    def clear(self) -> None:
        self.items.clear()
        self.list.clear()
        self.empty.setVisible(True)
        self.count_changed.emit(0, 0)
