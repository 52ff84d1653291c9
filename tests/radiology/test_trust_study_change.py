"""Opening another study leaves nothing of the previous one behind, and asks before dropping unexported edits."""
from __future__ import annotations


import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QMessageBox

from .conftest import open_in, small_series


def test_a_new_study_resets_layers_comparison_measurements_undo_and_layout(window, qtbot, tmp_path, monkeypatch):
    small_series(tmp_path / "a", n=8)
    small_series(tmp_path / "b", n=6, seed=5)
    asked = []

    def answer(reply):
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (asked.append(a[2]), reply)[1])

    answer(QMessageBox.No)
    view = open_in(window, qtbot, tmp_path / "a")
    first = view.volume
    view.add_comparison(first.real(first.voxels) + 50, first.geometry, "plus 50")
    view.compare_box.setCurrentText("Side by side")
    assert view.layout_mode == "side" and "Comparing with: plus 50" in view.compare_label.text()
    view.tool_box.setCurrentText("Ruler")
    view.views["axial"].tool_drag(QPointF(30, 30), QPointF(90, 30), True)
    view.tool_box.setCurrentText("Brush")
    view.views["axial"].paint_requested.emit("axial", 120.0, 120.0, True, True)
    assert view.undo_button.isEnabled() and len(view.layers) == 1 and len(view.measurements) == 1
    # unexported edits: the user is asked, and "No" keeps everything as it was
    view.open_path(tmp_path / "b")
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=60000)
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    assert "corrections" in asked[0]
    assert view.volume is first and len(view.layers) == 1 and view.layout_mode == "side"
    assert any("was not opened" in n.message for n in window.notifications.items)
    # "Yes": nothing of study a is left
    answer(QMessageBox.Yes)
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(tmp_path / "b")
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    assert len(asked) == 2 and view.volume.shape[0] == 6
    assert view.layers == [] and view.layer_list.count() == 0
    assert view.comparison is None and view.compare_mode == "off" and view.compare_box.currentText() == "Off"
    assert "Comparing" not in view.compare_label.text()
    assert view.layout_mode == "three" and view.layout_box.currentIndex() == 0 and not view.compare_view.isVisible()
    assert len(view.measurements) == 0 and view.measure_panel.tree.topLevelItemCount() == 0
    assert all(v.drawn == [] for v in view.views.values())
    assert not view.undo_button.isEnabled() and not view.session.can_undo
    view.undo_edit()  # nothing of study a can come back through undo
    assert view.layers == []


def test_no_question_without_unexported_edits(window, qtbot, tmp_path, monkeypatch):
    small_series(tmp_path / "a", n=8)
    small_series(tmp_path / "b", n=6, seed=5)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (_ for _ in ()).throw(AssertionError("asked")))
    view = open_in(window, qtbot, tmp_path / "a")
    view.add_label_layer(np.ones(view.volume.shape, np.uint8), None, {1: "all"}, name="from a file")
    view = open_in(window, qtbot, tmp_path / "b")
    assert view.volume.shape[0] == 6 and view.layers == []
