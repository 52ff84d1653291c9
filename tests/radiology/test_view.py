"""The radiology workspace as a user drives it: open, scroll, window, measure, overlays, engines, export."""
from __future__ import annotations

import time
from pathlib import Path

import nibabel
import numpy as np
import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QPoint, QPointF, Qt

from app.main_window import MainWindow
from engines.core.engine import Engine, EngineInfo
from engines.radiology.geometry import Geometry
from engines.radiology.overlays import Box, LabelMap, read_seg, write_label_file
from .conftest import open_in, small_series




def errors(window) -> list[str]:
    return [n.message for n in window.notifications.items if n.level == "error"]


def test_open_a_series_shows_three_planes_with_geometry(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    vol = view.volume
    assert vol.shape == (20, 64, 64) and vol.voxels.dtype == np.int16  # stored type, no float copy
    assert errors(window) == []
    assert all(view.views[p].isVisible() for p in ("axial", "coronal", "sagittal"))
    assert [view.views["axial"].edge[e].text() for e in ("left", "right", "top", "bottom")] == ["R", "L", "A", "P"]
    assert [view.views["sagittal"].edge[e].text() for e in ("left", "right", "top", "bottom")] == ["A", "P", "S", "I"]
    coronal = view.views["coronal"].image
    rect = coronal.mapRectToParent(coronal.boundingRect())
    assert rect.width() == pytest.approx(64 * 6.0) and rect.height() == pytest.approx(20 * 12.0)  # mm: true aspect
    assert view.cursor == [32, 32, 10]
    text = view.readout_text(32, 32, 10)
    assert "HU" in text and "mm LPS" in text
    assert view.series_list.count() == 1 and "64×64" in view.series_list.item(0).text()


def test_scroll_window_level_presets_and_invert(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    view.scroll("axial", 3)
    assert view.cursor[2] == 13
    view.scroll("axial", 100)
    assert view.cursor[2] == 19  # clamped
    assert np.array_equal(view.views["axial"].image.image, view.volume.voxels[19])
    view.scroll("sagittal", -2)
    assert view.cursor[0] == 30
    assert view.views["axial"].slider.value() == 19 and view.views["axial"].slider.maximum() == 19
    view.views["axial"].slider.setValue(4)  # the slider scrolls too
    assert view.cursor[2] == 4
    lung = view.preset_box.findText("4 Lung", Qt.MatchStartsWith)
    view.toolbar.preset_chosen(lung)
    assert view.window == (1500, -600)
    assert tuple(view.views["axial"].image.levels) == pytest.approx((-1350 + 1024, 150 + 1024))  # stored units
    assert view.wl_label.text() == "W 1500  L -600 HU"
    view.toolbar.window_drag(0, 0, True, False)
    view.toolbar.window_drag(50, -20, False, True)
    width, level = view.window
    assert width > 1500 and level > -600
    view.wl_label.setText("W 80 L 35")
    view.wl_label.editingFinished.emit()
    assert view.window == (80, 35)
    view.wl_label.setText("nonsense")
    view.wl_label.editingFinished.emit()
    assert view.window == (80, 35) and view.wl_label.text() == "W 80  L 35 HU"
    view.invert_box.setChecked(True)
    assert view.views["axial"].image.lut is not None
    view.set_layout("single", "coronal")
    assert view.views["coronal"].isVisible() and not view.views["axial"].isVisible()


def test_left_click_moves_the_linked_crosshair(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    axial = view.views["axial"]
    qtbot.waitUntil(lambda: axial.graphics.width() > 100)
    target = axial.box.mapViewToScene(QPointF(10 * 6.0 + 3, 50 * 6.0 + 3))
    pos = axial.graphics.mapFromScene(target)
    qtbot.mouseClick(axial.graphics.viewport(), Qt.LeftButton, pos=QPoint(int(pos.x()), int(pos.y())))
    qtbot.waitUntil(lambda: view.cursor[:2] == [10, 50], timeout=3000)
    assert view.views["coronal"].vline.value() == pytest.approx(10.5 * 6.0)
    view.toggle_crosshair()
    assert not view.views["coronal"].vline.isVisible()
    view.toggle_crosshair()
    assert view.views["coronal"].vline.isVisible()
    assert view.views["sagittal"].vline.value() == pytest.approx(50.5 * 6.0)


def test_ruler_and_roi_measure_in_mm_and_hu(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    axial = view.views["axial"]
    view.tool_box.setCurrentText("Ruler")
    axial.tool_drag(QPointF(3, 3), QPointF(33, 43), True)  # voxel centres (0, 0) and (5, 6.67) at 6 mm
    ruler = view.measurements.items[-1]
    assert ruler.length_mm == pytest.approx(50.0) and ruler.slice_index == 10 and ruler.plane == "axial"
    assert "Ruler 1 50.0 mm" in view.measure_label.text()
    view.tool_box.setCurrentText("ROI")
    axial.tool_drag(QPointF(120, 120), QPointF(240, 240), True)  # measured in a worker
    qtbot.waitUntil(lambda: len(view.measurements) == 2, timeout=10000)
    stats = view.measurements.items[-1].stats
    region = view.volume.real(view.volume.voxels[10, 20:40, 20:40])
    assert stats.n == region.size and stats.mean == pytest.approx(float(region.mean()), abs=0.01)
    assert stats.area_mm2 == pytest.approx(120 * 120)
    assert "ROI 1 mean" in view.measure_label.text()


def test_label_layer_given_on_another_grid_lands_in_place(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    vol = view.volume
    labels = np.zeros(vol.shape, np.uint8)
    labels[10, 5:9, 50:52] = 2  # near the patient's left and anterior
    # the same labels stored flipped in x and z, with the geometry saying so
    g = vol.geometry
    far = g.index_to_lps([vol.shape[2] - 1, 0, vol.shape[0] - 1])
    flipped = Geometry(g.spacing, (far[0], g.origin[1], far[2]), np.diag([-1.0, 1.0, -1.0]))
    assert view.add_label_layer(labels[::-1, :, ::-1].copy(), flipped, {2: "marker"}, name="flipped input") is None
    qtbot.waitUntil(lambda: len(view.layers) == 1, timeout=10000)  # resampled in a worker, never in the GUI
    layer = view.layers[0]
    assert np.array_equal(layer.labels, labels)
    assert view.layer_list.count() == 1 and view.label_tree.topLevelItem(0).text(0) == "marker"
    view.set_cursor(50, 6, 10)
    assert view.views["axial"].overlay.isVisible()
    assert view.views["axial"].overlay.image[6, 50] == 2
    assert "flipped input: marker" in view.readout_text(50, 6, 10)
    view.outline_box.setChecked(True)
    view.label_tree.topLevelItem(0).setCheckState(0, Qt.Unchecked)
    assert 2 in layer.hidden_labels and layer.lut()[2, 3] == 0


def test_boxes_threshold_list_and_jump(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    g = view.volume.geometry
    view.add_boxes([Box.from_index([5, 5, 3], [9, 9, 5], g, "nodule", 0.9),
                    {"min_index": [40, 40, 15], "max_index": [44, 44, 16], "label": "nodule", "score": 0.2}])
    assert view.box_list.count() == 1
    view.threshold.setValue(10)
    assert view.box_list.count() == 2
    view.layers_panel.box_activated(view.box_list.item(0))
    assert view.cursor == [7, 7, 4]
    assert not view.views["axial"].boxes_item.path().isEmpty()
    view.scroll("axial", 8)
    assert view.views["axial"].boxes_item.path().isEmpty()  # no box cuts slice 12


def test_comparison_modes(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    vol = view.volume
    other = vol.real(vol.voxels) + 100.0
    view.add_comparison(other, vol.geometry, name="plus 100")
    assert view.compare_mode == "swipe" and view.views["axial"].compare_image.isVisible()
    view.compare_box.setCurrentText("Difference")
    assert np.allclose(view.views["axial"].image.image, -100.0)
    view.compare_box.setCurrentText("Flicker")
    view.planes.flicker_tick()
    assert view.views["axial"].compare_image.isVisible()
    view.compare_box.setCurrentText("Side by side")
    assert view.layout_mode == "side" and view.compare_view.isVisible()
    assert np.allclose(view.compare_view.image.image, other[10])
    view.compare_box.setCurrentText("Off")
    assert view.layout_mode == "three" and not view.views["axial"].compare_image.isVisible()


class _SlowRadiologyEngine(Engine):
    id = "test-slow-radiology"

    def info(self):
        return EngineInfo(self.id, "Slow test engine", "segmentation", "radiology", "CT", "labels")

    def predict(self, request, *, progress, cancel=None):
        assert request["image"].GetSize()[2] == 20  # the lazy request builds a SimpleITK image
        for n in range(500):
            cancel.raise_if_cancelled()
            progress(n / 500, "working")
            time.sleep(0.01)
        return {}


def test_engines_run_from_the_workspace_with_progress_and_cancel(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    qtbot.waitUntil(lambda: not view.contracts.pending, timeout=30000)
    view._fill_engine_menu()
    titles = [a.text() for a in view.engine_menu.actions()]
    assert "Otsu threshold segmentation" in titles and "CT tissue threshold (body, lung, bone)" in titles
    # engines this CT does not suit (the diffusion-MR lesion models) are greyed out; every other one runs
    assert all(a.isEnabled() for a in view.engine_menu.actions()
               if "weights not installed" not in a.text() and "not for this study" not in a.text())
    assert any("not for this study" in t for t in titles)
    task = view.run_engine("ct-tissue-threshold")
    qtbot.waitUntil(lambda: len(view.layers) == 1, timeout=60000)
    assert set(view.layers[0].names.values()) == {"body (soft tissue)", "air / lung inside the body", "bone"}
    assert task.state == task.DONE
    view.run_engine("otsu-segmentation")
    qtbot.waitUntil(lambda: len(view.layers) == 2, timeout=60000)
    assert view.layers[1].labels.shape == view.volume.shape and view.layers[1].labels.any()
    window.registry().register(_SlowRadiologyEngine)
    task = view.run_engine("test-slow-radiology")
    qtbot.waitUntil(lambda: task.fraction is not None and task.fraction > 0, timeout=10000)
    assert view.cancel_button.isEnabled()
    with qtbot.waitSignal(task.cancelled, timeout=10000):
        view.cancel_engine()
    qtbot.waitUntil(lambda: not view.cancel_button.isEnabled(), timeout=5000)
    assert len(view.layers) == 2 and errors(window) == []


def test_export_seg_and_reopen_it_as_an_overlay(window, qtbot, tmp_path):
    small_series(tmp_path / "sag", n=10, orientation=(0, 1, 0, 0, 0, -1))
    view = open_in(window, qtbot, tmp_path / "sag")
    labels = np.zeros(view.volume.shape, np.uint8)
    labels[2:4, 10:14, 3:5] = 1
    view.add_label_layer(labels, None, {1: "lesion"}, name="reader edit")
    task = view.export_seg(tmp_path / "out" / "edit.dcm")
    qtbot.waitUntil(lambda: not task.active, timeout=30000)
    back, ref_uid = read_seg(tmp_path / "out" / "edit.dcm")
    assert ref_uid == view.volume.series.uid and back.names == {1: "lesion"}
    assert np.array_equal(back.on_grid(view.volume.geometry, view.volume.shape).labels, labels)
    with qtbot.waitSignal(view.opened, timeout=30000):
        view.open_path(tmp_path / "out" / "edit.dcm")
    assert len(view.layers) == 2 and np.array_equal(view.layers[1].labels, labels)
    task = view.export_labels(tmp_path / "out" / "edit.nii.gz")
    qtbot.waitUntil(lambda: not task.active, timeout=30000)
    assert (tmp_path / "out" / "edit.labels.json").exists()
    assert errors(window) == []


def test_liver_seg_alone_is_shown_on_its_own_grid(window, qtbot):
    view = open_in(window, qtbot, Path(get_testdata_file("liver.dcm")))
    assert view.volume.shape == (3, 512, 512) and len(view.layers) == 1
    assert view.layers[0].names == {1: "Liver"} and view.layers[0].labels.sum() > 1000
    assert any("not open" in f for f in view.volume.findings)


def test_nifti_volume_then_a_nifti_label_map_on_it(window, qtbot, tmp_path):
    anat = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    view = open_in(window, qtbot, anat)
    vol = view.volume
    assert vol.modality == "MR" and view.preset_box.count() == 2  # no CT presets for MR: auto only
    labels = np.zeros(vol.shape, np.uint8)
    labels[vol.shape[0] // 2, 3:6, 2:4] = 1
    write_label_file(LabelMap(labels, vol.geometry, {1: "spot"}), tmp_path / "spot.nii.gz")
    view = open_in(window, qtbot, tmp_path / "spot.nii.gz")
    qtbot.waitUntil(lambda: len(view.layers) == 1, timeout=10000)
    assert view.volume is vol and np.array_equal(view.layers[0].labels, labels)


def test_series_browser_tags_and_findings(window, qtbot, tmp_path):
    small_series(tmp_path / "st" / "a", n=8, description="first")
    paths = small_series(tmp_path / "st" / "b", n=5, rows=32, cols=32, description="second", seed=4)
    paths[2].unlink()
    (tmp_path / "st" / "junk.txt").write_text("x")
    view = open_in(window, qtbot, tmp_path / "st")
    assert view.series_list.count() == 2 and view.volume.shape[0] == 8
    assert any("not DICOM" in view.findings_list.item(n).text() for n in range(view.findings_list.count()))
    second = next(view.series_list.item(n) for n in range(2) if "second" in view.series_list.item(n).text())
    assert not second.icon().isNull()
    view.series_browser.activated(second)
    qtbot.waitUntil(lambda: view.volume.shape == (5, 32, 32), timeout=20000)
    assert any("missing" in f for f in view.volume.findings)
    view.tabs.setCurrentWidget(view.tag_tree)
    assert "missing" in view.tag_tree.topLevelItem(0).text(2)  # the middle slice is the dropped one
    view.set_cursor(16, 16, 0)
    names = [view.tag_tree.topLevelItem(n).text(1) for n in range(view.tag_tree.topLevelItemCount())]
    assert "Image Position (Patient)" in names and "Rescale Intercept" in names


def test_unreadable_input_is_a_message_not_a_crash(window, qtbot, tmp_path):
    (tmp_path / "x.txt").write_text("nothing")
    view = window.switch_to("radiology")
    view.open_path(tmp_path)
    qtbot.waitUntil(lambda: bool(errors(window)), timeout=20000)
    assert "no readable DICOM" in errors(window)[0] and view.volume is None


def test_brush_eraser_undo_and_autosave_survives_a_restart(qtbot, tmp_path):
    small_series(tmp_path / "s", n=10)
    first = MainWindow(detect_device=False)
    qtbot.addWidget(first)
    first.show()
    view = open_in(first, qtbot, tmp_path / "s")
    view.tool_box.setCurrentText("Brush")
    view.brush_size.setValue(12)
    view.views["axial"].paint_requested.emit("axial", 32 * 6.0, 20 * 6.0, True, False)
    view.views["axial"].paint_requested.emit("axial", 40 * 6.0, 20 * 6.0, False, True)  # a stroke to the left
    layer = view.layers[0]
    painted = layer.labels.copy()
    k = view.cursor[2]
    assert layer.name == "corrections" and painted[k, 19, 31] == 1 and painted[k, 19, 39] == 1
    assert painted[k, 19, 45] == 0 and painted[k - 1].sum() == 0  # 12 mm = 2 pixels of 6 mm: a small disc
    view.tool_box.setCurrentText("Eraser")
    view.views["axial"].paint_requested.emit("axial", 32 * 6.0, 20 * 6.0, True, True)
    assert layer.labels[k, 19, 31] == 0
    view.undo_edit()
    assert np.array_equal(layer.labels, painted)
    task = view.autosave_now()
    qtbot.waitUntil(lambda: not task.active, timeout=20000)
    # a new window (as after a crash) opening the same series gets the corrections back
    first.tasks.shutdown(5000)
    second = MainWindow(detect_device=False)
    qtbot.addWidget(second)
    second.show()
    again = open_in(second, qtbot, tmp_path / "s")
    qtbot.waitUntil(lambda: len(again.layers) == 1, timeout=20000)  # restored by a background task
    assert len(again.layers) == 1 and again.layers[0].name == "corrections (autosaved edits)"
    assert np.array_equal(again.layers[0].labels, painted)
    assert any("Restored 1 label layer" in n.message for n in second.notifications.items)
    second.tasks.shutdown(5000)


def test_mr_brain_sample_opens_with_its_tissue_labels(window, qtbot):
    view = window.switch_to("radiology")
    from engines.core.samples import sample_path

    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(sample_path("mr-brain"))
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    assert view.volume.shape == (189, 233, 197) and view.volume.modality == "MR"
    assert view.preset_box.count() == 2  # MR: auto window only, no CT presets
    assert len(view.layers) == 1 and view.layers[0].names == {1: "grey matter", 2: "white matter"}
    # the template's centre is white matter near the midline: the labels sit on the anatomy
    vol, lab = view.volume, view.layers[0].labels
    assert vol.real(vol.voxels)[lab == 2].mean() > vol.real(vol.voxels)[lab == 1].mean()  # WM brighter on T1
    assert errors(window) == []


class _FakeKernelEngine(Engine):
    """Stands in for an image-to-image engine (issue 5's kernel conversion): returns a Volume as ``image``."""

    id = "test-fake-kernel"

    def info(self):
        return EngineInfo(self.id, "Fake kernel", "image-to-image", "radiology", "CT", "CT")

    def predict(self, request, *, progress, cancel=None):
        from engines.radiology.overlays import Box

        vol = request["volume"]
        out = type(vol)(voxels=vol.voxels // 2, geometry=vol.geometry, slope=vol.slope * 2, intercept=vol.intercept,
                        modality="CT")
        box = Box.from_index([1, 1, 1], [5, 5, 3], vol.geometry, "finding", 0.8)
        return {"image": out, "geometry": vol.geometry, "boxes": [box]}


def test_image_and_box_results_of_an_engine_become_layers(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    window.registry().register(_FakeKernelEngine)
    view.run_engine("test-fake-kernel")
    qtbot.waitUntil(lambda: view.comparison is not None, timeout=20000)
    vol = view.volume
    expected = (vol.voxels // 2).astype(np.float32) * (vol.slope * 2) + vol.intercept
    assert np.allclose(view.comparison[1], expected)
    assert view.box_layers and view.box_list.count() == 1


def test_seg_in_the_study_folder_loads_from_the_browser(window, qtbot, tmp_path):
    small_series(tmp_path / "st" / "ct", n=8)
    from engines.radiology.reader import load_series, scan_dicom
    from engines.radiology.overlays import write_seg

    volume = load_series(scan_dicom(tmp_path / "st" / "ct").image_series()[0])
    labels = np.zeros(volume.shape, np.uint8)
    labels[3, 10:20, 40:50] = 1
    write_seg(LabelMap(labels, volume.geometry, {1: "lesion"}), volume, tmp_path / "st" / "seg.dcm")
    view = open_in(window, qtbot, tmp_path / "st")
    seg_item = next(view.series_list.item(n) for n in range(view.series_list.count())
                    if "SEG" in view.series_list.item(n).text())
    view.series_browser.activated(seg_item)
    qtbot.waitUntil(lambda: len(view.layers) == 1, timeout=20000)
    assert np.array_equal(view.layers[0].labels, labels) and view.layers[0].names == {1: "lesion"}


def test_opening_another_series_releases_the_previous_volume_and_layers(window, qtbot, tmp_path):
    import gc
    import weakref

    small_series(tmp_path / "a", n=8)
    small_series(tmp_path / "b", n=6, seed=5)
    view = open_in(window, qtbot, tmp_path / "a")
    layer = view.add_label_layer(np.ones(view.volume.shape, np.uint8), None, {1: "all"}, name="everything")
    view.add_comparison(view.volume.real(view.volume.voxels), view.volume.geometry, "copy")
    refs = [weakref.ref(view.volume.voxels.base if view.volume.voxels.base is not None else view.volume.voxels),
            weakref.ref(layer.labels), weakref.ref(view.comparison[1])]
    del layer
    view.set_layout("single", "axial")  # hidden views must not keep the old volume either
    view = open_in(window, qtbot, tmp_path / "b")
    assert view.volume.shape[0] == 6
    gc.collect()
    assert [r() is None for r in refs] == [True, True, True]


def test_rtstruct_needs_an_image_then_draws_on_it(window, qtbot, tmp_path):
    from .test_overlays_and_engine import write_rtstruct

    small_series(tmp_path / "ct", n=8)
    view = window.switch_to("radiology")
    from engines.radiology.reader import load_series, scan_dicom

    volume = load_series(scan_dicom(tmp_path / "ct").image_series()[0])
    g = volume.geometry
    lo, hi = g.index_to_lps([10, 20, 3]), g.index_to_lps([20, 30, 3])
    rt = write_rtstruct(tmp_path / "rt.dcm", volume, (lo[0], lo[1], hi[0], hi[1]), float(lo[2]))
    view.open_path(rt)
    qtbot.waitUntil(lambda: bool(errors(window)), timeout=20000)
    assert "open its image series first" in errors(window)[0]
    view = open_in(window, qtbot, tmp_path / "ct")
    with qtbot.waitSignal(view.opened, timeout=20000):
        view.open_path(rt)
    assert len(view.layers) == 1 and view.layers[0].names == {1: "GTV"}
    assert view.layers[0].labels[3, 25, 15] == 1 and view.layers[0].labels[3, 5, 5] == 0


def test_first_pixels_arrive_before_the_volume(window, qtbot, ct_folder):
    view = window.switch_to("radiology")
    seen = []
    show = view._show_preview

    def spy(p):
        seen.append((p["image"].shape, view.volume is None))
        show(p)

    view._show_preview = spy  # the job's partial results (the first slice) arrive here, in the GUI thread
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(ct_folder)
    assert seen and seen[0] == ((64, 64), True)  # shown while the volume was still loading


def test_thousands_of_boxes_are_drawn_and_listed_without_a_loop_per_box(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    rng = np.random.default_rng(0)
    lo = rng.integers(0, 50, size=(3000, 3)) * [1, 1, 0] + rng.integers(0, 18, size=(3000, 1)) * [0, 0, 1]
    boxes = [{"min_index": list(a), "max_index": list(a + [4, 4, 1]), "score": float(s)}
             for a, s in zip(lo, rng.uniform(0, 1, 3000))]
    layer = view.add_boxes(boxes, threshold=0.0)
    view.threshold.setValue(0)
    assert layer.lo.shape == (3000, 3)
    assert view.box_list.count() == 501 and "3000 findings" in view.box_list.item(0).text()
    k = view.cursor[2]
    expected = int(np.sum((lo[:, 2] <= k) & (k <= lo[:, 2] + 1)))
    path = view.views["axial"].boxes_item.path()
    assert expected > 0 and path.elementCount() == expected * 5  # each rectangle is a closed 5-point subpath


def test_structured_report_content_is_listed(window, qtbot):
    view = window.switch_to("radiology")
    with qtbot.waitSignal(view.opened, timeout=20000):
        view.open_path(Path(get_testdata_file("test-SR.dcm")))
    lines = [view.findings_list.item(n).text() for n in range(view.findings_list.count())]
    assert lines[1].startswith("Diagnosis") and any("Diameter: 3" in line for line in lines)
    assert errors(window) == []


def test_every_visible_label_layer_is_drawn(window, qtbot, ct_folder):
    view = open_in(window, qtbot, ct_folder)
    a = np.zeros(view.volume.shape, np.uint8)
    a[10, 0:10, 0:10] = 1
    b = np.zeros(view.volume.shape, np.uint8)
    b[10, 50:60, 50:60] = 2
    view.add_label_layer(a, None, {1: "a"}, name="first")
    view.add_label_layer(b, None, {2: "b"}, name="second")
    items = [item for item in view.views["axial"].overlays if item.isVisible()]
    assert len(items) == 2 and items[0].image[5, 5] == 1 and items[1].image[55, 55] == 2
    view.set_layer_visible(view.layers[0], False)
    items = [item for item in view.views["axial"].overlays if item.isVisible()]
    assert len(items) == 1 and items[0].image[55, 55] == 2
