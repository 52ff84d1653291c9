"""The pathology workflows driven headless through PathologySession: open real slides (the OpenSlide fixtures, the
bundled H&E region), navigate (levels and tiles chosen), annotate with undo/redo, add an engine's detection layer,
autosave, reopen from the autosave, and open another slide (everything resets). No Qt is imported."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engines.pathology.annotations import autosave_path
from engines.pathology.session import DetectionLayer, PathologySession
from engines.pathology.viewstate import TILE, boxes_meeting, point_in_polygon, tile_rect0, tiles_for

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "openslide-fixtures"
HE_REGION = ROOT / "resources" / "samples" / "pathology" / "cmu_small_region.svs"  # real H&E, Aperio, 0.499 µm/px


@pytest.fixture(scope="module")
def ihc_slide(tmp_path_factory) -> Path:
    """A 3-level tiled TIFF made from a real DAB-stained field: what the C4d engines accept."""
    from engines.pathology.samples import synth_ihc_canvas, write_pyramid_tiff

    canvas, _ = synth_ihc_canvas(1024, 768, seed=3)
    return write_pyramid_tiff(tmp_path_factory.mktemp("ihc") / "ihc.tiff", canvas, 0.5, levels=3)


@pytest.fixture
def session():
    s = PathologySession()
    s.viewport.resize(600, 400)
    yield s
    s.shutdown()


def test_the_session_imports_no_qt_and_runs_a_workflow(tmp_path):
    """In a fresh interpreter: open, zoom, pan, annotate, undo, autosave, reopen - and PySide6 never loaded."""
    script = textwrap.dedent(f"""
        import sys
        from engines.pathology.session import PathologySession
        s = PathologySession()
        s.viewport.resize(600, 400)
        s.open({str(HE_REGION)!r})
        s.viewport.zoom_to_magnification(10)
        s.viewport.pan_by(-300, 0)
        assert s.viewport.visible_tiles()
        s.add_annotation("rectangle", [(100, 100), (400, 300)], cls="tumor")
        s.undo(); s.redo()
        s.autosave(); assert s.flush_autosave()
        s.shutdown()
        again = PathologySession()
        again.open({str(HE_REGION)!r})
        assert [a.cls for a in again.store.items] == ["tumor"], list(again.store.items)
        again.shutdown()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
        print("QT:", loaded)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "CSI_WORKSTATION_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "QT: []" in out.stdout


def test_open_the_he_region_fits_it_and_reads_real_tiles(session):
    opened = session.open(HE_REGION)
    meta = session.meta
    assert meta.vendor == "aperio" and meta.dimensions == (2220, 2967) and meta.mpp == pytest.approx(0.499)
    assert session.slide_path == HE_REGION and not session.dirty and session.notices == []
    assert set(opened.associated) == {"label", "macro", "thumbnail"}
    # fitted: the whole slide in view, centred
    vp = session.viewport
    assert vp.scale == pytest.approx(min(600 / 2220, 400 / 2967) * 0.95)
    x0, y0, x1, y1 = vp.visible_level0()
    assert x0 < 0 and y0 < 0 and x1 > 2220 and y1 > 2967
    # one level only: every tile is level 0, and a tile's pixels are the slide's pixels at its place
    tile = session.read_tile((0, 6, 4))
    assert tile.shape == (TILE, TILE, 3) and tile.std() > 30  # tissue, not glass
    region = session.reader.read_region((6 * TILE + 10, 4 * TILE + 10), 0, (20, 20))
    assert np.array_equal(tile[10:30, 10:30], region)
    assert tile_rect0(meta, 0, 8, 11) == (2048, 2816, 2220 - 2048, 2967 - 2816)  # edge tiles are smaller


