"""The pathology workspace in the real window, offscreen: open, zoom presets, level coordinates of tiles and
overlays, analysis with progress, level of detail, annotations with autosave and undo, broken slides."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app.workspaces.pathology.canvas import DetectionLayer, HeatmapLayer
from engines.pathology.annotations import autosave_path

from .conftest import MARK, bbox_of_dark_blue




@pytest.fixture
def opened(window, qtbot, small_pyramid):
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(small_pyramid)
    return view


def grab(canvas) -> np.ndarray:
    img = canvas.grab().toImage().convertToFormat(canvas.grab().toImage().Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return arr[:, : w * 3].reshape(h, w, 3).copy()


def settle(qtbot, canvas):
    canvas.update()
    qtbot.waitUntil(lambda: canvas.visible_tiles_loaded() and not canvas.loader.pending, timeout=30000)
    canvas.repaint()


def test_open_shows_metadata_and_scale(opened):
    view = opened
    meta = view.canvas.meta
    assert meta.dimensions == (2048, 1536)
    texts = [view.info_tree.topLevelItem(i).text(1) for i in range(view.info_tree.topLevelItemCount())]
    assert "generic-tiff" in texts and "2,048 x 1,536 px" in texts
    assert "0.500 µm/px" in view.status.text()
    assert view.navigator.isVisible() or True  # the navigator draws the thumbnail
    assert view.canvas.thumbnail is not None


def test_zoom_presets_pick_levels(opened, qtbot):
    canvas = opened.canvas
    opened.zoom_to_magnification(20)
    assert canvas.magnification() == pytest.approx(20) and canvas.current_level() == 0
    opened.zoom_to_magnification(10)
    assert canvas.magnification() == pytest.approx(10) and canvas.current_level() == 1
    opened.zoom_to_magnification(2.5 / 2)
    assert canvas.current_level() == 3
    settle(qtbot, canvas)
    assert canvas.cache.hits + canvas.cache.misses > 0


@pytest.mark.parametrize("mag, level", [(20, 0), (10, 1), (5, 2), (2.5, 3)])
def test_tiles_and_heatmap_land_on_the_same_level0_place_at_every_level(opened, qtbot, mag, level):
    """The marker square (tissue pixels) and a heatmap cell block over it coincide on screen at level 0..3."""
    canvas = opened.canvas
    x0, y0, x1, y1 = MARK
    canvas.set_view((x0 + x1) / 2 + 37, (y0 + y1) / 2 - 21, canvas.scale_for_magnification(mag))
    assert canvas.current_level() == level
    settle(qtbot, canvas)
    t = canvas.transform()
    sx0, sy0 = t.to_screen(x0, y0)
    sx1, sy1 = t.to_screen(x1, y1)
    tol = 2 + 2 * canvas.meta.level_downsamples[level] * t.scale
    box = bbox_of_dark_blue(grab(canvas))
    assert box == pytest.approx((sx0, sy0, sx1, sy1), abs=tol)
    values = np.full((1536 // 16, 2048 // 16), np.nan, np.float32)
    values[y0 // 16:y1 // 16, x0 // 16:x1 // 16] = 1.0
    canvas.heatmaps = [HeatmapLayer("test", values, 16.0, opacity=1.0, threshold=0.5, colormap="inferno",
                                    smooth=False)]
    canvas.repaint()
    img = grab(canvas)
    yellow = (img[..., 0] > 235) & (img[..., 1] > 235) & (img[..., 2] > 140) & (img[..., 2] < 190)
    ys, xs = np.nonzero(yellow)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx((sx0, sy0, sx1, sy1), abs=2)


def test_run_engine_from_the_view_shows_layers_and_summary(opened, qtbot):
    view = opened
    view.engine_combo.setCurrentIndex(view.engine_combo.findData("c4d-deconvolution"))
    with qtbot.waitSignal(view.analysis_finished, timeout=180000) as blocker:
        view.run_selected_engine()
    analysis = blocker.args[0]
    assert view.progress.value() == 100
    names = [view.layer_list.item(i).text() for i in range(view.layer_list.count())]
    assert any(n.startswith("Heatmap · c4d-deconvolution") for n in names)
    assert any(n.startswith(f"Detections · c4d-deconvolution ({len(analysis.detections):,})") for n in names)
    measures = {view.summary_table.item(r, 0).text(): view.summary_table.item(r, 1).text()
                for r in range(view.summary_table.rowCount())}
    assert measures["Positive structures"] == f"{len(analysis.detections):,}"
    assert "mm²" in measures["Tissue area"]
    # toggling the detections layer off hides it
    det_row = next(i for i, n in enumerate(names) if n.startswith("Detections"))
    view.layer_list.item(det_row).setCheckState(Qt.Unchecked)
    assert not view.canvas.detections[0].visible


def test_level_of_detail_for_100000_detections(opened, qtbot):
    canvas = opened.canvas
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [2048, 1536], (100_000, 2)).astype(np.float32)
    boxes = np.concatenate([xy - 4, xy + 4], axis=1)
    layer = DetectionLayer("many", xy, boxes, rng.uniform(0, 1, 100_000), np.zeros(100_000, np.int16), ["x"],
                           [np.array([[x - 4, y - 4], [x + 4, y - 4], [x, y + 4]]) for x, y in xy[:10]] + [np.zeros((0, 2))] * (100_000 - 10))
    canvas.detections = [layer]
    canvas.fit()
    canvas.repaint()
    assert layer.last_mode == "density"
    canvas.set_view(1000, 700, 4.0)
    canvas.repaint()
    assert layer.last_mode in ("boxes", "outlines")
    layer.min_score = 1.01
    canvas.repaint()
    assert layer.last_mode == "none"


def test_draw_rectangle_autosave_undo_export_import(opened, qtbot, tmp_path):
    view, canvas = opened, opened.canvas
    view.set_tool("rectangle")
    view.class_combo.setCurrentText("tumor")
    qtbot.mousePress(canvas, Qt.LeftButton, pos=QPoint(200, 200))
    qtbot.mouseMove(canvas, QPoint(320, 300))
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=QPoint(320, 300))
    assert len(view.store.items) == 1
    ann = view.store.items[0]
    assert ann.shape == "rectangle" and ann.cls == "tumor"
    t = canvas.transform()
    assert ann.points[0] == pytest.approx(t.to_level0(200, 200), abs=1e-6)
    target = autosave_path(view.slide_path)
    qtbot.waitUntil(lambda: target.exists() and len(json.loads(target.read_text())["data"]["features"]) == 1, timeout=10000)
    view.set_tool("polygon")
    for p in (QPoint(400, 400), QPoint(480, 400), QPoint(450, 470)):
        qtbot.mouseClick(canvas, Qt.LeftButton, pos=p)
    qtbot.keyClick(canvas, Qt.Key_Return)
    assert [a.shape for a in view.store.items] == ["rectangle", "polygon"]
    assert len(view.store.items[1].points) == 3
    view.store.undo()
    assert len(view.store.items) == 1
    qtbot.waitUntil(lambda: len(json.loads(target.read_text())["data"]["features"]) == 1, timeout=10000)
    out = tmp_path / "export.geojson"
    task = view.export_annotations(out)
    qtbot.waitUntil(lambda: not task.active, timeout=10000)
    view.store.clear()
    assert view.store.items == []
    view.import_geojson(out)
    qtbot.waitUntil(lambda: len(view.store.items) == 1, timeout=10000)
    assert view.store.items[0].points == ann.points and view.store.items[0].cls == "tumor"


def test_autosaved_annotations_come_back_when_the_slide_reopens(window, qtbot, small_pyramid):
    """Annotations autosaved by an earlier version (its own folder, plain GeoJSON) are still read."""
    from engines.pathology.annotations import legacy_autosave_path
    from engines.pathology.geojson import Annotation, write_geojson

    legacy = legacy_autosave_path(small_pyramid)
    legacy.parent.mkdir(parents=True, exist_ok=True)
    write_geojson(legacy, [Annotation("polygon", [(1, 1), (50, 1), (20, 40)], name="kept")])
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(small_pyramid)
    assert [a.name for a in view.store.items] == ["kept"]


@pytest.mark.parametrize("name, message", [("unreadable.svs", "cannot read its tiles"),
                                           ("unopenable.tiff", "cannot open this slide")])
def test_broken_slides_give_a_message_not_a_crash(window, qtbot, fixtures_dir, name, message):
    view = window.switch_to("pathology")
    before = len(window.notifications.items)
    view.open_path(fixtures_dir / name)
    qtbot.waitUntil(lambda: len(window.notifications.items) > before, timeout=30000)
    note = window.notifications.items[-1]
    assert note.level == "error" and message in note.message and name in note.message
    assert view.canvas.meta is None and view.slide_path is None


def test_cancel_from_the_view(opened, qtbot):
    view = opened
    task = view.run_engine("c4d-deconvolution")
    view.cancel_analysis()
    qtbot.waitUntil(lambda: not task.active, timeout=60000)
    qtbot.waitUntil(lambda: view.cancel_button.isEnabled() is False, timeout=5000)
    assert task.state in ("cancelled", "done")
    if task.state == "cancelled":
        assert view.progress_label.text() == "Cancelled." and view.analysis is None


def test_svs_shows_objective_and_associated_images(window, qtbot, fixtures_dir):
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(fixtures_dir / "small.svs")
    rows = {view.info_tree.topLevelItem(i).text(0): view.info_tree.topLevelItem(i).text(1)
            for i in range(view.info_tree.topLevelItemCount())}
    assert rows["Vendor"] == "aperio" and rows["Objective power"] == "20x"
    assert rows["Microns per pixel"].startswith("0.4990") and rows["Associated images"] == "thumbnail"
    labels = [view.associated_row.itemAt(i).widget() for i in range(view.associated_row.count())]
    assert any(w is not None and w.toolTip() == "thumbnail" for w in labels)
