"""Fixtures shared by the music view tests."""
import pytest

from app.main_window import MainWindow


@pytest.fixture
def window(qtbot):
    win = MainWindow(detect_device=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.tasks.shutdown(10000)