def test_zoom_and_pan_choose_levels_and_tiles_on_a_real_pyramid(session):
    session.viewport.resize(100, 80)
    session.open(FIXTURES / "boxes.tiff")  # 300 x 250, four levels (downsamples 1, 2, 4.02, 8.09)
    vp = session.viewport
    seen = []
    vp.changed.connect(lambda: seen.append(vp.scale))
    for scale, level in ((1.0, 0), (0.5, 1), (0.2, 2), (0.1, 3)):
        vp.set_view(150, 125, scale)
        assert vp.level == level, scale
    assert len(seen) == 4
    vp.set_view(150, 125, 100.0)
    assert vp.scale == 4.0  # the deepest zoom
    vp.set_view(150, 125, 0.0001)
    assert vp.scale == pytest.approx(vp.fit_scale() / 4)  # the furthest out

    # the H&E region at 1 screen px per level-0 px: a 600 x 400 view over 3 x 2 tiles, then panned right
    session.viewport.resize(600, 400)
    session.open(HE_REGION)
    vp.zoom_to_magnification(10)
    assert vp.screen_mpp() == pytest.approx(1.0) and vp.magnification() == pytest.approx(10)
    vp.set_view(400, 300, 1.0)
    assert vp.visible_level0() == (100, 100, 700, 500)
    assert vp.visible_tiles() == [(0, c, r) for r in (0, 1) for c in (0, 1, 2)]
    plan = vp.plan(cached=set())
    assert plan.missing[0] == (0, 1, 1)  # nearest the centre first
    assert sorted(plan.missing) == sorted(plan.visible)
    assert set(plan.prefetch) == set(tiles_for(session.meta, 0, (100, 100, 700, 500), ring=1)) - set(plan.visible)
    plan = vp.plan(cached=set(plan.visible))
    assert plan.missing == [] and plan.prefetch  # all visible in: only now is the ring read
    vp.pan_by(-512, 0)  # the picture moves left: the view moves 512 level-0 px right
    assert (vp.cx, vp.cy) == (912, 300)
    assert vp.visible_tiles() == [(0, c, r) for r in (0, 1) for c in (2, 3, 4)]
    vp.zoom_by(2.0, anchor=(0, 0))  # the level-0 point under the top-left corner stays there
    assert vp.transform().to_level0(0, 0) == pytest.approx((612, 100))
    vp.pan_by(10 ** 7, 10 ** 7)
    assert (vp.cx, vp.cy) == (0, 0)  # the centre stays on the slide
    assert vp.plan(cached=set(), limit=0).skipped  # more tiles than the pool may queue: none are


def test_annotate_undo_redo_and_select(session):
    session.open(HE_REGION)
    changes, dirty = [], []
    session.annotations_changed.connect(changes.append)
    session.dirty_changed.connect(dirty.append)
    rect = session.add_annotation("rectangle", [(100, 200), (400, 500)], cls="tumor")
    assert rect.points[0] == (100, 200) and rect.cls == "tumor" and rect.name == "Rectangle 1"
    assert rect.color is not None and session.layers.selected_id == rect.id
    ell = session.add_annotation("ellipse", [(1000, 1000), (1200, 1100)])
    poly = session.add_annotation("polygon", [(50, 50), (90, 50), (70, 90)], cls="stroma")
    assert [a.shape for a in session.store.items] == ["rectangle", "ellipse", "polygon"]
    assert changes == [True, True, True] and dirty == [True] and session.dirty
    xs = [p[0] for p in ell.points]
    assert min(xs) == pytest.approx(1000, abs=1) and max(xs) == pytest.approx(1200, abs=1)
    assert point_in_polygon(1100, 1050, ell.points) and not point_in_polygon(1190, 1090, ell.points)

    session.rename(rect.id, "  margin  ")
    session.set_class(rect.id, "tumor")  # no change: no undo step
    assert session.store.get(rect.id).name == "margin"
    session.undo()
    assert session.store.get(rect.id).name == "Rectangle 1"
    session.redo()
    session.delete(poly.id)
    assert len(session.store) == 2 and session.layers.selected_id == ""  # the selected one was deleted
    session.layers.select(rect.id)
    session.undo()  # the polygon comes back
    assert session.store.get(poly.id) is not None
    for _ in range(5):
        session.undo()
    assert len(session.store) == 0 and session.layers.selected_id == ""  # its annotation is gone
    assert session.redo() and [a.shape for a in session.store.items] == ["rectangle"]
    # the list's row is the store's: centring on it moves the view there
    assert session.centre_on_annotation(0)
    assert (session.viewport.cx, session.viewport.cy) == (250, 350)


