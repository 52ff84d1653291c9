"""Event-loop helpers shared by the screenshot scripts: run the Qt loop for a while, or until a condition holds."""
from __future__ import annotations

import time
from typing import Callable


def pumps(app) -> tuple[Callable[..., None], Callable[..., None]]:
    """(pump, wait) for ``app``: ``pump(seconds)`` processes events for that long; ``wait(cond, timeout)``
    processes events until ``cond()`` is true, or raises TimeoutError."""

    def pump(seconds: float = 0.3) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(cond, timeout: float = 300.0) -> None:
        end = time.time() + timeout
        while not cond():
            if time.time() > end:
                raise TimeoutError("the window did not get there in time")
            pump(0.05)

    return pump, wait


def open_workstation(width: int = 1400, height: int = 900):
    """The workstation's main window, shown at ``width`` x ``height`` with its first events processed:
    (app, window, pump, wait)."""
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    pump, wait = pumps(app)
    win = MainWindow(detect_device=False)
    win.resize(width, height)
    win.show()
    pump(1.0)
    return app, win, pump, wait
