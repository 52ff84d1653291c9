"""Every workspace fits a 1280 x 720 window: opening one never makes the main window widen or grow itself."""
from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

LIMIT_W, LIMIT_H = 1280, 720
WORKSPACES = ["radiology", "pathology", "music", "textvqa"]


def _fits(window) -> tuple[int, int, int, int]:
    QApplication.processEvents()
    hint = window.minimumSizeHint()
    return hint.width(), hint.height(), window.width(), window.height()


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_workspace_fits_1280_by_720(qtbot, window, workspace):
    window.resize(LIMIT_W, LIMIT_H)
    view = window.switch_to(workspace)
    hint_w, hint_h, w, h = _fits(window)
    assert view.minimumSizeHint().width() <= LIMIT_W and view.minimumSizeHint().height() <= LIMIT_H
    assert view.minimumSize().width() <= LIMIT_W and view.minimumSize().height() <= LIMIT_H
    assert hint_w <= LIMIT_W and hint_h <= LIMIT_H, f"{workspace} needs {hint_w} x {hint_h}"
    assert w <= LIMIT_W and h <= LIMIT_H, f"the window grew to {w} x {h} for {workspace}"


def test_music_with_a_long_file_name_and_every_lab_tab_fits(qtbot, window, tmp_path):
    from tests.music.test_trust_view import open_recording, render_wav

    window.resize(LIMIT_W, LIMIT_H)
    view = window.switch_to("music")
    name = "a recording whose file name is very long indeed, as exported by some editors - take 12 (final).wav"
    open_recording(qtbot, view, render_wav(tmp_path / name))
    assert name in view.title.text()
    for index in range(view.lab.tabs.count()):
        view.tabs.setCurrentWidget(view.lab)
        view.lab.tabs.setCurrentIndex(index)
        hint_w, hint_h, w, h = _fits(window)
        assert hint_w <= LIMIT_W and hint_h <= LIMIT_H and w <= LIMIT_W and h <= LIMIT_H, (index, hint_w, hint_h)


def test_a_task_with_a_very_long_title_never_widens_the_window(qtbot, window):
    window.resize(LIMIT_W, LIMIT_H)
    long_name = "a-recording-with-a-very-long-file-name-" * 12 + ".flac"
    task = window.tasks.submit(lambda progress, cancel: progress(0.5, f"reading {long_name}") or 1,
                               title=f"Chords: {long_name}")
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=10000)
    assert task.title.endswith(".flac")
    hint_w, _hint_h, w, _h = _fits(window)
    assert hint_w <= LIMIT_W and w <= LIMIT_W, f"the window needs {hint_w} px for one task row"
