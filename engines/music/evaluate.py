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


#: the small held-out sample a card metric is reproduced on: a bundled recording of a held-out chorale
#: (BWV 153.1 ends in 3: never trained on) and its chordify labels
TEST_SAMPLE = ("music/bwv153.1-piano.ogg", "music/bwv153.1-piano.lab")


def held_out_sample_wcsr(engine, request: dict | None = None) -> dict:
    """WCSR (root, majmin, sevenths) of ``engine.predict`` on the bundled held-out chorale recording: the
    figure a model card records as ``test_sample_wcsr`` and a test reproduces."""
    from pathlib import Path

    from engines.core.paths import resources_dir
    from engines.music.chords import ChordTrack

    audio, lab = (resources_dir() / "samples" / p for p in TEST_SAMPLE)
    track = engine.predict({"audio_path": Path(audio), **(request or {})})
    reference = ChordTrack.read_lab(Path(lab), track.duration)
    scores, _ = wcsr(reference.segments, track.segments)
    return {**{m: round(v, 4) for m, v in scores.items()}, "recording": Path(audio).name}


def update_card(weights_name: str, *, calibration: dict | None = None, metrics: dict | None = None) -> str:
    """Write a calibration and/or metrics into a model card (the JSON only: the weights and their SHA-256 stay).
    Returns the card's path. (engines.core.card_json.update_card does the work: metrics merged, calibration
    replaced, the card validated before it is rewritten.)"""
    from engines.core.card_json import update_card as update_card_json

    return str(update_card_json(weights_name, metrics=metrics, calibration=calibration))
