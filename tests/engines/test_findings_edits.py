"""Editing reviewed findings headless (engines/radiology/findings.py, session.py, sr.py, windows.py): box
geometry between patient mm and the views, box and mask edits with one undo history, figures recomputed,
the SR/SEG round trip of edited findings, and the head CT window chosen from tags or from the image - on a
simulated head CT with a known haemorrhage and on the real lung1 chest CT."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.radiology.findings import (Finding, FindingsReview, MaskPatch, box_cuts, box_rect, box_with_rect,
                                        finding_statistics, same_mask)
from engines.radiology.geometry import Geometry
from engines.radiology.session import RadiologySession
from engines.radiology.windows import (BRAIN_WINDOW, SUBDURAL_WINDOW, choose_ct_window, head_ct_from_image,
                                       head_ct_from_tags)

LUNG1 = Path(__file__).parents[1] / "data" / "lung1-crop"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The simulated head CT sample (one intraparenchymal haemorrhage) as a DICOM series, opened, with its
    true mask."""
    from engines.radiology.ct_tissue import open_volume
    from engines.radiology_ai.head_ct_sim import sample_case, write_case

    case = sample_case()
    folder = tmp_path_factory.mktemp("head") / "ct"
    write_case(case, folder)
    return case, open_volume(folder)


def lesion_finding(case, volume, fid="F1", score=0.93) -> Finding:
    """The true lesion as a detector reports it: box on the voxel edges (LPS mm), mask, volume, mean HU."""
    mask = case.instances == 1
    idx = np.argwhere(mask)
    a = volume.geometry.index_to_lps(idx.min(0)[::-1] - 0.5)
    b = volume.geometry.index_to_lps(idx.max(0)[::-1] + 0.5)
    stats = finding_statistics(volume, Finding(fid, "", 0, (0, 0, 0), (0, 0, 0)), mask)
    return Finding(fid, "intraparenchymal haemorrhage", score, tuple(np.minimum(a, b)), tuple(np.maximum(a, b)),
                   volume_ml=stats.volume_ml, mean_hu=stats.mean_hu, slice_index=stats.slice_index,
                   mask=MaskPatch.from_full(mask), source="head-ct-haemorrhage")


def beside(rect, side: int, gap_mm: float = 6.0) -> tuple[float, float]:
    """A point ``gap_mm`` right (side 1) or left (side -1) of a box's rectangle, at its middle height: outside
    the box, so outside the finding's mask."""
    h = rect[2] + gap_mm if side > 0 else rect[0] - gap_mm
    return h, (rect[1] + rect[3]) / 2


@pytest.fixture
def session(head):
    case, volume = head
    s = RadiologySession()
    s.open_volume(volume)
    s.start_review([lesion_finding(case, volume), lesion_finding(case, volume, "F2", 0.4)], threshold=0.3,
                   engine="head-ct-haemorrhage")
    return s


# -- geometry -----------------------------------------------------------------------------------------------
def test_box_moves_and_resizes_by_the_dragged_millimetres_on_a_flipped_grid():
    # columns run to the patient's right (-x), rows to anterior (-y): what a view shows is not LPS order
    g = Geometry((0.8, 0.6, 2.5), (40.0, 30.0, -12.0), np.diag([-1.0, -1.0, 1.0]))
    lo, hi = (10.0, 5.0, -7.0), (20.0, 14.0, 3.0)
    rect = box_rect(lo, hi, g, 0, 1)  # axial: h = i, v = j
    assert rect[2] - rect[0] == pytest.approx(10.0) and rect[3] - rect[1] == pytest.approx(9.0)
    moved = box_with_rect(lo, hi, g, 0, 1, (rect[0] + 4.0, rect[1] - 2.0, rect[2] + 4.0, rect[3] - 2.0))
    # 4 mm to the view's right is 4 mm to the patient's right (x falls); 2 mm up is 2 mm posterior (y rises)
    assert np.allclose(moved[0], (6.0, 7.0, -7.0)) and np.allclose(moved[1], (16.0, 16.0, 3.0))
    wider = box_with_rect(lo, hi, g, 0, 2, (*box_rect(lo, hi, g, 0, 2)[:2], box_rect(lo, hi, g, 0, 2)[2] + 3.0,
                                            box_rect(lo, hi, g, 0, 2)[3] + 5.0))  # coronal: h = i, v = k
    assert np.allclose(wider[0], (7.0, 5.0, -7.0)) and np.allclose(wider[1], (20.0, 14.0, 8.0))
    k_lo, k_hi = g.lps_to_index([0, 0, -7.0])[2], g.lps_to_index([0, 0, 3.0])[2]
    assert box_cuts(lo, hi, g, 2, int(np.ceil(k_lo))) and not box_cuts(lo, hi, g, 2, int(k_hi) + 2)


