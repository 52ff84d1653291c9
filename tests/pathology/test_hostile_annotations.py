"""Hostile annotation files: bad colours, names, geometry. They are normalised or left out with a plain
sentence, and nothing that reaches the canvas can break its painting for good."""
from __future__ import annotations

import json

import pytest

from engines.core.engine import EngineError
from engines.pathology.annotations import autosave_path
from engines.pathology.geojson import Annotation, load_geojson, normalize_color, parse_geojson


def _feature(coords, gtype="Polygon", **props):
    return {"type": "Feature", "geometry": {"type": gtype, "coordinates": coords},
            "properties": {"objectType": "annotation", **props}}


SQUARE = [[[10, 10], [60, 10], [60, 60], [10, 60], [10, 10]]]


def test_colours_are_normalised_or_dropped():
    assert normalize_color([999, -5, 10]) == (255, 0, 10)
    assert normalize_color([999, -5, "red"]) is None
    assert normalize_color([1.4, 2.6, 3, 0.5]) == (1, 3, 3)
    assert normalize_color(float("nan")) is None and normalize_color([float("nan"), 0, 0]) is None
    assert normalize_color(-16711936) == (0, 255, 0)  # QuPath's packed ARGB integer
    assert normalize_color(True) is None and normalize_color([1, 2]) is None


def test_bad_properties_are_replaced_and_reported():
    raw = {"type": "FeatureCollection", "features": [
        _feature(SQUARE, classification={"name": "tumor", "color": [999, -5, "red"]}, name={"x": 1}),
        _feature(SQUARE, color=[999, -5, 10], name=42, measurements={"score": "high", "area": 3.5}),
    ]}
    parsed = parse_geojson(raw, "bad.geojson")
    a, b = parsed.annotations
    assert a.color is None and a.cls == "tumor" and a.name == ""
    assert b.color == (255, 0, 10) and b.name == "42" and b.measurements == {"area": 3.5}
    assert parsed.skipped == 0
    text = parsed.summary("bad.geojson")
    assert text.startswith("bad.geojson: ") and "colour" in text


@pytest.mark.parametrize("feature, why", [
    (_feature([[[0, 0], [float("nan"), 1], [2, 2], [0, 0]]]), "NaN or infinite"),
    (_feature([[[0, 0], [float("inf"), 1], [2, 2], [0, 0]]]), "NaN or infinite"),
    (_feature([[]]), "empty ring"),
    (_feature([]), "empty polygon"),
    (_feature([[[0, 0], [1, 1], [0, 0]]]), "degenerate"),
    (_feature("0,0,1,1"), "malformed coordinates"),
    (_feature([["a", "b"]], gtype="LineString"), "not numbers"),
    (_feature([1, 2], gtype="Circle"), "unsupported geometry type"),
    ({"type": "Feature", "geometry": None}, "no geometry"),
    ("a string", "not a GeoJSON Feature"),
])
def test_unusable_features_are_left_out_with_the_reason(feature, why):
    raw = [feature, _feature(SQUARE, name="good")]
    parsed = parse_geojson(raw, "x.geojson")
    assert [a.name for a in parsed.annotations] == ["good"]
    assert parsed.skipped == 1 and why in parsed.problems[0] and parsed.problems[0].startswith("feature 0 ")
    with pytest.raises(EngineError, match=f"x.geojson: no usable annotation.*{why}"):
        parse_geojson([feature], "x.geojson")


def test_nan_literals_in_the_json_text_are_refused(tmp_path):
    p = tmp_path / "nan.geojson"
    p.write_text('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [NaN, 3]}}, '
                 '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [Infinity, 3]}}, '
                 '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [4, 3]}}]')
    parsed = load_geojson(p)
    assert [a.points for a in parsed.annotations] == [[(4.0, 3.0)]] and parsed.skipped == 2


def test_a_non_numeric_colour_in_the_autosave_opens_normalised(window, qtbot, small_pyramid):
    target = autosave_path(small_pyramid)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"schema": 1, "data": {"type": "FeatureCollection", "features": [
        _feature(SQUARE, name="red one", color=[999, -5, "red"]),
        _feature([[[0, 0], [float("nan"), 1], [2, 2], [0, 0]]], name="nan one")]}}))
    view = window.switch_to("pathology")
    before = len(window.notifications.items)
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(small_pyramid)
    assert [a.name for a in view.store.items] == ["red one"] and view.store.items[0].color is None
    notes = [n for n in window.notifications.items[before:] if n.level == "warning"]
    assert len(notes) == 1 and small_pyramid.name in notes[0].message and "left out" in notes[0].message
    view.canvas.repaint()
    assert not view.canvas.broken_ids


def test_a_broken_item_is_skipped_and_reported_once_not_every_frame(window, qtbot, small_pyramid):
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(small_pyramid)
    before = len(window.notifications.items)
    bad = Annotation("polygon", [(10, 10), (90, 10), (50, 80)], name="bad", color=(999, -5, "red"))
    good = Annotation("polygon", [(100, 100), (190, 100), (150, 180)], name="good", color=(0, 200, 0))
    view.canvas.annotations = [bad, good]
    for _ in range(3):
        view.canvas.repaint()
    assert view.canvas.broken_ids == {bad.id}
    notes = window.notifications.items[before:]
    assert len(notes) == 1 and "'bad' cannot be drawn" in notes[0].message
