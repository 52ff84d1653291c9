"""Chord-recognition scores with mir_eval.chord: weighted chord symbol recall (WCSR) per MIREX rule."""
from __future__ import annotations

import warnings

import numpy as np

from engines.music.chords import ChordSegment

METRICS = ("root", "majmin", "sevenths")


def _arrays(segments: list[ChordSegment]) -> tuple[np.ndarray, list[str]]:
    segs = [s for s in segments if s.end > s.start]
    return np.array([[s.start, s.end] for s in segs], dtype=float).reshape(-1, 2), [s.label for s in segs]


def wcsr(reference: list[ChordSegment], estimate: list[ChordSegment]) -> tuple[dict[str, float], float]:
    """({metric: score}, reference duration in seconds). Scores over the reference's time span, as MIREX."""
    import mir_eval

    ref_iv, ref_lab = _arrays(reference)
    est_iv, est_lab = _arrays(estimate)
    if len(ref_iv) == 0:
        raise ValueError("the reference has no chords")
    if len(est_iv) == 0:
        est_iv, est_lab = np.array([[ref_iv.min(), ref_iv.max()]]), ["N"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns about gaps it fills with N
        est_iv, est_lab = mir_eval.util.adjust_intervals(est_iv, est_lab, ref_iv.min(), ref_iv.max(),
                                                         mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD)
        intervals, ref_m, est_m = mir_eval.util.merge_labeled_intervals(ref_iv, ref_lab, est_iv, est_lab)
        durations = mir_eval.util.intervals_to_durations(intervals)
        scores = {}
        for metric in METRICS:
            comparison = getattr(mir_eval.chord, metric)(ref_m, est_m)
            scores[metric] = float(mir_eval.chord.weighted_accuracy(comparison, durations)) \
                if np.any(comparison >= 0) else float("nan")
    return scores, float(durations.sum())