def test_an_engine_detection_layer_on_a_real_ihc_slide(session, ihc_slide):
    from engines.pathology.c4d import C4dDeconvolutionEngine

    session.open(ihc_slide)
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    analysis = engine.predict({"slide_path": ihc_slide})
    session.layers.set_style(colormap="viridis", opacity=0.6, threshold=0.3, min_score=0.0)
    added = []
    session.analysis_added.connect(added.append)
    assert session.add_analysis(analysis) and added == [analysis]
    heat, dets = session.layers.heatmaps[-1], session.layers.detections[-1]
    assert heat.name == "Heatmap · c4d-deconvolution" and (heat.colormap, heat.opacity) == ("viridis", 0.6)
    assert len(dets) == len(analysis.detections) > 10
    # culling: the rows in a window are exactly those whose boxes meet it
    vp = session.viewport
    vp.set_view(512, 384, 2.0)
    rect0 = vp.visible_level0()
    assert np.array_equal(dets.rows_in(rect0), boxes_meeting(dets.boxes, rect0))
    # the cursor's line reads the heatmap under it
    i = int(np.nanargmax(analysis.heatmap.values))
    r, c = divmod(i, analysis.heatmap.values.shape[1])
    x, y = (c + 0.5) * analysis.heatmap.cell, (r + 0.5) * analysis.heatmap.cell
    assert f"heatmap {np.nanmax(analysis.heatmap.values):.2f}" in session.describe_point(x, y)
    # a second run of the same engine replaces its layers; a result for another slide is refused
    session.add_analysis(analysis)
    assert len(session.layers.detections) == 1 and session.layers.detections[0] is not dets
    dets = session.layers.detections[0]
    other = copy.copy(analysis)
    other.slide_path = str(HE_REGION)
    assert not session.add_analysis(other)
    session.layers.set_style(min_score=1.01)
    assert len(dets.rows_in(rect0)) == 0


def test_100000_detections_are_culled_by_the_index_and_drawn_by_level_of_detail():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [40_000, 30_000], (100_000, 2)).astype(np.float32)
    layer = DetectionLayer("many", xy, np.concatenate([xy - 6, xy + 6], 1), rng.uniform(0, 1, 100_000),
                           np.zeros(100_000, np.int16), ["cell"])
    for rect0 in ((0, 0, 40_000, 30_000), (12_000, 8_000, 12_800, 8_500), (-50, -50, 3, 3)):
        got = layer.rows_in(rect0)
        assert np.array_equal(got, boxes_meeting(layer.boxes, rect0))
    assert layer.index.built  # answered by the grid, not by a scan of every row
    assert layer.mode_for(100_000, 0.02) == "density"
    assert layer.mode_for(200, 1.0) == "boxes"  # no outlines: boxes even when few and large
    layer.polygons = [np.zeros((3, 2))] * 100_000
    assert layer.mode_for(200, 1.0) == "outlines" and layer.mode_for(0, 1.0) == "none"


def test_import_a_geojson_with_annotations_and_detections(session, tmp_path):
    session.open(HE_REGION)
    square = [[[10, 10], [60, 10], [60, 60], [10, 60], [10, 10]]]
    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square},
                 "properties": {"objectType": "annotation", "name": "region"}}]
    for k in range(5):
        ring = [[[100 + 40 * k, 100], [120 + 40 * k, 100], [120 + 40 * k, 120], [100 + 40 * k, 100]]]
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": ring},
                         "properties": {"objectType": "detection", "classification": {"name": "cell"}}})
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    assert session.import_file(path) == (1, 5)
    assert [a.name for a in session.store.items] == ["region"]
    layer = session.layers.detections[-1]
    assert layer.name == "Imported · qupath.geojson" and layer.class_names == ["cell"]
    assert layer.xy[0] == pytest.approx((113.33, 106.67), abs=0.01)  # the mean of the outline's points
    session.undo()
    assert len(session.store) == 0


