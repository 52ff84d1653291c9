"""Wiring only: the pathology view's widgets are bound to its PathologySession (the workflows themselves are tested
headless in tests/engines/test_pathology_session.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engines.pathology.session import DetectionLayer, HeatmapLayer

HE_REGION = Path(__file__).resolve().parents[2] / "resources" / "samples" / "pathology" / "cmu_small_region.svs"


@pytest.fixture
def view(window, qtbot):
    v = window.switch_to("pathology")
    with qtbot.waitSignal(v.opened, timeout=60000):
        v.open_path(HE_REGION)
    return v


def test_the_canvas_draws_the_sessions_viewport_and_layers(view):
    s, canvas = view.session, view.canvas
    assert canvas.viewport is s.viewport and canvas.layers is s.layers and view.store is s.store
    assert (canvas.viewport.width, canvas.viewport.height) == (canvas.width(), canvas.height())
    view.toolbar.zoom_chosen.emit(10.0)
    assert s.viewport.magnification() == pytest.approx(10) and view.zoom_label.text() == "10.0x · level 0"
    canvas.pan_by(-100, 0)
    assert s.viewport.cx == pytest.approx(2220 / 2 + 100 / s.viewport.scale)


def test_layer_panel_and_sliders_change_the_session(view, qtbot):
    s = view.session
    values = np.full((10, 10), 0.8, np.float32)
    s.layers.heatmaps.append(HeatmapLayer("heat", values, 200.0))
    s.layers.add_detections(DetectionLayer("dets", [[50, 50]], [[40, 40, 60, 60]], [0.9], [0], ["x"]))
    names = [view.layer_list.item(i).text() for i in range(view.layer_list.count())]
    assert names == ["heat", "dets (1)", "Annotations (0)"]
    first = view.layer_list.item(1)
    first.setCheckState(Qt.Unchecked)
    assert not s.layers.detections[0].visible
    assert view.layer_list.item(1) is first  # a visibility change does not rebuild the list
    view.opacity_slider.setValue(70)
    view.cmap_combo.setCurrentText("viridis")
    assert (s.layers.heatmaps[0].opacity, s.layers.heatmaps[0].colormap) == (0.7, "viridis")
    view.score_slider.setValue(95)
    assert s.layers.detections[0].min_score == 0.95 and len(s.layers.detections[0].rows_in((0, 0, 99, 99))) == 0


def test_annotations_panel_and_toolbar_follow_the_store(view):
    s = view.session
    assert not view.undo_button.isEnabled()
    view.class_combo.setCurrentText("tumor")
    view._annotation_drawn("rectangle", [(100, 100), (300, 200)])
    ann = s.store.items[0]
    assert ann.cls == "tumor" and view.undo_button.isEnabled() and view.annotation_model.rowCount() == 1
    assert view.name_edit.text() == "Rectangle 1" and view.canvas.selected_id == ann.id
    view.name_edit.setText("margin")
    view.name_edit.editingFinished.emit()
    assert s.store.items[0].name == "margin"
    view.toolbar.undo.emit()
    assert s.store.items[0].name == "Rectangle 1" and view.redo_button.isEnabled()
    view.delete_selected()
    assert len(s.store) == 0 and view.canvas.selected_id == "" and view.name_edit.text() == ""
