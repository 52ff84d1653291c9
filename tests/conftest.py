"""Shared test setup: Qt offscreen, an isolated user folder, no sound card, no GPU needed."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CSI_DEVICE", "cpu")

#: real test files committed with the suite (each folder has its README and licence)
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own settings/data/cache folders (CSI_WORKSTATION_HOME)."""
    home = tmp_path_factory.mktemp("csihome")
    monkeypatch.setenv("CSI_WORKSTATION_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real test files (OpenSlide fixtures, ...): tests/data, committed with the suite, so a plain clone runs all."""
    return TEST_DATA


@pytest.fixture
def window(qtbot):
    """The real main window (offscreen), big enough for every workspace; closed like a user closes it."""
    from app.main_window import MainWindow

    win = MainWindow(detect_device=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.close()  # views shut down (autosave, tile loaders), tasks are cancelled and waited for


@pytest.fixture(autouse=True)
def isolated_logging():
    """Logging set up by one test (a GUI start, a CLI call) never leaks handlers into the next test."""
    import logging

    from app import logsetup

    root = logging.getLogger()
    handlers, level, configured = list(root.handlers), root.level, logsetup._configured
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logsetup._configured = configured