def test_mask_patch_round_trip_and_statistics_on_the_simulated_lesion(head):
    case, volume = head
    mask = case.instances == 1
    patch = MaskPatch.from_full(mask)
    assert np.array_equal(patch.full(volume.shape), mask) and patch.voxels == int(mask.sum()) == 283
    assert same_mask(patch, MaskPatch.from_full(mask.copy())) and not same_mask(patch, None)
    stats = finding_statistics(volume, Finding("F1", "x", 1, (0, 0, 0), (1, 1, 1), mask=patch))
    assert stats.voxels == 283 and stats.volume_ml == pytest.approx(283 * 2 * 2 * 5 / 1000)
    assert stats.mean_hu == pytest.approx(case.findings[0]["mean_hu"], abs=1.0)  # blood: 50-90 HU, noisy
    assert 45 < stats.mean_hu < 90


# -- review model -------------------------------------------------------------------------------------------
def test_box_edits_are_undoable_and_mark_the_finding_edited():
    f = Finding("F1", "subdural haemorrhage", 0.9, (0.0, 0.0, 0.0), (10.0, 10.0, 10.0), state="accepted")
    review = FindingsReview([f], threshold=0.0)
    events = []
    review.subscribe(lambda what, detail: events.append((what, detail)))
    review.edit_box((2.0, 1.0, 0.0), (13.0, 10.0, 10.0))
    g = review.get("F1")
    assert g.edited and g.state == "accepted" and g.size_mm == (11.0, 9.0, 10.0)
    assert ("boxes", ["F1"]) in events and ("step", None) in events
    review.reject()
    review.undo()
    review.undo()
    assert review.get("F1") == f and not review.get("F1").edited  # back to what the detector gave
    review.redo()
    assert review.get("F1").edited and review.get("F1").lo_mm == (2.0, 1.0, 0.0)
    assert review.get("F1").to_dict()["edited"] is True


# -- the session: one history, figures recomputed --------------------------------------------------------
def test_head_ct_opens_in_the_brain_window_from_its_tags(head):
    _case, volume = head
    s = RadiologySession()
    s.open_volume(volume)
    assert s.window == BRAIN_WINDOW and s.window_choice.head is True
    assert "head" in s.window_choice.reason.lower() and s.window_choice_job() is None  # no image check needed


