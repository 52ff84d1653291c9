"""Scale: the columnar annotation table, its compact autosave, the streaming GeoJSON reader, the spatial index
and the id search, each checked against the plain (slow) way on ~20,000 generated annotations."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engines.pathology.annotations import (COMPACT_ABOVE, AnnotationStore, SpatialIndex, autosave_path,
                                           compact_autosave_path, load_saved_annotations)
from engines.pathology.geojson import (Annotation, AnnotationTable, parse_geojson, parse_geojson_table,
                                       rectangle_points)

N = 20_000


def _features(n, seed=0, object_type="annotation"):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(10, [2030, 1520], (n, 2))
    return [{"type": "Feature", "id": f"{object_type}-{seed}-{i}", "geometry": {"type": "Polygon", "coordinates": [[
        [x - 3, y - 3], [x + 3, y - 3], [x + 3, y + 3], [x - 3, y + 3], [x - 3, y - 3]]]},
        "properties": {"objectType": object_type, "name": f"cell {i}",
                       **({"classification": {"name": "tumor", "color": [200, 0, 0]}} if i % 3 == 0 else {})}}
        for i, (x, y) in enumerate(xy.tolist())]


def _hostile(features):
    feats = list(features)
    feats[5] = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, float("nan")]]]}}
    feats[7]["properties"]["classification"] = {"name": 42, "color": "red"}
    feats[9] = "not a feature"
    feats.append({"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [9, 0], [9, 9], [0, 0]]], [[[50, 50], [59, 50], [59, 59], [50, 50]]]]},
        "properties": {"name": "two parts", "measurements": {"score": 0.5, "bad": "x"}}})
    feats.append({"type": "Feature", "id": "pt", "geometry": {"type": "Point", "coordinates": [3, 4]}})
    return feats


def test_streamed_geojson_gives_what_the_whole_file_parser_gives():
    feats = _hostile(_features(N))
    text = json.dumps({"type": "FeatureCollection", "crs": {"x": 1}, "features": feats}, allow_nan=True)
    table, parsed = parse_geojson_table(text, "cells.geojson", chunk=3000)
    whole = parse_geojson(json.loads(text), "cells.geojson")
    got = table.annotations()
    assert len(got) == len(whole.annotations) == N - 2 + 3
    # MultiPolygon parts beyond the first get fresh ids: compare everything else
    strip = [dict(shape=a.shape, points=a.points, name=a.name, cls=a.cls, color=a.color, t=a.object_type,
                  m=a.measurements) for a in got]
    want = [dict(shape=a.shape, points=a.points, name=a.name, cls=a.cls, color=a.color, t=a.object_type,
                 m=a.measurements) for a in whole.annotations]
    assert strip == want
    assert parsed.problems == whole.problems and parsed.skipped == whole.skipped == 2
    assert table.bounds[0].tolist() == pytest.approx([min(p[0] for p in got[0].points), min(p[1] for p in got[0].points),
                                                      max(p[0] for p in got[0].points), max(p[1] for p in got[0].points)])
    # a bare list and the features key before the type read the same
    assert len(parse_geojson_table(json.dumps(feats[:50]), "x")[0]) == len(parse_geojson(feats[:50]).annotations)
    late_type = json.dumps({"features": feats[:20], "type": "FeatureCollection"})
    assert parse_geojson_table(late_type, "x")[0].annotations()[:3] == table.annotations()[:3]


@pytest.mark.parametrize("text, words", [
    ('{"type": "FeatureCollection", "features": [{"type": "Feature"}', "not a readable GeoJSON"),
    ('{"features": [], "type": "Topology"}', "'Topology' is not a FeatureCollection"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}', "no usable annotation"),
    ('[1, 2] trailing', "not a readable GeoJSON"),
])
def test_streamed_geojson_refuses_bad_files_in_one_sentence(text, words):
    from engines.core.engine import EngineError

    with pytest.raises(EngineError, match=words) as info:
        parse_geojson_table(text, "bad.geojson")
    assert str(info.value).startswith("bad.geojson:")


def test_the_compact_form_round_trips_and_checks_everything_at_once():
    table, _ = parse_geojson_table(json.dumps(_hostile(_features(N))), "x")
    again = AnnotationTable.from_arrays(*table.to_arrays())
    assert again.annotations() == table.annotations()
    arrays, meta = table.to_arrays()
    bad = dict(arrays, coords=arrays["coords"].copy())
    bad["coords"][17, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        AnnotationTable.from_arrays(bad, meta)
    bad = dict(arrays, offsets=arrays["offsets"][:-1])
    with pytest.raises(ValueError, match="offsets"):
        AnnotationTable.from_arrays(bad, meta)
    bad = dict(arrays, cls=arrays["cls"] + 100)
    with pytest.raises(ValueError, match="out of range"):
        AnnotationTable.from_arrays(bad, meta)


def test_a_large_autosave_is_compact_and_a_damaged_one_is_set_aside(tmp_path):
    from engines.core.autosave import AutosaveWriter

    slide = tmp_path / "slide.tiff"
    slide.write_bytes(b"x")
    table, _ = parse_geojson_table(json.dumps(_features(N)), "x")
    store = AnnotationStore()
    store.reset(table)
    store.add(Annotation("rectangle", rectangle_points(1, 1, 5, 5), name="mine"))
    store.remove(store.row_id(3))
    assert len(store) > COMPACT_ABOVE
    arrays, meta = store.snapshot().to_table().to_arrays()
    writer = AutosaveWriter()
    writer.save_arrays(compact_autosave_path(slide), arrays, schema=1, meta=meta, delay=0)
    assert writer.close()
    back, notices = load_saved_annotations(slide)
    assert notices == [] and len(back) == len(store) == N
    assert back.annotations()[-1].name == "mine" and back.name(3) == "cell 4" and back.id(2) == store.row_id(2)
    # a JSON autosave written later wins, and the older compact one is removed once it has been read
    autosave_path(slide).write_text(json.dumps({"schema": 1, "data": {"type": "FeatureCollection",
                                                                      "features": _features(3)}}))
    back, _ = load_saved_annotations(slide)
    assert len(back) == 3 and not compact_autosave_path(slide).exists()
    # damaged compact autosave: set aside with one sentence, the slide opens without it
    autosave_path(slide).unlink()
    compact_autosave_path(slide).write_bytes(b"PK\x03\x04 not really a zip")
    back, notices = load_saved_annotations(slide)
    assert back is None and len(notices) == 1 and "slide.tiff" in notices[0] and "set aside" in notices[0]
    assert list(compact_autosave_path(slide).parent.glob("*.npz.damaged-*"))


def test_index_of_finds_the_first_row_with_an_id_without_a_scan_of_objects():
    feats = _features(N)
    feats[100]["id"] = feats[50]["id"]  # duplicated ids happen in exported files
    table, _ = parse_geojson_table(json.dumps(feats), "x")
    store = AnnotationStore()
    store.reset(table)
    assert store.index_of(feats[50]["id"]) == 50
    assert store.index_of(feats[N - 1]["id"]) == N - 1 and store.index_of("nope") == -1
    store.remove(feats[50]["id"])
    assert store.index_of(feats[50]["id"]) == 99  # the duplicate, shifted up by one
    store.update(feats[10]["id"], name="renamed", id="new-id")
    assert store.index_of("new-id") == 10 and store.index_of(feats[10]["id"]) == -1
    assert store.undo() and store.index_of(feats[10]["id"]) == 10 and store.items[10].name == "cell 10"


def test_the_spatial_index_answers_what_a_scan_answers_through_edits():
    rng = np.random.default_rng(4)
    table, _ = parse_geojson_table(json.dumps(_features(N)), "x")
    store = AnnotationStore()
    store.reset(table)
    big = Annotation("rectangle", rectangle_points(0, 0, 2000, 1500), name="region")
    store.add(big)

    def check():
        for _ in range(6):
            x, y = rng.uniform(0, 2000), rng.uniform(0, 1500)
            w = rng.uniform(1, 400)
            rect = (x, y, x + w, y + w * 0.7)
            b = store.bounds
            brute = np.flatnonzero((b[:, 2] >= rect[0]) & (b[:, 0] <= rect[2]) & (b[:, 3] >= rect[1])
                                   & (b[:, 1] <= rect[3]))
            got = store.index.query(rect, b)
            assert got.tolist() == brute.tolist()
            assert store.index.candidates(rect, b) >= len(brute)

    check()
    assert store.index.built and len(store.index.order) > N // 2  # the grid, not a scan, answered
    for _ in range(30):
        op = rng.integers(4)
        if op == 0:
            x, y = rng.uniform(0, 2000, 2)
            store.add(Annotation("rectangle", rectangle_points(x, y, x + 5, y + 5)))
        elif op == 1:
            store.remove(store.row_id(int(rng.integers(len(store)))))
        elif op == 2:
            x, y = rng.uniform(0, 2000, 2)
            store.update(store.row_id(int(rng.integers(len(store)))), points=rectangle_points(x, y, x + 4, y + 4))
        else:
            store.undo()
        check()
    counts, (x0, y0, cell) = store.index.density(store.bounds)
    assert counts.sum() == len(store) and cell > 0


def test_a_built_index_is_used_as_is_by_the_store():
    table, _ = parse_geojson_table(json.dumps(_features(N)), "x")
    index = SpatialIndex.build(table.bounds)
    store = AnnotationStore()
    store.reset(table, table.bounds, index)
    assert store.index is index and store.index.built


def test_an_index_built_by_the_import_worker_is_installed_and_stays_right():
    first, _ = parse_geojson_table(json.dumps(_features(N)), "x")
    second, _ = parse_geojson_table(json.dumps(_features(N // 2, seed=1)), "y")
    store = AnnotationStore()
    store.reset(first)
    index = SpatialIndex.build(np.concatenate([store.bounds, second.bounds]))
    store.extend(second, second.bounds, index)
    assert store.index is index and index.built and index.n == len(store) == N + N // 2
    rect = (500.0, 400.0, 700.0, 600.0)
    b = store.bounds
    brute = np.flatnonzero((b[:, 2] >= rect[0]) & (b[:, 0] <= rect[2]) & (b[:, 3] >= rect[1]) & (b[:, 1] <= rect[3]))
    assert store.index.query(rect, b).tolist() == brute.tolist() and len(brute) > 0
    assert store.undo() and len(store) == N and store.index.query(rect, store.bounds).tolist() == \
        brute[brute < N].tolist()
    # an index made for another row count is not used
    other = AnnotationStore()
    other.reset(first)
    other.extend(second, None, SpatialIndex.build(second.bounds))
    assert other.index is not index and other.index.query(rect, other.bounds).tolist() == brute.tolist()
