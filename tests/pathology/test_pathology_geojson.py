"""GeoJSON in QuPath's conventions: round trip with identical geometry, QuPath exports read, undo/redo."""
from __future__ import annotations

import json

import pytest

from engines.core.engine import EngineError
from engines.pathology.annotations import AnnotationStore, autosave_path
from engines.pathology.geojson import (Annotation, ellipse_points, read_geojson, rectangle_points,
                                       write_geojson)


def _sample_annotations():
    return [
        Annotation("rectangle", rectangle_points(100.5, 200.25, 400, 380), name="ROI 1", cls="tumor"),
        Annotation("ellipse", ellipse_points(1000, 1000, 1300, 1200, n=48), name="Glomerulus", cls="region"),
        Annotation("polygon", [(10, 10), (50, 12.125), (33.3, 70.7)], name="", cls=""),
        Annotation("freehand", [(5000 + i, 3000 + (i % 7) * 0.5) for i in range(120)], cls="stroma"),
        Annotation("point", [(77.0, 88.0)], name="PTC", cls="positive"),
    ]


def test_round_trip_identical_geometry(tmp_path):
    anns = _sample_annotations()
    path = write_geojson(tmp_path / "a.geojson", anns)
    back = read_geojson(path)
    assert len(back) == len(anns)
    for a, b in zip(anns, back):
        assert b.shape == a.shape and b.name == a.name and b.cls == a.cls and b.id == a.id
        assert b.points == [(float(x), float(y)) for x, y in a.points]
    # and once more: writing what was read gives the same file
    again = write_geojson(tmp_path / "b.geojson", back)
    assert json.loads(again.read_text()) == json.loads(path.read_text())


def test_feature_layout_follows_qupath(tmp_path):
    path = write_geojson(tmp_path / "a.geojson", _sample_annotations()[:1])
    fc = json.loads(path.read_text())
    f = fc["features"][0]
    assert fc["type"] == "FeatureCollection" and f["type"] == "Feature"
    ring = f["geometry"]["coordinates"][0]
    assert f["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 5
    assert f["properties"]["objectType"] == "annotation"
    assert f["properties"]["classification"] == {"name": "tumor", "color": [200, 0, 0]}


def test_reads_a_qupath_export(tmp_path):
    """A list of features as QuPath 0.4 writes it: MultiPolygon, classification, detections."""
    qupath = [
        {"type": "Feature", "id": "f2b4", "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[0, 0], [10, 0], [10, 10], [0, 0]]], [[[20, 20], [30, 20], [30, 30], [20, 20]]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 1]]]},
         "properties": {"objectType": "detection", "measurements": {"score": 0.9}}},
    ]
    p = tmp_path / "qupath.geojson"
    p.write_text(json.dumps(qupath))
    anns = read_geojson(p)
    assert [a.object_type for a in anns] == ["annotation", "annotation", "detection"]
    assert anns[0].cls == "Tumor" and anns[0].points == [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0)]
    assert anns[2].measurements == {"score": 0.9}


def test_malformed_geojson_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.geojson"
    p.write_text("{not json")
    with pytest.raises(EngineError, match="not a readable GeoJSON"):
        read_geojson(p)
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature"}]}))
    with pytest.raises(EngineError, match="no geometry"):
        read_geojson(p)
    p.write_text(json.dumps({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[["a"]]]}}))
    with pytest.raises(EngineError, match="malformed"):
        read_geojson(p)


def test_store_undo_redo_and_autosave_path(tmp_path):
    store = AnnotationStore()
    calls = []
    store.listeners.append(lambda: calls.append(len(store.items)))
    a, b = _sample_annotations()[:2]
    store.add(a)
    store.add(b)
    store.update(a.id, name="renamed")
    assert store.items[0].name == "renamed"
    store.undo()
    assert store.items[0].name == "ROI 1"
    store.undo()
    assert [x.id for x in store.items] == [a.id]
    store.redo()
    assert len(store.items) == 2
    store.remove(b.id)
    assert len(store.items) == 1 and store.dirty
    assert calls[-1] == 1
    target = autosave_path(tmp_path / "slide.svs")  # the shared autosave service's keying rule
    assert target.parent.name == "pathology" and target.suffix == ".json"
    assert autosave_path(tmp_path / "sub" / ".." / "slide.svs") == target
    assert autosave_path(tmp_path / "other.svs") != target
    target = store.save(tmp_path / "saved.geojson")
    other = AnnotationStore()
    other.load(target)
    assert [x.points for x in other.items] == [x.points for x in store.items] and not other.can_undo