def test_drag_box_paint_mask_undo_and_redo_through_the_session(session, head):
    case, volume = head
    original = session.review.get("F1")
    session.set_window(400, 40)
    session.edit_finding("F1")
    layer = session.finding_layer("F1")
    assert session.current is layer and int((layer.labels > 0).sum()) == 283  # its own mask, to paint on
    rect = session.finding_rect("axial")
    assert rect is not None  # the crosshair went into the box
    due = []
    session.finding_stats_due.connect(due.append)
    session.set_finding_rect("axial", (rect[0] + 6.0, rect[1], rect[2] + 6.0, rect[3] + 4.0))  # move, taller
    moved = session.review.get("F1")
    assert np.allclose(np.subtract(moved.lo_mm, original.lo_mm), (6.0, 0.0, 0.0))
    assert np.allclose(np.subtract(moved.hi_mm, original.hi_mm), (6.0, 4.0, 0.0))
    assert moved.edited and moved.size_mm[1] == pytest.approx(original.size_mm[1] + 4.0) and due == []
    # paint beside the lesion into the finding's mask, then measure it as a worker would
    session.paint("axial", *beside(rect, 1), radius_mm=5.0, value=1, start=True, finish=True)
    assert due == ["F1"]
    job = session.finding_stats_job("F1")
    stats = job(None, None)
    assert session.apply_finding_stats(stats)
    painted = session.review.get("F1")
    added = int((layer.labels > 0).sum()) - 283
    assert added > 5 and painted.mask.voxels == 283 + added
    assert painted.volume_ml == pytest.approx((283 + added) * 0.02)
    assert painted.mean_hu != original.mean_hu
    session.paint("axial", *beside(rect, -1), radius_mm=3.0, value=1, start=True, finish=True)
    stale = job(None, None)
    assert not session.apply_finding_stats(stale)  # measured before the last stroke: dropped
    # one history: the strokes, then the box, undo in reverse order
    assert session.undo() and session.undo()
    session.update_finding_stats("F1")
    assert session.review.get("F1").mask.voxels == 283 and session.review.get("F1").volume_ml == original.volume_ml
    assert session.review.get("F1").edited  # the box is still moved
    assert session.undo()
    back = session.review.get("F1")
    assert back.lo_mm == original.lo_mm and not back.edited and not session.can_undo
    assert session.redo()
    assert np.allclose(np.subtract(session.review.get("F1").lo_mm, original.lo_mm), (6.0, 0.0, 0.0))


def test_review_states_and_strokes_share_the_history_and_a_new_result_resets_it(session):
    session.review.accept()
    session.edit_finding("F1")
    session.paint("axial", *beside(session.finding_rect("axial"), 1), radius_mm=4.0, value=1, start=True,
                  finish=True)
    session.review.next()  # editing follows the cursor to the next finding
    assert session.editing == "F2" and not session.finding_layer("F1").visible
    session.undo()  # the stroke
    assert session.review.get("F1").state == "accepted"
    session.undo()  # the acceptance
    assert session.review.get("F1").state == "unreviewed" and not session.can_undo
    session.start_review([], engine="head-ct-haemorrhage")
    assert session.editing is None and session.finding_layer("F1") is None
    assert not any(layer.name.endswith("(review)") for layer in session.layers)


def test_a_box_without_mask_is_measured_in_its_box(head):
    _case, volume = head
    s = RadiologySession()
    s.open_volume(volume)
    g = volume.geometry
    lo, hi = g.index_to_lps([60, 60, 14]), g.index_to_lps([63, 61, 15])  # voxel centres: 4 x 2 x 2 voxels
    s.start_review([Finding("B1", "skull fracture", 0.8, tuple(lo), tuple(hi))])
    due = []
    s.finding_stats_due.connect(due.append)
    s.review.edit_box(lo, g.index_to_lps([64, 61, 15]))  # one more column
    assert due == ["B1"]
    s.update_finding_stats("B1")
    f = s.review.get("B1")
    assert f.volume_ml == pytest.approx(5 * 2 * 2 * 0.02)
    block = volume.real(volume.voxels[14:16, 60:62, 60:65]).astype(float)
    assert f.mean_hu == pytest.approx(block.mean(), abs=0.06)


