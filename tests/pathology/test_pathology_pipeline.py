"""Tile pipeline and C4d engines on a generated pyramid: tissue only, level-0 outputs, exports, cancel."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engines.core.engine import Cancelled, CancelToken, EngineError
from engines.pathology.c4d import C4dCnnEngine, C4dDeconvolutionEngine, read_heatmap
from engines.pathology.slide import open_slide
from engines.pathology.tiles import detect_tissue, tile_grid, tissue_mask_from_rgb

from .conftest import MARK


@pytest.fixture(scope="module")
def deconv_result(small_pyramid):
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    seen = []
    result = engine.predict({"slide_path": small_pyramid}, progress=lambda f, m: seen.append((f, m)))
    return result, seen


def test_tissue_detection_separates_tissue_from_glass(small_pyramid):
    with open_slide(small_pyramid) as reader:
        mask, cell = detect_tissue(reader, 512)
        thumb, _ = reader.thumbnail(512)
    assert cell == pytest.approx(4.0)
    assert 0.2 < mask.mean() < 0.9
    glass = thumb[~mask].astype(float)
    tissue = thumb[mask].astype(float)
    assert glass.mean() > tissue.mean() + 20  # glass is bright
    assert not tissue_mask_from_rgb(np.full((64, 64, 3), 242, np.uint8)).any()


def test_tile_grid_only_over_tissue():
    tissue = np.zeros((100, 100), bool)
    tissue[10:30, 60:90] = True  # cell 10 -> level-0 x 600-900, y 100-300
    tiles = tile_grid((1000, 1000), 256, tissue, 10.0)
    assert tiles and all(t.x + t.w > 600 and t.x < 900 and t.y + t.h > 100 and t.y < 300 for t in tiles)
    assert len(tile_grid((1000, 1000), 256)) == 16


def test_deconvolution_engine_outputs_in_level0(deconv_result, small_pyramid):
    result, seen = deconv_result
    assert result.dimensions == (2048, 1536)
    assert seen[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in seen if f is not None)
    d = result.detections
    assert len(d) > 20
    assert (d.xy[:, 0] >= 0).all() and (d.xy[:, 0] < 2048).all() and (d.xy[:, 1] < 1536).all()
    assert (d.boxes[:, 0] <= d.xy[:, 0]).all() and (d.xy[:, 0] <= d.boxes[:, 2]).all()
    assert all(len(p) >= 3 for p in d.polygons)
    # every detection lies on tissue (the tissue mask, on its own grid)
    gy = (d.xy[:, 1] / result.tissue_cell).astype(int)
    gx = (d.xy[:, 0] / result.tissue_cell).astype(int)
    from scipy import ndimage

    near_tissue = ndimage.binary_dilation(result.tissue_mask, iterations=3)
    assert near_tissue[gy, gx].mean() > 0.95
    # the heatmap covers the slide in level-0 pixels; glass is NaN (not analysed) or ~0
    hm = result.heatmap
    x0, y0, x1, y1 = hm.extent()
    assert x0 == 0 and y0 == 0 and x1 >= 2048 and y1 >= 1536
    assert np.nanmax(hm.values) > 0.5
    s = result.summary
    assert s["positive_structures"] == len(d)
    assert s["tissue_area_mm2"] == pytest.approx(result.tissue_mask.sum() * (result.tissue_cell * 0.5e-3) ** 2, rel=1e-3)
    assert 0 < s["positive_area_percent"] < 100
    assert s["positive_per_mm2"] == pytest.approx(len(d) / s["tissue_area_mm2"], rel=1e-2)


def test_dark_marker_is_not_called_dab_positive(deconv_result):
    """The blue (haematoxylin-like) marker square must not attract detections."""
    result, _ = deconv_result
    x0, y0, x1, y1 = MARK
    d = result.detections
    inside = (d.xy[:, 0] > x0 + 16) & (d.xy[:, 0] < x1 - 16) & (d.xy[:, 1] > y0 + 16) & (d.xy[:, 1] < y1 - 16)
    assert inside.sum() == 0


def test_write_result_geojson_heatmap_summary(deconv_result, tmp_path):
    result, _ = deconv_result
    engine = C4dDeconvolutionEngine()
    paths = engine.write_result(result, tmp_path / "out.geojson")
    assert [p.name for p in paths] == ["out.geojson", "out.heatmap.tiff", "out.summary.json"]
    fc = json.loads(paths[0].read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(result.detections)
    f0 = fc["features"][0]
    assert f0["properties"]["objectType"] == "detection"
    assert f0["properties"]["classification"]["name"] == "C4d-positive"
    assert "score" in f0["properties"]["measurements"]
    hm = read_heatmap(paths[1])
    np.testing.assert_array_equal(np.isnan(hm.values), np.isnan(result.heatmap.values))
    assert hm.cell == result.heatmap.cell
    summary = json.loads(paths[2].read_text())
    assert summary["positive_structures"] == len(result.detections)
    with pytest.raises(EngineError, match="must end with .geojson"):
        engine.write_result(result, tmp_path / "out.png")


def test_cancel_stops_the_pipeline(small_pyramid):
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    token = CancelToken()

    def progress(fraction, message):
        if fraction and fraction > 0.1:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.predict({"slide_path": small_pyramid}, progress=progress, cancel=token)


def test_broken_slide_is_an_engine_error(fixtures_dir):
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    with pytest.raises(EngineError, match="cannot read its tiles"):
        engine.predict({"slide_path": fixtures_dir / "unreadable.svs"})


def test_empty_glass_says_no_tissue(tmp_path):
    from engines.pathology.samples import write_pyramid_tiff

    path = write_pyramid_tiff(tmp_path / "glass.tiff", np.full((600, 800, 3), 242, np.uint8), 0.5, levels=2)
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    with pytest.raises(EngineError, match="no tissue"):
        engine.predict({"slide_path": path})


def test_cnn_engine_loads_shipped_weights_and_runs(small_pyramid):
    engine = C4dCnnEngine()
    assert engine.weights_status() == "ok"
    engine.load("cpu")
    assert engine.card.metrics["held_out_true_structures"] >= 1
    assert "Research use only" in engine.card.intended_use
    result = engine.predict({"slide_path": small_pyramid, "max_tiles": 2})
    assert result.summary["tiles_analysed"] == 2
    assert len(result.detections) > 0
    assert np.nanmax(result.heatmap.values) <= 1.0
    engine.unload()
    assert engine.model is None
