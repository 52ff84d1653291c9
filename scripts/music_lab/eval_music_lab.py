"""Measure the melody harmonizer and the melody generator through their engines' own predict, and write the
figures into their model cards (card JSON only: the weights and their SHA-256 do not change).

    flock /tmp/csi-training.lock .venv/bin/python scripts/music_lab/eval_music_lab.py harmonizer --calibrate
    flock /tmp/csi-training.lock .venv/bin/python scripts/music_lab/eval_music_lab.py generator

Both read the chorale bar cache (scripts/music_lab/extract_chorale_bars.py). ``harmonizer``: accuracy and
chord-tone coverage of every method on the held-out chorales (BWV ending in 3/7) and on the tests' 40-chorale
fixture (``test_sample_accuracy``); with ``--calibrate`` the temperature of the BLSTM and of the DNN fitted on
the validation chorales (BWV ending in 9), their reliability (ECE before/after) and the energy OOD reference
(each validation chorale's mean per-bar energy). ``generator``: the melody statistics of the CVAE against the
real sopranos and the random walk on held-out 4-bar windows, and the small-sample figure the tests reproduce.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FIXTURE = ROOT / "tests/music_lab/data/heldout_bars.npz"


def calibrate_harmonizer(engine, chorales, held_out) -> dict:
    """The card's calibration, fitted on ``chorales``: the BLSTM's at the top level, the DNN's under "dnn"; each
    with its reliability on the ``held_out`` chorales (ECE before/after at the fitted temperature) and the share
    of held-out chorales the OOD check would warn about."""
    from types import SimpleNamespace

    from engines.core.calibration import (calibrate, energy_score, ood_check, ood_reference, reliability,
                                          softmax)
    from engines.music_lab.harmonizer import network_logits

    out: dict = {}
    for method in ("blstm", "dnn"):
        per_chorale = network_logits(engine, chorales, method)
        labels = np.concatenate([c.chord for c in chorales])
        logits = np.concatenate(per_chorale)
        keep = labels < 24
        cal = calibrate(logits[keep], labels[keep])
        t = cal["temperature"]
        cal["ood"] = {**ood_reference([float(energy_score(z, t).mean()) for z in per_chorale]),
                      "n": len(chorales), "per": "chorale (mean over its bars)"}
        cal["split"] = f"validation chorales (BWV ending in 9): {len(chorales)} chorales, {int(keep.sum())} bars"
        test_logits = network_logits(engine, held_out, method)
        z = np.concatenate(test_logits)
        y = np.concatenate([c.chord for c in held_out])
        k = y < 24
        correct = z[k].argmax(1) == y[k]
        flagged = [ood_check(float(energy_score(zc, t).mean()), SimpleNamespace(calibration=cal)) for zc in test_logits]
        cal["held_out"] = {"ece_before": reliability(softmax(z[k]).max(1), correct)["ece"],
                           "ece_after": reliability(softmax(z[k], t).max(1), correct)["ece"],
                           "bars": int(k.sum()), "chorales": len(held_out),
                           "ood_warned_share": round(float(np.mean([c is not None and c.status == "warned"
                                                                    for c in flagged])), 4)}
        if method == "blstm":
            out.update(cal)
        else:
            out["dnn"] = cal
    return out


def harmonizer(args) -> dict:
    from engines.core.card_json import update_card
    from engines.music_lab.dataset import load_chorales, split
    from engines.music_lab.harmonizer import WEIGHTS, MelodyHarmonizerEngine, evaluate_models

    engine = MelodyHarmonizerEngine()
    engine.load("cpu")
    parts = split(load_chorales(args.cache))
    calibration = None
    if args.calibrate:
        calibration = calibrate_harmonizer(engine, parts["val"], parts["test"])
        engine.unload()  # the engine reads its card's calibration at load: the figures below use the new one
    full = evaluate_models(engine, parts["test"])
    sample = evaluate_models(engine, load_chorales(FIXTURE))
    metrics = {"held_out_through_engine": {k: full[k] for k in ("blstm (argmax)", "hmm (viterbi)", "dnn (argmax)",
                                                               "held_out_bars")},
               "test_sample_accuracy": {"blstm (argmax)": sample["blstm (argmax)"]["accuracy"],
                                        "hmm (viterbi)": sample["hmm (viterbi)"]["accuracy"],
                                        "bars": sample["held_out_bars"], "chorales": 40,
                                        "sample": "tests/music_lab/data/heldout_bars.npz (40 held-out chorales)"}}
    if calibration is not None:
        metrics["reliability"] = {m: {"temperature": c["temperature"],
                                      "validation": {"ece_before": c["ece_before"], "ece_after": c["ece_after"],
                                                     "bars": c["n"]},
                                      "held_out": c["held_out"]}
                                  for m, c in (("blstm", calibration), ("dnn", calibration["dnn"]))}
    update_card(WEIGHTS, calibration=calibration, metrics=metrics)
    return metrics


def generator(args) -> dict:
    from engines.core.card_json import update_card
    from engines.music_lab.dataset import load_chorales, split
    from engines.music_lab.generator import (WEIGHTS, MelodyGeneratorEngine, evaluate_generator, heldout_windows,
                                             held_out_sample)

    engine = MelodyGeneratorEngine()
    engine.load("cpu")
    test = heldout_windows(split(load_chorales(args.cache))["test"])
    full = evaluate_generator(engine, test, max_windows=args.windows)
    sample = held_out_sample(engine, load_chorales(FIXTURE))
    metrics = {"held_out_through_engine": full, "test_sample_strong_beat_chord_tones": sample}
    update_card(WEIGHTS, metrics=metrics)
    return metrics


def main(argv=None) -> int:
    from engines.music_lab.dataset import DEFAULT_CACHE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["harmonizer", "generator"])
    ap.add_argument("--cache", type=Path, default=ROOT / DEFAULT_CACHE)
    ap.add_argument("--calibrate", action="store_true", help="harmonizer: fit the temperatures on the validation split")
    ap.add_argument("--windows", type=int, default=200, help="generator: held-out windows evaluated")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    metrics = harmonizer(args) if args.what == "harmonizer" else generator(args)
    print(json.dumps(metrics, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
