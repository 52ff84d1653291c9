"""Evaluate (and calibrate) the VQA ensemble and the G2P model through their engines' own path.

    flock /tmp/csi-training.lock timeout 900 env OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 \
        .venv/bin/python scripts/textvqa/eval_textvqa.py --model vqa --calibrate --update-card

Every figure comes from ``engine.predict`` (engines/textvqa/evaluation.py): the VQA test split's first
``--test-scenes`` scenes (10 questions each) and the G2P test split's first ``--test-words`` words, as in the
cards' training figures; ``--calibrate`` fits the temperature and the energy percentiles on the validation
split (VQA: ``--val-scenes`` scenes; G2P: ``--dev-words`` dev words). ``--update-card`` writes the figures into
the cards' JSON (the weights and their SHA-256 do not change). The small samples the tests reproduce are
recorded as ``test_sample_*``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

VQA_SAMPLE_SCENES = 20
G2P_SAMPLE_WORDS = 200


def calibrated(engine, fit, n: int, enabled: bool) -> tuple[dict, dict]:
    """Fit the calibration (when asked) through the engine and use it for the figures that follow."""
    if not enabled:
        return {}, {}
    cal = fit(engine, n)
    engine.card.calibration = cal
    return {"reliability_ece_before": cal["ece_before"], "reliability_ece_after": cal["ece_after"]}, cal


def vqa(args) -> dict:
    from engines.textvqa import evaluation as E
    from engines.textvqa.vqa_engine import VqaMclKdEngine

    engine = VqaMclKdEngine()
    engine.load("cpu")
    metrics, cal = calibrated(engine, E.calibrate_vqa, args.val_scenes, args.calibrate)
    t = time.perf_counter()
    run = E.run_vqa(engine, "test", args.test_scenes)
    seconds = time.perf_counter() - t
    metrics.update({f"engine_{k}": v for k, v in E.vqa_metrics(run).items()})
    metrics["engine_seconds_per_question"] = round(seconds / max(1, len(run["truth"])), 4)
    metrics["test_sample_top1"] = E.vqa_metrics(E.run_vqa(engine, "test", VQA_SAMPLE_SCENES))["test_top1"]
    metrics["test_sample"] = f"first {VQA_SAMPLE_SCENES} test scenes, 10 questions each, through engine.predict"
    return {"name": engine.weights_name, "metrics": metrics, "calibration": cal}


def g2p(args) -> dict:
    from engines.textvqa import evaluation as E
    from engines.textvqa import g2p_data as G
    from engines.textvqa.g2p_engine import G2pNsgdEngine

    engine = G2pNsgdEngine()
    engine.load("cpu")
    metrics, cal = calibrated(engine, E.calibrate_g2p, args.dev_words, args.calibrate)
    test = G.split_words()["test"]
    for order in ("nsgd", "l2r"):
        res = E.g2p_metrics(engine, test[:args.test_words], order)
        metrics[f"engine_{order}_per"], metrics[f"engine_{order}_wer"] = res["per"], res["wer"]
    metrics["engine_test_words"] = args.test_words
    sample = E.g2p_metrics(engine, test[:G2P_SAMPLE_WORDS], "nsgd")
    metrics.update(test_sample_nsgd_per=sample["per"], test_sample_nsgd_wer=sample["wer"],
                   test_sample=f"first {G2P_SAMPLE_WORDS} test words, NSGD, through engine.predict")
    return {"name": engine.weights_name, "metrics": metrics, "calibration": cal}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=("vqa", "g2p", "both"), default="both")
    ap.add_argument("--test-scenes", type=int, default=400)
    ap.add_argument("--val-scenes", type=int, default=200)
    ap.add_argument("--test-words", type=int, default=2000)
    ap.add_argument("--dev-words", type=int, default=1000)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()

    from engines.core.threads import apply_thread_policy
    from engines.core.card_json import update_card

    apply_thread_policy()
    command = ".venv/bin/python scripts/textvqa/eval_textvqa.py " + " ".join(sys.argv[1:])
    for kind in (("vqa", "g2p") if args.model == "both" else (args.model,)):
        out = (vqa if kind == "vqa" else g2p)(args)
        out["metrics"]["engine_eval_command"] = command
        if out["calibration"]:
            out["calibration"]["command"] = command
        print(json.dumps({"model": out["name"], "metrics": out["metrics"],
                          "calibration": {k: v for k, v in out["calibration"].items() if not k.startswith("bins")}},
                         indent=1), flush=True)
        if args.update_card:
            sections = {"metrics": out["metrics"]}
            if out["calibration"]:
                sections["calibration"] = out["calibration"]
            print(f"updated {update_card(out['name'], **sections)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
