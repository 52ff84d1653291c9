"""Label layers tell the truth: no false alarms on a fresh correction layer, statistics per label, jump to it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.radiology.geometry import Geometry
from engines.radiology.labelstats import empty_layer_problem, label_statistics
from engines.radiology.overlays import LabelMap

from .conftest import small_series


def open_in(window, qtbot, path: Path):
    view = window.switch_to("radiology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(path)
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    return view


def messages(window, level=None) -> list[str]:
    return [n.message for n in window.notifications.items if level is None or n.level == level]


def test_the_first_brush_stroke_on_a_fresh_series_raises_no_alarm(window, qtbot, tmp_path):
    small_series(tmp_path / "s", n=6)
    view = open_in(window, qtbot, tmp_path / "s")
    view.tool_box.setCurrentText("Brush")
    view.views["axial"].paint_requested.emit("axial", 32 * 6.0, 20 * 6.0, True, True)
    assert view.layers[0].name == "corrections" and view.layers[0].labels.any()
    assert not any("empty" in m for m in messages(window)), messages(window)


def test_a_label_map_that_misses_the_image_still_warns(window, qtbot, tmp_path):
    small_series(tmp_path / "s", n=6)
    view = open_in(window, qtbot, tmp_path / "s")
    g = view.volume.geometry
    far = Geometry(g.spacing, (g.origin[0] + 5000.0, g.origin[1], g.origin[2]), g.direction)
    labels = np.ones(view.volume.shape, np.uint8)
    view.add_label_layer(LabelMap(labels, far, {1: "elsewhere"}), name="far away")
    assert any("'far away' is empty on this image" in m for m in messages(window, "warning"))
    assert empty_layer_problem("x", False, False, user_created=False) == "Label layer 'x' has no labelled voxels"
    assert empty_layer_problem("x", False, False, user_created=True) is None
