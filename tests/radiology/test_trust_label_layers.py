"""Label layers tell the truth: no false alarms on a fresh correction layer, statistics per label, jump to it."""
from __future__ import annotations


import numpy as np
import pytest

from engines.radiology.geometry import Geometry
from engines.radiology.labelstats import empty_layer_problem, label_statistics
from engines.radiology.overlays import LabelMap

from .conftest import open_in, small_series


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
    qtbot.waitUntil(lambda: len(view.layers) == 1, timeout=10000)  # placed in a worker
    assert any("'far away' is empty on this image" in m for m in messages(window, "warning"))
    assert empty_layer_problem("x", False, False, user_created=False) == "Label layer 'x' has no labelled voxels"
    assert empty_layer_problem("x", False, False, user_created=True) is None


def test_label_statistics_count_volume_mean_and_centre_without_qt():
    labels = np.zeros((10, 20, 30), np.uint8)
    labels[2:4, 5:9, 10:20] = 1            # 80 voxels, the big part of label 1
    labels[8, 0:2, 0:2] = 1                # a small second part
    labels[5, 10:15, 3:6] = 7
    stored = np.full(labels.shape, 100, np.int16)
    stored[5, 10:15, 3:6] = np.tile([10, 30, 50], (5, 1))  # mean 30, sd sqrt(800/3)
    stats = label_statistics(labels, (0.5, 0.8, 2.0), stored, slope=2.0, intercept=-1024.0)
    assert sorted(stats) == [1, 7]
    one, seven = stats[1], stats[7]
    assert one.voxels == 84 and one.components == 2
    assert one.volume_ml == pytest.approx(84 * 0.5 * 0.8 * 2.0 / 1000)
    assert one.mean == pytest.approx(100 * 2 - 1024) and one.sd == pytest.approx(0.0)
    i, j, k = one.centre_ijk
    assert labels[k, j, i] == 1 and 10 <= i < 20 and 5 <= j < 9 and k in (2, 3)  # on the big part
    assert seven.mean == pytest.approx(30 * 2 - 1024) and seven.sd == pytest.approx(2 * np.sqrt(800 / 3))
    assert seven.centre_ijk == (4, 12, 5)
    ring = np.zeros((1, 21, 21), np.uint8)  # a hollow shape: its centre of mass is not on it
    yy, xx = np.mgrid[:21, :21]
    ring[0][(np.hypot(yy - 10, xx - 10) > 7) & (np.hypot(yy - 10, xx - 10) < 9)] = 3
    i, j, k = label_statistics(ring, (1, 1, 1))[3].centre_ijk
    assert ring[k, j, i] == 3 and label_statistics(ring, (1, 1, 1))[3].mean is None


def test_an_opened_label_map_lists_its_labels_with_statistics_and_jumps_to_them(window, qtbot, tmp_path):
    from engines.radiology.overlays import write_label_file

    small_series(tmp_path / "s", n=10)
    view = open_in(window, qtbot, tmp_path / "s")
    vol = view.volume
    labels = np.zeros(vol.shape, np.uint8)
    labels[6:8, 40:44, 10:15] = 2   # 40 voxels of 6 x 6 x 12 mm
    labels[1, 5:7, 50:52] = 5
    write_label_file(LabelMap(labels, vol.geometry, {2: "lesion", 5: "cyst"}), tmp_path / "marks.nii.gz")
    view.open_path(tmp_path / "marks.nii.gz")
    qtbot.waitUntil(lambda: len(view.layers) == 1 and view.layers[0].stats is not None, timeout=30000)
    assert any("marks.nii.gz: shown as a label layer over" in m for m in messages(window, "info"))
    tree = view.label_tree
    rows = {tree.topLevelItem(n).text(0): [tree.topLevelItem(n).text(c) for c in range(5)]
            for n in range(tree.topLevelItemCount())}
    hu = vol.real(vol.voxels)[labels == 2].astype(np.float64)
    assert rows["lesion"][:4] == ["lesion", "2", "40", f"{40 * 6 * 6 * 12 / 1000:.2f}"]
    mean, _pm, sd, unit = rows["lesion"][4].split()
    assert float(mean) == pytest.approx(hu.mean(), abs=0.051) and float(sd) == pytest.approx(hu.std(), abs=0.051)
    assert unit == "HU"
    assert rows["cyst"][2] == "4"
    cyst = next(tree.topLevelItem(n) for n in range(tree.topLevelItemCount()) if tree.topLevelItem(n).text(0) == "cyst")
    tree.itemDoubleClicked.emit(cyst, 0)
    i, j, k = view.cursor
    assert labels[k, j, i] == 5 and k == 1


def test_an_engine_result_layer_gets_statistics_too(window, qtbot, tmp_path):
    small_series(tmp_path / "s", n=10)
    view = open_in(window, qtbot, tmp_path / "s")
    view.run_engine("ct-tissue-threshold")
    qtbot.waitUntil(lambda: len(view.layers) == 1 and view.layers[0].stats is not None, timeout=60000)
    layer = view.layers[0]
    for value, stat in layer.stats.items():
        assert stat.voxels == int((layer.labels == value).sum())
    assert view.label_tree.topLevelItem(0).text(2) not in ("", "…")
