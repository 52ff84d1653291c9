"""`inspect` on GeoJSON validates the file and says what is wrong in plain sentences."""
from __future__ import annotations

import json

import pytest

from engines.core.engine import EngineError
from engines.core.inspect import inspect_path


def _write(tmp_path, data, name="a.geojson"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_valid_geojson_is_described(tmp_path):
    p = _write(tmp_path, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]},
         "properties": {"objectType": "detection", "classification": {"name": "tumor"}}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5], [0, 0]]]}}]})
    report = inspect_path(p)
    assert report["kind"] == "annotations"
    d = report["details"]
    assert d["features"] == 2 and d["usable_objects"] == 2 and d["features_left_out"] == 0
    assert d["geometry_types"] == {"Point": 1, "Polygon": 1} and d["classes"] == {"tumor": 1, "(none)": 1}
    assert report["findings"] == []


@pytest.mark.parametrize("data, message", [
    ("{not json", "not a readable GeoJSON"),
    ({"type": "Topology", "objects": {}}, "'Topology' is not a FeatureCollection"),
    ({"type": "FeatureCollection", "features": {"a": 1}}, "'features' is not a list"),
    ({"type": "FeatureCollection", "features": []}, "holds no features"),
    ({"hello": "world"}, "expected a GeoJSON FeatureCollection"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon",
                                                                               "coordinates": [[]]}}]},
     "no usable annotation in the file \\(feature 0 has an empty ring\\)"),
])
def test_invalid_geojson_is_refused_with_the_reason(tmp_path, data, message):
    with pytest.raises(EngineError, match=f"a.geojson: .*{message}"):
        inspect_path(_write(tmp_path, data))


def test_partly_invalid_geojson_lists_findings(tmp_path):
    good = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}
    bad = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [None, 1]]}}
    report = inspect_path(_write(tmp_path, [good, bad, {"type": "Feature"}]))
    assert report["details"]["features_left_out"] == 2
    assert report["findings"] == ["a.geojson: feature 1 has malformed coordinates (not numbers)",
                                  "a.geojson: feature 2 has no geometry"]
