"""The W/L preset box names the window in use."""
from __future__ import annotations


from PySide6.QtCore import Qt

from .conftest import open_in, small_series


def test_the_preset_box_shows_the_current_window(window, qtbot, tmp_path):
    small_series(tmp_path / "ct", n=6)
    view = open_in(window, qtbot, tmp_path / "ct")
    box = view.preset_box
    assert view.window == (400, 40) and box.currentText().startswith("6 Abdomen")  # the series' own window
    box.activated.emit(box.findText("4 Lung", Qt.MatchStartsWith))
    assert view.window == (1500, -600) and box.currentText().startswith("4 Lung")
    view.toolbar.window_drag(0, 0, True, False)
    view.toolbar.window_drag(30, 10, False, True)
    assert box.currentText() == "Custom"
    view.wl_label.setText("W 350 L 50")
    view.wl_label.editingFinished.emit()
    assert box.currentText().startswith("5 Mediastinum")
    view.set_window(80, 40)  # what keys 1-8 do
    assert box.currentText().startswith("1 Brain")
    view.auto_window()
    assert box.currentText().startswith("A Auto")
    view.set_window(123, 45)
    assert box.currentText() == "Custom"
