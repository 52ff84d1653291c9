"""Findings from the haemorrhage detector's voxel probabilities (no network): fractures are cut at their own
lower probability and may be a single voxel, haemorrhage regions are typed by their majority class, a region
encircling the head is dropped; and the training batches hold their guaranteed share of fracture and
subdural patches."""
from __future__ import annotations

import numpy as np

from engines.radiology_ai.haemorrhage import CANDIDATE_VOXEL_P, CLASSES, FRACTURE_VOXEL_P, candidates


def _prob(shape=(20, 40, 40)) -> np.ndarray:
    p = np.zeros((len(CLASSES),) + shape, np.float32)
    p[0] = 1.0
    return p


def _put(p, cls, where, value):
    p[cls][where] = value
    p[0][where] = 1.0 - value


def _head_hu(shape=(20, 40, 40)) -> np.ndarray:
    hu = np.full(shape, -1000.0, np.float32)
    hu[:, 2:38, 2:38] = 30.0
    return hu


def test_a_thin_fracture_below_the_haemorrhage_cut_is_a_fracture_finding_scored_by_its_top_voxels():
    p = _prob()
    line = (slice(8, 12), slice(5, 6), slice(10, 30))  # one voxel thick, probability 0.2 .. 0.26
    _put(p, 6, line, 0.2)
    _put(p, 6, (10, 5, slice(20, 23)), np.array([0.24, 0.25, 0.26], np.float32))
    assert FRACTURE_VOXEL_P < 0.2 < CANDIDATE_VOXEL_P
    found = candidates(p, hu=_head_hu())
    assert [r["type"] for r in found] == [6]
    assert found[0]["mask"].sum() == 4 * 20
    assert abs(found[0]["raw"] - 0.25) < 1e-6  # mean of the 3 most probable voxels, not of 8
    p[6] = 0.0
    p[0] = 1.0
    _put(p, 6, (3, 30, 30), 0.5)  # a single voxel is still a fracture region
    assert [(r["type"], int(r["mask"].sum())) for r in candidates(p, hu=_head_hu())] == [(6, 1)]


def test_haemorrhage_region_is_typed_by_its_majority_class_and_needs_two_voxels():
    p = _prob()
    crescent = (slice(5, 15), slice(3, 6), slice(8, 32))
    p[3][crescent], p[2][crescent] = 0.5, 0.3
    p[0][crescent] = 0.2
    _put(p, 1, (2, 20, 20), 0.9)  # one voxel: too small for a haemorrhage finding
    found = candidates(p, hu=_head_hu())
    assert [r["type"] for r in found] == [3]
    assert abs(found[0]["raw"] - 0.8) < 1e-6  # classes 1-5 together: 0.5 + 0.3


def test_a_region_encircling_the_head_is_dropped_for_haemorrhage_and_fracture():
    hu = _head_hu()
    for cls in (2, 6):
        p = _prob()
        shell = np.zeros(hu.shape, bool)
        shell[6:14, 3:37, 3:37] = True
        shell[6:14, 6:34, 6:34] = False  # a ring just inside the head's outline, all the way round
        _put(p, cls, shell, 0.9)
        assert candidates(p, hu=hu) == []
        assert len(candidates(p)) == 1  # without the HU volume the rule cannot apply


def test_training_batches_hold_the_guaranteed_fracture_and_subdural_patches():
    from scripts.radiology_ai.train_haemorrhage import strong_batch

    rng = np.random.default_rng(0)
    cases = []
    for n in range(3):
        types = np.zeros((30, 40, 40), np.uint8)
        types[10:20, 10:30, 5:7] = 1  # a large haemorrhage in every case
        if n == 1:
            types[4, 20, 30:33] = 6  # three fracture voxels in one case
        if n == 2:
            types[25, 5:30, 30] = 3
        x = np.zeros((2,) + types.shape, np.float32)
        cases.append({"x": x, "types": types, "fg_idx": np.argwhere(types > 0),
                      "cls_idx": {t: np.argwhere(types == t) for t in (3, 6)},
                      "head_idx": np.argwhere(np.ones(types.shape, bool))[::97], "rim_idx": np.zeros((0, 3), int)})
    for _ in range(5):
        _, y = strong_batch(cases, rng, 8, 16, focus={6: 0.25, 3: 0.25})
        assert y.shape == (8, 16, 16, 16)
        assert sum((b == 6).any() for b in y) >= 2 and sum((b == 3).any() for b in y) >= 2
    _, y = strong_batch(cases, rng, 8, 16)  # without a focus no patch is bound to a class
    assert y.shape == (8, 16, 16, 16)
