"""The radiology workspace's workflows headless, through RadiologySession and the engine modules, no Qt:
open the real lung1 CT, navigate, window, paint, undo/redo, measure, compare, autosave, reopen, change study."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.core.autosave import AutosaveWriter
from engines.radiology.brush import paint_disc, paint_segment
from engines.radiology.geometry import Geometry
from engines.radiology.opening import auto_window, read_path
from engines.radiology.resample import comparison_on_grid, place_labels
from engines.radiology.session import (RadiologySession, load_autosave_layers, measure_roi, write_autosave)

LUNG1 = Path(__file__).parents[1] / "data" / "lung1-crop"
ROOT = Path(__file__).parents[2]


@pytest.fixture
def opened():
    """The lung1 crop (16 x 128 x 128, 0.57 x 0.57 x 5 mm) opened as the workspace opens it."""
    result = read_path(LUNG1)
    session = RadiologySession()
    events = []
    for name in ("volume_changed", "cursor_changed", "window_changed", "layers_changed", "labels_edited",
                 "comparison_changed", "history_changed", "dirty_changed", "notice"):
        getattr(session, name).connect(lambda *args, name=name: events.append((name, args)))
    session.open_volume(result["volume"], auto_window=result["auto_window"])
    for placed in result["placed"]:
        session.add_placed_layer(placed, name=placed.source.source)
    return session, events


def test_no_qt_is_imported_by_the_session_and_its_engines():
    code = ("import sys\nimport engines.radiology.session, engines.radiology.opening, engines.radiology.resample\n"
            "import engines.radiology.brush, engines.radiology.layers\n"
            "from engines.radiology.opening import read_path\n"
            f"r = read_path({str(LUNG1)!r})\n"
            "s = engines.radiology.session.RadiologySession(); s.open_volume(r['volume'])\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'app')]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_open_navigate_and_window_the_real_ct(opened):
    session, events = opened
    vol = session.volume
    assert vol.shape == (16, 128, 128) and vol.modality == "CT"
    assert session.cursor == [64, 64, 8] and session.window == (400.0, 40.0)  # CT with no header window
    layer, = session.layers
    assert layer.name == "lung1_label.nrrd" and int(layer.labels.sum()) == 837  # the real nodule, all of it
    assert ("notice", ("info", layer.name + ": shown as a label layer over lung1_image.nrrd (1 label(s); counts, "
                       "volumes and means in the Layers tab)")) in events
    session.scroll("axial", 3)
    session.scroll("coronal", 2)  # coronal scrolls towards anterior: j decreases
    assert session.cursor == [64, 62, 11]
    session.scroll("axial", 100)
    assert session.cursor[2] == 15  # clamped
    moved = [args for name, args in events if name == "cursor_changed"]
    assert moved[-1] == ((64, 62, 15), (False, False, True))
    assert session.slice_index("axial") == (15, 16) and session.slice_index("sagittal") == (64, 128)
    assert np.shares_memory(session.slice_of(vol.voxels, "coronal"), vol.voxels)
    session.set_window(1500, -600)
    assert session.levels() == pytest.approx((vol.stored(-1350), vol.stored(150)))
    session.drag_window((1500, -600), 50, -20)
    width, level = session.window
    assert width > 1500 and level > -600
    session.set_window(-5, 0)
    assert session.window == (1.0, 0.0)  # a window is never narrower than one unit
    session.auto_window()
    real = vol.real(vol.voxels)
    lo, hi = level_range = (session.window[1] - session.window[0] / 2, session.window[1] + session.window[0] / 2)
    inside = np.mean((real >= lo) & (real <= hi))
    assert 0.9 < inside < 0.999 and level_range[1] > 0 > level_range[0]  # spans lung and soft tissue
    assert session.auto_window_values == auto_window(vol)
    text = session.readout_text(*session.cursor)
    assert "mm LPS" in text and "HU" in text


def test_the_nodule_label_lands_on_the_nodule(opened):
    session, _ = opened
    vol, layer = session.volume, session.layers[0]
    hu = vol.real(vol.voxels)
    assert hu[layer.labels == 1].mean() > -300 > hu[layer.labels == 0].mean()  # solid nodule in aerated lung
    # the same labels stored flipped in x and z with a geometry that says so land in the same place
    g = vol.geometry
    far = g.index_to_lps([vol.shape[2] - 1, 0, vol.shape[0] - 1])
    flipped = Geometry(g.spacing, (far[0], g.origin[1], far[2]), np.diag([-1.0, 1.0, -1.0]))
    assert session.needs_placing(layer.labels[::-1, :, ::-1].copy(), flipped)
    again = session.add_label_layer(layer.labels[::-1, :, ::-1].copy(), flipped, {1: "nodule"}, name="flipped")
    assert np.array_equal(again.labels, layer.labels) and session.current_layer() is again


def test_brush_eraser_undo_redo_and_dirty(opened):
    session, events = opened
    session.select_layer(None)
    session.layers.clear()  # start with no layer: the first stroke makes a corrections layer
    k = session.cursor[2]
    sp = session.volume.geometry.spacing
    session.paint("axial", 30.5 * sp[0], 20.5 * sp[1], radius_mm=2.0, value=1, start=True, finish=False)
    session.paint("axial", 60.5 * sp[0], 20.5 * sp[1], radius_mm=2.0, value=1, start=False, finish=True)
    layer, = session.layers
    assert layer.name == "corrections" and session.dirty and session.can_undo
    row = layer.labels[k, 20]
    assert row[30:61].all() and not row[:26].any()  # a continuous stroke from column 30 to 60, 2 mm wide
    assert not layer.labels[k - 1].any()
    painted = layer.labels.copy()
    session.paint("axial", 40.5 * sp[0], 20.5 * sp[1], radius_mm=1.0, value=0, start=True, finish=True)
    assert layer.labels[k, 20, 40] == 0
    session.paint("axial", 80.5 * sp[0], 90.5 * sp[1], radius_mm=1.0, value=3, start=True, finish=True)
    assert layer.names[3] == "label 3" and layer.lut()[3, 3] == 255
    assert session.undo() and session.undo()
    assert np.array_equal(layer.labels, painted)
    assert session.redo() and layer.labels[k, 20, 40] == 0
    assert session.undo() and np.array_equal(layer.labels, painted)
    assert session.undo() and not layer.labels.any() and not session.can_undo and session.can_redo
    assert not session.undo()
    assert ("dirty_changed", (True,)) in events
    session.mark_exported(layer)
    assert not session.dirty and ("dirty_changed", (False,)) in events


def test_brush_is_round_in_millimetres_on_anisotropic_pixels():
    target = np.zeros((40, 40), np.uint8)
    block = paint_disc(target, (20, 20), 4.0, (2.0, 0.5), 7)  # rows 2 mm apart, columns 0.5 mm
    rows, cols = np.nonzero(target)
    assert block == (18, 23, 12, 29)
    assert (rows.max() - rows.min()) * 2.0 == pytest.approx(8.0) and (cols.max() - cols.min()) * 0.5 == pytest.approx(8.0)
    assert paint_disc(target, (-50, -50), 1.0, (1, 1), 1) is None  # off the slice: nothing
    line = np.zeros((10, 100), np.uint8)
    assert paint_segment(line, (5, 5), (5, 95), 1.0, (1.0, 1.0), 1)
    assert line[5, 5:96].all()


def test_ruler_and_roi_in_mm_and_hu(opened):
    session, _ = opened
    vol = session.volume
    sp = vol.geometry.spacing
    ruler = session.measure_ruler("axial", (0.5 * sp[0], 0.5 * sp[1]), (30.5 * sp[0], 40.5 * sp[1]))
    assert ruler.length_mm == pytest.approx(np.hypot(30 * sp[0], 40 * sp[1]))
    session.measurements.add(ruler)
    k = session.cursor[2]
    roi = measure_roi(vol, "axial", k, (20 * sp[0], 20 * sp[1]), (40 * sp[0], 30 * sp[1]))
    region = vol.real(vol.voxels[k, 20:30, 20:40])
    assert roi.stats.n == 200 and roi.stats.mean == pytest.approx(float(region.mean()), abs=1e-3)
    assert roi.stats.area_mm2 == pytest.approx(200 * sp[0] * sp[1]) and roi.unit == "HU"
    session.measurements.add(roi)
    assert [m.name for m in session.measurements] == ["Ruler 1", "ROI 1"]


def test_comparison_resampled_onto_the_shown_grid(opened):
    session, events = opened
    vol = session.volume
    real = vol.real(vol.voxels)
    session.set_comparison("plus 100", comparison_on_grid(real + 100, vol.geometry, vol.geometry, vol.shape))
    assert session.compare_mode == "swipe" and np.allclose(session.comparison[1] - real, 100)
    # half resolution on another grid: resampled linearly through patient coordinates
    g = vol.geometry
    coarse = Geometry((g.spacing[0] * 2, g.spacing[1] * 2, g.spacing[2]), g.origin, g.direction)
    small = np.full((16, 64, 64), 7.0, np.float32)
    small[:, :, 32:] = 11.0
    session.add_comparison(small, coarse, name="coarse")
    image = session.comparison.image
    assert image.shape == vol.shape and image[8, 64, 10] == pytest.approx(7.0) and image[8, 64, 120] == pytest.approx(11.0)
    assert "coarse: 7" in session.readout_text(10, 64, 8)
    session.set_compare_mode("Side by side")
    assert session.compare_mode == "side"
    with pytest.raises(ValueError):
        session.set_comparison("wrong", np.zeros((2, 2, 2), np.float32))


def test_autosave_reopen_and_a_new_study_resets(opened, tmp_path):
    session, _ = opened
    layer = session.layers[0]
    k = session.cursor[2]
    sp = session.volume.geometry.spacing
    session.paint("axial", 10.5 * sp[0], 10.5 * sp[1], radius_mm=1.5, value=2, start=True, finish=True)
    assert session.autosave_due()
    snapshot = session.autosave_snapshot()
    assert snapshot is not None and session.autosave_snapshot() is None  # nothing new since
    edited = layer.labels.copy()
    writer = AutosaveWriter()
    path = write_autosave(writer, snapshot)
    writer.close()
    assert path.exists() and path.suffix == ".npz" and "radiology" in path.parts
    session.paint("axial", 100.5 * sp[0], 100.5 * sp[1], radius_mm=1.5, value=2, start=True, finish=True)
    # reopen (as after a crash): the autosave brings the edits back as a layer with unexported edits
    again = RadiologySession()
    result = read_path(LUNG1)
    again.open_volume(result["volume"], auto_window=result["auto_window"])
    assert again.autosave_file() == path
    maps, notices = load_autosave_layers(again.autosave_file(), again.volume.geometry, again.volume.shape)
    assert notices == []
    restored, = again.restore_layers(maps)
    assert restored.name == "lung1_label.nrrd (autosaved edits)" and restored.unsaved and again.dirty
    assert np.array_equal(restored.labels, edited) and restored.labels[k, 10, 10] == 2
    assert restored.names == {1: "label 1", 2: "label 2"}
    # a damaged autosave is set aside with a sentence, never an exception
    path.write_bytes(b"PK\x03\x04 not really a zip")
    maps, notices = load_autosave_layers(path, again.volume.geometry, again.volume.shape, "lung1")
    assert maps == [] and "could not be read" in notices[0] and not path.exists()
    # a new study: nothing of the first one is left
    again.set_comparison("copy", again.volume.real(again.volume.voxels))
    again.measurements.add(again.measure_ruler("axial", (1, 1), (5, 5)))
    from engines.radiology.samples import write_ct_series

    write_ct_series(tmp_path / "ct", n_slices=6, rows=32, cols=32, pixel_mm=6.0, slice_mm=12.0)
    other = read_path(tmp_path / "ct")
    again.open_volume(other["volume"], scan=other["scan"], auto_window=other["auto_window"])
    assert again.volume.shape == (6, 32, 32) and again.layers == [] and again.comparison is None
    assert again.compare_mode == "off" and len(again.measurements) == 0 and not again.can_undo
    assert not again.dirty and again.cursor == [16, 16, 3] and again.undo() is False
    assert again.autosave_file() != path  # keyed by the DICOM series UID


def test_boxes_cut_only_their_slices(opened):
    session, _ = opened
    g = session.volume.geometry
    session.add_boxes([{"min_index": [5, 5, 3], "max_index": [9, 9, 5], "label": "nodule", "score": 0.9},
                       {"min_index": [40, 40, 3], "max_index": [44, 44, 5], "score": 0.2}], threshold=0.5)
    session.set_cursor(0, 0, 4)
    rects = session.box_rects("axial", 0, 1)
    assert len(rects) == 1 and rects[0][0] == pytest.approx(5 * g.spacing[0] + g.spacing[0] / 2)
    session.set_box_threshold(0.1)
    assert len(session.box_rects("axial", 0, 1)) == 2
    session.set_cursor(0, 0, 10)
    assert session.box_rects("axial", 0, 1) == []


def test_edits_autosaved_by_an_earlier_version_are_read_once(opened):
    from engines.radiology.label_autosave import legacy_autosave_folder
    from engines.radiology.overlays import LabelMap, write_label_file

    session, _ = opened
    vol = session.volume
    folder = legacy_autosave_folder(vol)
    folder.mkdir(parents=True)
    labels = np.zeros(vol.shape, np.uint8)
    labels[3, 40:50, 60:70] = 4
    write_label_file(LabelMap(labels, vol.geometry, {4: "edit"}), folder / "layer-0a1b2c3d.nii.gz")
    (folder / "layer-0a1b2c3d.name").write_text("my corrections", encoding="utf-8")
    (folder / "layer-broken.nii.gz").write_bytes(b"not gzip")
    maps, notices = load_autosave_layers(session.autosave_file(), vol.geometry, vol.shape, legacy_folder=folder)
    restored, = session.restore_layers(maps)
    assert restored.name == "my corrections (autosaved edits)" and np.array_equal(restored.labels, labels)
    assert len(notices) == 1 and "layer-broken.nii.gz" in notices[0]


def _reviewed(session):
    """Three findings on lung1: F1 accepted, F2 rejected, F3's box moved and its mask painted."""
    from engines.radiology.findings import Finding, MaskPatch

    g, shape = session.volume.geometry, session.volume.shape
    mask = np.zeros(shape, bool)
    mask[6:9, 60:66, 60:66] = True

    def box(lo_ijk, hi_ijk):
        a, b = g.index_to_lps(np.array(lo_ijk, float) - 0.5), g.index_to_lps(np.array(hi_ijk, float) + 0.5)
        return tuple(np.minimum(a, b)), tuple(np.maximum(a, b))

    findings = [Finding("F1", "nodule", 0.9, *box((60, 60, 6), (65, 65, 8)), volume_ml=0.3,
                        mask=MaskPatch.from_full(mask), source="test"),
                Finding("F2", "nodule", 0.7, *box((20, 20, 2), (25, 25, 3)), source="test"),
                Finding("F3", "nodule", 0.6, *box((90, 90, 10), (99, 99, 12)), source="test")]
    session.start_review(findings, threshold=0.5, engine="test-detector")
    session.review.accept("F1")
    session.review.reject("F2")
    session.review.select("F3")
    session.edit_finding("F3")
    h0, v0, h1, v1 = session.finding_rect("axial")
    session.set_finding_rect("axial", (h0 + 3.0, v0 + 2.0, h1 + 3.0, v1 + 2.0))
    sp = g.spacing
    session.paint("axial", 94.5 * sp[0], 94.5 * sp[1], radius_mm=2.0, value=1, start=True, finish=True)
    session.edit_finding(None)
    return session.finding_layer("F3").labels.copy()


