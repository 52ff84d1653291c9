"""Re-measure and calibrate the shipped DWI lesion U-Nets through the engine's own prepare/infer/finish.

    OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 flock /tmp/csi-training.lock timeout 900 \
        .venv/bin/python scripts/radiology_ai/eval_lesion_unet.py --calibrate --update-card

Per model (lesion-unet-se, lesion-unet-plain): with ``--calibrate`` first the temperature, the reliability
(ECE before/after) and the energy-score percentiles on the validation subjects (seeds 2000-2039), written into
the card's ``calibration``; then the held-out test subjects (seeds 1000-1009) and the one-subject test sample
(seed 1003, what tests/radiology_ai/test_lesion_segmentation.py reproduces), written into the card's metrics
with ``--update-card``. Only the card JSON changes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODELS = {"lesion-unet-se": "LesionSegmentationSEEngine", "lesion-unet-plain": "LesionSegmentationPlainEngine"}
COMMAND = ("OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 flock /tmp/csi-training.lock timeout 900 .venv/bin/python "
           "scripts/radiology_ai/eval_lesion_unet.py --calibrate --update-card")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--calibrate", action="store_true", help="fit the temperature and the OOD reference first")
    ap.add_argument("--update-card", action="store_true", help="write the figures into the shipped cards")
    ap.add_argument("--test-subjects", type=int, default=10)
    ap.add_argument("--validation-subjects", type=int, default=40)
    args = ap.parse_args(argv)

    from engines.radiology_ai import lesion_engine, lesion_eval
    from engines.core.card_json import update_card

    report = {}
    for name in args.models:
        engine = getattr(lesion_engine, MODELS[name])()
        engine.load("cpu")
        t0 = time.perf_counter()
        if args.calibrate:
            engine.card.calibration = {}  # fit from the raw logits (temperature 1)
            cal = lesion_eval.calibration(engine, lesion_eval.VALIDATION_SEEDS[:args.validation_subjects])
            engine.card.calibration = cal
            print(f"{name}: temperature {cal['temperature']}, ECE {cal['ece_before']} -> {cal['ece_after']}, "
                  f"energy p99 {cal['ood']['p99']}", flush=True)
            if args.update_card:
                update_card(name, calibration=cal)
        held_out = lesion_eval.evaluate(engine, lesion_eval.TEST_SEEDS[:args.test_subjects])
        sample = lesion_eval.evaluate(engine, [lesion_eval.TEST_SAMPLE_SEED])
        metrics = {"held_out": held_out,
                   "test_sample_dice": round(float(sample["per_volume"][0]["dice"]), 4),
                   "test_sample": f"held-out subject {lesion_eval.TEST_SAMPLE_SEED} through the engine",
                   "evaluation": "through the engine's prepare/infer/finish (engines.radiology_ai.lesion_eval)",
                   "evaluation_command": COMMAND}
        if engine.card.calibration:
            metrics["reliability"] = {k: engine.card.calibration[k] for k in ("ece_before", "ece_after",
                                                                               "temperature", "n")}
        report[name] = {k: v for k, v in held_out.items() if k != "per_volume"} | {
            "test_sample_dice": metrics["test_sample_dice"], "seconds": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps(report[name]), flush=True)
        if args.update_card:
            update_card(name, metrics=metrics)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