# -- SR and SEG of edited findings --------------------------------------------------------------------------
def test_sr_round_trip_keeps_edited_boxes_states_and_the_seg_the_edited_mask(session, head, tmp_path):
    from engines.radiology.findings import with_masks
    from engines.radiology.overlays import read_seg
    from engines.radiology.sr import read_findings_sr, write_findings_sr

    _case, volume = head
    session.edit_finding("F1")
    axial = session.finding_rect("axial")
    rect = session.finding_rect("coronal")
    session.set_finding_rect("coronal", (rect[0] - 3.3, rect[1] + 2.7, rect[2] - 3.3, rect[3] + 2.7))
    session.paint("axial", *beside(axial, 1), radius_mm=4.0, value=1, start=True, finish=True)
    session.review.accept("F1")
    session.review.reject("F2")
    findings = with_masks(session.review.findings, session.finding_mask_snapshot())  # what the panel exports
    session.update_finding_stats("F1")
    assert [f.edited for f in session.review.findings] == [True, False]
    written = write_findings_sr(with_masks(session.review.findings, session.finding_mask_snapshot()), volume,
                                tmp_path / "review.dcm", algorithm="head-ct-haemorrhage")
    back, ref = read_findings_sr(written[0])
    assert ref == volume.series.uid
    by_id = {f.id: f for f in back}
    assert {fid: (f.state, f.edited) for fid, f in by_id.items()} == {"F1": ("accepted", True),
                                                                     "F2": ("rejected", False)}
    edited = session.review.get("F1")
    assert np.abs(np.subtract(by_id["F1"].lo_mm, edited.lo_mm)).max() < 1.0
    assert np.abs(np.subtract(by_id["F1"].hi_mm, edited.hi_mm)).max() < 1.0
    assert np.abs(np.subtract(edited.lo_mm, session.review.original("F1").lo_mm)).max() > 2.5  # it did move
    assert by_id["F1"].volume_ml == pytest.approx(edited.volume_ml)
    label_map, _ref = read_seg(written[1])
    on_grid = label_map.on_grid(volume.geometry, volume.shape).labels
    assert np.array_equal(on_grid == 1, edited.mask.full(volume.shape))  # the painted mask, not the original
    assert np.array_equal(findings[0].mask.full(volume.shape), edited.mask.full(volume.shape))
    assert int((on_grid == 1).sum()) > 283
    assert "F1 intraparenchymal haemorrhage (accepted, edited)" in label_map.names.values()


# -- the window a CT opens with -----------------------------------------------------------------------------
def test_head_ct_without_tags_is_recognised_from_its_skull_ring(head):
    from engines.radiology.reader import Volume

    case, volume = head
    assert head_ct_from_image(case.hu, case.spacing)[0]
    bare = Volume(volume.voxels, volume.geometry, slope=volume.slope, intercept=volume.intercept, modality="CT",
                  meta={"series_description": "case.nii.gz"})
    assert head_ct_from_tags(bare)[0] is None
    s = RadiologySession()
    s.open_volume(bare)
    assert s.window == (400.0, 40.0)  # the tags did not say: the image check is a worker's
    job = s.window_choice_job()
    result = job(None, None)
    assert result[1].head and s.apply_window_choice(*result)
    assert s.window == BRAIN_WINDOW
    # a window the user chose meanwhile is kept
    s.open_volume(bare)
    s.set_window(1800, 400)
    assert s.apply_window_choice(*s.window_choice_job()(None, None)) and s.window == (1800, 400)


def test_the_real_chest_ct_keeps_its_window():
    from engines.radiology.opening import read_path

    result = read_path(LUNG1)
    volume = result["volume"]
    choice = choose_ct_window(volume)
    assert choice.head is False and choice.window is None
    s = RadiologySession()
    s.open_volume(volume, auto_window=result["auto_window"])
    s.apply_window_choice(*s.window_choice_job()(None, None))
    assert s.window == (400.0, 40.0)


def test_tags_decide_before_the_image(head):
    from engines.radiology.reader import Volume

    _case, volume = head
    chest = Volume(volume.voxels, volume.geometry, slope=volume.slope, intercept=volume.intercept, modality="CT",
                   meta={"series_description": "CHEST W/O CONTRAST"})
    assert head_ct_from_tags(chest)[0] is False and choose_ct_window(chest).window is None
    brain = Volume(volume.voxels[:2], volume.geometry, modality="CT", meta={"study_description": "CT BRAIN"})
    assert choose_ct_window(brain).window == BRAIN_WINDOW
    mr = Volume(volume.voxels, volume.geometry, modality="MR", meta={"series_description": "head"})
    assert choose_ct_window(mr).window is None
    assert SUBDURAL_WINDOW == (200.0, 80.0)