def test_the_review_comes_back_from_the_autosave_tied_to_its_findings(opened):
    from engines.radiology.label_autosave import load_autosave_contents

    session, _ = opened
    painted = _reviewed(session)
    assert session.autosave_due()
    before = {f.id: f for f in session.review.findings}
    writer = AutosaveWriter()
    path = write_autosave(writer, session.autosave_snapshot())
    writer.close()
    again = RadiologySession()
    result = read_path(LUNG1)
    again.open_volume(result["volume"], auto_window=result["auto_window"])
    contents = load_autosave_contents(again.autosave_file(), again.volume.geometry, again.volume.shape, "lung1")
    assert contents.notices == [] and contents.layers == []  # the painted mask is the finding's, not a layer
    again.restore_review(contents.review)
    assert again.review_engine == "test-detector" and not again.autosave_due()  # what is on disk already
    restored = {f.id: f for f in again.review.findings}
    assert [f.id for f in again.review.findings] == ["F1", "F2", "F3"] and again.review.threshold == 0.5
    assert {i: f.state for i, f in restored.items()} == {"F1": "accepted", "F2": "rejected", "F3": "unreviewed"}
    for fid, f in restored.items():
        assert np.allclose(f.lo_mm, before[fid].lo_mm, atol=1e-3) and np.allclose(f.hi_mm, before[fid].hi_mm, atol=1e-3)
    assert restored["F3"].edited and not restored["F1"].edited and again.review.current.id == "F3"
    assert np.allclose(again.review.original("F3").lo_mm, session.review.original("F3").lo_mm)
    assert np.array_equal(restored["F3"].mask.full(again.volume.shape), painted > 0)
    assert np.array_equal(restored["F1"].mask.full(again.volume.shape), before["F1"].mask.full(again.volume.shape))
    layer = again.finding_layer("F3")  # the painted mask is again the finding's own layer, hidden, unexported
    assert layer is not None and np.array_equal(layer.labels, painted) and not layer.visible and again.dirty
    assert [x.name for x in again.layers] == ["F3 mask (review)"]
    again.review.undo()  # a restored review starts a fresh history
    assert restored["F1"].state == again.review.get("F1").state
    again.review.reset("F1")  # a review change asks for the next autosave
    assert again.autosave_due() and again.autosave_snapshot()["review"]["findings"][0].state == "unreviewed"
    assert path == again.autosave_file()


