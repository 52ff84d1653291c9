"""The messages a user should read, held without Qt: errors, warnings and notices from any workspace or job.

``NotificationManager`` is thread-safe: a worker thread, a batch job or the GUI thread may post at any time.
It keeps the newest ``maxlen`` messages (older ones fall off, counted in ``dropped``), logs each one, and tells
its listeners in the posting thread; a Qt view (the Messages dock) marshals that into the GUI thread itself.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("csi.notifications")

LEVELS = ("info", "warning", "error")
_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True)
class Notification:
    """One message: its level, the plain-language text, a detail (a traceback) and where it came from."""

    level: str
    message: str
    detail: str = ""
    when: float = 0.0  # time.time() of posting
    source: str = ""  # a workspace id, a task title, "shell", ...


#: listener(event, notification or None): event is "posted" (with the new message) or "cleared" (with None)
Listener = Callable[[str, "Notification | None"], None]


class NotificationManager:
    """A bounded, thread-safe list of notifications with listeners."""

    def __init__(self, maxlen: int = 500) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._lock = threading.Lock()
        self._items: deque[Notification] = deque(maxlen=maxlen)
        self._listeners: list[Listener] = []
        self.dropped = 0  # messages that fell off the front since the last clear

    @property
    def maxlen(self) -> int:
        return self._items.maxlen or 0

    def post(self, level: str, message: str, detail: str = "", source: str = "") -> Notification:
        """Add a message (an unknown level counts as "info"), log it and tell the listeners."""
        level = level if level in LEVELS else "info"
        note = Notification(level, str(message), str(detail or ""), time.time(), str(source or ""))
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(note)
            listeners = list(self._listeners)
        log.log(_LOG_LEVEL[level], "%s%s", message, f"\n{detail}" if detail else "")
        self._tell(listeners, "posted", note)
        return note

    def info(self, message: str, detail: str = "", source: str = "") -> Notification:
        return self.post("info", message, detail, source)

    def warning(self, message: str, detail: str = "", source: str = "") -> Notification:
        return self.post("warning", message, detail, source)

    def error(self, message: str, detail: str = "", source: str = "") -> Notification:
        return self.post("error", message, detail, source)

    @property
    def items(self) -> list[Notification]:
        """A snapshot, oldest first."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def count(self, level: str | None = None) -> int:
        with self._lock:
            return len(self._items) if level is None else sum(1 for n in self._items if n.level == level)

    def error_count(self) -> int:
        return self.count("error")

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.dropped = 0
            listeners = list(self._listeners)
        self._tell(listeners, "cleared", None)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, note)`` on every change; returns a function that unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    @staticmethod
    def _tell(listeners: list[Listener], event: str, note: Notification | None) -> None:
        for listener in listeners:
            try:
                listener(event, note)
            except Exception:  # noqa: BLE001 - a broken view must not lose the message for the others
                log.exception("a notification listener failed")
