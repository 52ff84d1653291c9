"""Shared test setup: Qt offscreen, an isolated user folder, no sound card, no GPU needed."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CSI_DEVICE", "cpu")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own settings/data/cache folders (CSI_WORKSTATION_HOME)."""
    home = tmp_path_factory.mktemp("csihome")
    monkeypatch.setenv("CSI_WORKSTATION_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (OpenSlide fixtures); tests that need it skip when absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


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
