"""Trust: large annotation sets (20,000 here; the benchmark measures a million) open, list, draw and edit
without per-annotation work on the GUI thread: a virtual list, boxes made by the worker, drawing limited to
the view with a density raster when zoomed out, and undo that keeps operations rather than copies."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app.workspaces.pathology.annotation_model import AnnotationListModel
from engines.pathology.annotations import AnnotationStore, autosave_path
from engines.pathology.geojson import Annotation, rectangle_points

N = 20_000


def _features(n, seed=0, object_type="annotation"):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(10, [2030, 1520], (n, 2))
    return [{"type": "Feature", "id": f"{object_type}-{i}", "geometry": {"type": "Polygon", "coordinates": [[
        [x - 3, y - 3], [x + 3, y - 3], [x + 3, y + 3], [x - 3, y + 3], [x - 3, y - 3]]]},
        "properties": {"objectType": object_type, "name": f"cell {i}"}} for i, (x, y) in enumerate(xy.tolist())]


@pytest.fixture
def many(window, qtbot, small_pyramid):
    target = autosave_path(small_pyramid)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"schema": 1, "data": {"type": "FeatureCollection", "features": _features(N)}}))
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=120000):
        view.open_path(small_pyramid)
    return view


def test_a_slide_with_20000_saved_annotations_lists_them_virtually(many):
    view = many
    assert len(view.store.items) == N and view.store.bounds.shape == (N, 4)
    assert isinstance(view.annotation_list.model(), AnnotationListModel)
    assert view.annotation_model.rowCount() == N
    last = view.annotation_model.index(N - 1, 0)
    assert view.annotation_model.data(last).startswith(f"cell {N - 1}") and "mm²" in view.annotation_model.data(last)
    assert view.annotation_model.data(last, Qt.UserRole) == f"annotation-{N - 1}"
    # choosing a row selects the annotation and centres the view on it
    view.annotation_list.setCurrentIndex(last)
    assert view.canvas.selected_id == f"annotation-{N - 1}"
    x0, y0, x1, y1 = view.store.bounds[N - 1]
    assert (view.canvas.cx, view.canvas.cy) == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2), abs=1e-6)


def test_zoomed_out_draws_density_zoomed_in_draws_only_what_is_in_view(many, qtbot):
    canvas = many.canvas
    canvas.fit()
    canvas.repaint()
    assert canvas.annotation_mode == "density"
    canvas.set_view(1000, 700, 4.0)
    canvas.repaint()
    assert canvas.annotation_mode == "outlines"
    in_view = canvas.annotations_in(canvas.transform().visible_level0())
    assert 0 < len(in_view) < canvas.annotation_density_above
    # a click hits the annotation under it, found through the boxes
    i = int(in_view[0])
    x0, y0, x1, y1 = many.store.bounds[i]
    sx, sy = canvas.transform().to_screen((x0 + x1) / 2, (y0 + y1) / 2)
    many.set_tool("pan")
    qtbot.mouseClick(canvas, Qt.LeftButton, pos=QPoint(int(sx), int(sy)))
    x, y = canvas.transform().to_level0(int(sx), int(sy))
    under = canvas.annotations_in((x, y, x, y))  # squares: their boxes are their outlines
    assert i in under and canvas.selected_id == many.store.items[int(under[-1])].id  # the topmost one


def test_editing_a_large_set_keeps_operations_not_copies():
    store = AnnotationStore()
    items = [Annotation("rectangle", rectangle_points(i, i, i + 5, i + 5), name=str(i)) for i in range(N)]
    store.reset(items)
    first = store.items[0]
    store.add(Annotation("point", [(1.0, 2.0)], name="new"))
    store.update(first.id, name="renamed")
    assert store.items[0].name == "renamed" and first.name == "0"  # replaced, not edited in place
    store.remove(store.items[5].id)
    assert len(store.items) == N and store.bounds.shape == (N, 4)
    assert store.undo() and store.undo() and store.undo()
    assert len(store.items) == N and store.items[0] is first  # the same objects came back: nothing was copied
    assert store.bounds[5].tolist() == [5, 5, 10, 10]
    assert store.redo() and len(store.items) == N + 1 and store.bounds[-1].tolist() == [1, 2, 1, 2]


def test_importing_20000_features_builds_both_layers_off_the_gui_thread(many, qtbot, tmp_path):
    view = many
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(_features(N // 2, seed=1) + _features(N // 2, seed=2, object_type="detection")))
    view.import_geojson(path)
    qtbot.waitUntil(lambda: len(view.store.items) == N + N // 2, timeout=120000)
    layer = view.canvas.detections[-1]
    assert layer.name == "Imported · qupath.geojson" and len(layer) == N // 2
    assert view.store.bounds.shape == (N + N // 2, 4) and view.annotation_model.rowCount() == N + N // 2
