"""Held-out evaluation and calibration of the DWI lesion U-Nets, through the engine's own path.

Every figure goes through ``LesionSegmentationSEEngine.evaluate_volume`` (prepare: LPS -> RAS flip,
normalisation, 2.4 mm zoom, pad to 8; infer: the network; finish: calibrated probabilities back on the input
grid, threshold, labels), on simulated subjects rebuilt from their seeds as in-memory volumes on the grid the
DICOM sample uses. Used by scripts/radiology_ai/train_lesion_unet.py (the card it saves),
scripts/radiology_ai/eval_lesion_unet.py (re-measure and calibrate the shipped cards) and the tests.

Splits: training seeds 0-39, held-out test seeds 1000-1009, calibration (validation) seeds 2000-2039 (never
trained on, never in the test figures).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Sequence

import numpy as np

TEST_SEEDS = tuple(range(1000, 1010))
VALIDATION_SEEDS = tuple(range(2000, 2040))
TEST_SAMPLE_SEED = 1003  # the one held-out subject the tests reproduce (seconds)
PIXELS_PER_VOLUME = 20000  # head pixels drawn per validation volume for the temperature fit


@lru_cache(maxsize=64)
def subject(seed: int):
    """(Volume, lesion mask) of simulated subject ``seed`` (cached: simulation takes seconds)."""
    from engines.radiology_ai.samples import dwi_volume

    return dwi_volume(int(seed))


def summary(per: Sequence[dict[str, Any]]) -> dict[str, Any]:
    with_les = [p for p in per if p["lesions"] > 0]
    total = sum(p["lesions"] for p in per)
    return {"volumes": len(per), "lesions": int(total),
            "dice_mean_volumes_with_lesions": round(float(np.mean([p["dice"] for p in with_les])), 4)
            if with_les else None,
            "lesion_sensitivity": round(sum(p["found"] for p in per) / max(1, total), 4),
            "false_positives_per_volume": round(float(np.mean([p["false_positives"] for p in per])), 3),
            "per_volume": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in p.items()} for p in per]}


def evaluate(engine, seeds: Iterable[int] = TEST_SEEDS, threshold: float = 0.5) -> dict[str, Any]:
    """Dice, lesion sensitivity and false positives per volume of ``engine`` on the subjects ``seeds``."""
    from engines.radiology_ai.dwi_sim import lesion_metrics

    per = []
    for seed in seeds:
        volume, truth = subject(seed)
        result, _, _ = engine.evaluate_volume(volume, threshold=threshold)
        per.append(dict(lesion_metrics(result.labels, truth), seed=int(seed), ood=result.scores["ood"]["score"]))
    return summary(per)


def calibration(engine, seeds: Iterable[int] = VALIDATION_SEEDS, seed: int = 0) -> dict[str, Any]:
    """Temperature, reliability (ECE before/after) and the energy-score reference of ``engine`` on the
    validation subjects: pixel logits of the head (a uniform sample per volume) against the true mask, and one
    energy score per volume as the engine summarises it (at the fitted temperature)."""
    from engines.core.calibration import calibrate, ood_reference

    seeds = list(seeds)
    rng = np.random.default_rng(seed)
    logits_all, labels_all, runs = [], [], []
    for s in seeds:
        volume, truth = subject(s)
        _, logits, inputs = engine.evaluate_volume(volume)
        net_truth = truth[:, ::-1, ::-1]  # the engine's flip; simulated subjects are at 2.4 mm (no zoom)
        if net_truth.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError("calibration needs subjects on the trained 2.4 mm grid")
        idx = np.flatnonzero((volume.voxels[:, ::-1, ::-1] > 0).ravel())  # inside the simulated head
        pick = rng.choice(idx, min(len(idx), PIXELS_PER_VOLUME), replace=False)
        logits_all.append(np.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])[pick])
        labels_all.append(net_truth.ravel()[pick])
        runs.append((logits, inputs))
    cal = calibrate(np.concatenate(logits_all), np.concatenate(labels_all).astype(np.int64))
    scores = [engine.ood_score(logits, inputs, temperature=cal["temperature"]) for logits, inputs in runs]
    cal["ood"] = dict(ood_reference(np.asarray(scores)), unit="mean energy over the head's pixels, per volume",
                      n_volumes=len(scores))
    cal["split"] = (f"validation subjects (seeds {min(seeds)}-{max(seeds)}), {PIXELS_PER_VOLUME} head pixels "
                    f"each for the temperature")
    return cal