def test_a_damaged_or_foreign_review_autosave_is_set_aside_with_one_sentence(opened):
    import json
    import zlib

    from engines.core.autosave import encode_array_autosave
    from engines.radiology.label_autosave import AUTOSAVE_SCHEMA, load_autosave_contents

    session, _ = opened
    _reviewed(session)
    writer = AutosaveWriter()
    path = write_autosave(writer, session.autosave_snapshot())
    writer.close()
    vol = session.volume
    good = np.load(path, allow_pickle=False)
    arrays = {k: good[k] for k in good.files if k != "__autosave__"}
    meta = json.loads(good["__autosave__"].tobytes())["meta"]
    cases = {"a state no version wrote": lambda m: m["review"]["findings"][0].update(state="maybe"),
             "a mask off the grid": lambda m: m["review"]["masks"][0].update(lo_kji=[15, 127, 127]),
             "a box with three words": lambda m: m["review"]["findings"][1].update(lo_mm=["a", "b", "c"])}
    for why, spoil in cases.items():
        bad = json.loads(json.dumps(meta))
        spoil(bad)
        path.write_bytes(encode_array_autosave(arrays, schema=AUTOSAVE_SCHEMA, meta=bad))
        contents = load_autosave_contents(path, vol.geometry, vol.shape, "lung1")
        assert contents.review is None and contents.layers == [], why
        assert len(contents.notices) == 1 and "could not be read (its contents are damaged)" in contents.notices[0]
        assert not path.exists() and list(path.parent.glob(path.name + ".damaged-*")), why
        for old in path.parent.glob(path.name + ".damaged-*"):
            old.unlink()
    arrays["finding_mask_0"] = np.frombuffer(zlib.compress(b"short"), np.uint8)
    path.write_bytes(encode_array_autosave(arrays, schema=AUTOSAVE_SCHEMA, meta=meta))
    contents = load_autosave_contents(path, vol.geometry, vol.shape, "lung1")
    assert contents.review is None and len(contents.notices) == 1 and not path.exists()
    path.write_bytes(encode_array_autosave({}, schema=AUTOSAVE_SCHEMA + 1, meta=meta))  # a newer version's
    contents = load_autosave_contents(path, vol.geometry, vol.shape, "lung1")
    assert contents.review is None and "newer version" in contents.notices[0]
    assert list(path.parent.glob(path.name + ".newer-*"))