def test_autosave_then_reopen_from_it(session):
    session.open(HE_REGION)
    session.add_annotation("rectangle", [(10, 10), (200, 150)], cls="tumor")
    session.add_annotation("freehand", [(300, 300), (340, 310), (320, 360)])
    assert session.autosave_path() == autosave_path(HE_REGION)
    pending = session.autosave(delay=0.0)
    assert pending is not None and not session.dirty
    assert session.autosave() is None  # nothing new to save
    assert session.flush_autosave()
    saved = json.loads(autosave_path(HE_REGION).read_text())
    assert saved["data"]["slide"] == HE_REGION.name
    assert [f["properties"]["name"] for f in saved["data"]["features"]] == ["Rectangle 1", "Freehand 2"]

    again = PathologySession()
    try:
        again.open(HE_REGION)
        assert [(a.shape, a.cls) for a in again.store.items] == [("rectangle", "tumor"), ("freehand", "")]
        assert again.store.items[0].points == session.store.items[0].points
        assert not again.store.can_undo and not again.dirty  # a reopened slide starts a new history
    finally:
        again.shutdown()


def test_an_older_snapshot_is_never_queued_after_a_newer_one(session):
    session.open(HE_REGION)
    session.add_annotation("rectangle", [(10, 10), (20, 20)], name="old")
    old = session.take_autosave()
    session.add_annotation("rectangle", [(30, 30), (40, 40)], name="new")
    new = session.take_autosave()
    assert session.write_autosave(new, delay=0.0)
    assert not session.write_autosave(old, delay=0.0)  # a slow worker finishing late changes nothing
    session.flush_autosave()
    names = [f["properties"]["name"] for f in json.loads(autosave_path(HE_REGION).read_text())["data"]["features"]]
    assert names == ["old", "new"]


def test_a_damaged_autosave_is_set_aside_and_the_slide_opens(session):
    target = autosave_path(HE_REGION)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"{ not json")
    session.open(HE_REGION)
    assert len(session.store) == 0 and len(session.notices) == 1 and "set aside" in session.notices[0]
    assert not target.exists() and list(target.parent.glob(target.name + ".damaged-*"))


def test_opening_another_slide_resets_everything_and_keeps_the_first_slides_edits(ihc_slide):
    retired = []
    s = PathologySession(retire_reader=lambda reader: (retired.append(reader), reader.close()))
    try:
        s.open(ihc_slide)
        first_reader = s.reader
        s.add_annotation("rectangle", [(10, 10), (100, 100)], name="on the IHC slide")
        s.layers.add_detections(DetectionLayer("d", [[5, 5]], [[0, 0, 10, 10]], [1.0], [0], ["x"]))
        s.viewport.set_view(100, 100, 2.0)
        opened = []
        s.opened.connect(opened.append)
        s.open(HE_REGION)
        assert opened and opened[0].path == HE_REGION
        assert s.slide_path == HE_REGION and s.meta.dimensions == (2220, 2967)
        assert len(s.store) == 0 and not s.store.can_undo and not s.store.can_redo and not s.dirty
        assert s.layers.detections == [] and s.layers.heatmaps == [] and s.layers.selected_id == ""
        assert s.analysis is None and s.analyses == {}
        assert s.viewport.scale == pytest.approx(s.viewport.fit_scale())  # fitted again
        assert retired == [first_reader]
        s.undo()
        assert len(s.store) == 0  # the first slide's history is gone
        s.flush_autosave()
        saved = json.loads(autosave_path(ihc_slide).read_text())["data"]
        assert [f["properties"]["name"] for f in saved["features"]] == ["on the IHC slide"]
        assert not autosave_path(HE_REGION).exists()
        s.close_slide()
        assert s.meta is None and s.viewport.meta is None and retired[-1] is not first_reader
    finally:
        s.shutdown()
