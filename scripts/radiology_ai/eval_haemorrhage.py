"""Held-out evaluation of the head-CT haemorrhage detector beside the 50-90 HU threshold baseline.

    OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 flock /tmp/csi-training.lock timeout 900 \
        .venv/bin/python scripts/radiology_ai/eval_haemorrhage.py [--calibrate] [--update-card] [--test-cases N]

Runs both engines through their own ``predict`` (contract checks, resampling, network, grouping into
findings, masks on the input grid) on the held-out simulated cases of train_haemorrhage.py's 'test' set
(other anatomy seeds, kernels cosine/edge/hann, 1.2e5-3e6 photons per ray, 2.5 or 5 mm slices). A finding hits
a true finding when their masks overlap on the input grid. FROC: sensitivity (true findings hit / all) at
0.5, 1, 2 and 4 false-positive findings per scan; case-level AUC per type (case score = the highest score of
that type; the baseline has no types, so its case score is its highest score). Prints the Markdown table and
writes out/haemorrhage/eval.json. The training script calls the same functions for the model card.
``--extra-sets`` (default test_focus): added held-out cases, reported in a second table together with the
test set (the test set's own table stays comparable). ``--weights-dir DIR``: a training run's output instead of
the shipped weights. Fracture scores get their own temperature and bias (``calibration.fracture``).

``--calibrate``: on the validation cases, the finding-score temperature and its reliability (ECE before and
after; a finding is correct when it hits a true finding) with engines.core.calibration.calibrate, and the
percentiles of the engine's per-scan energy score (voxel logits inside the head) as the out-of-distribution
reference, written into the card's ``calibration`` with ``--update-card``. The simulated cases are made on
first use (train_haemorrhage.make_data: data only, no training).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
FP_RATES = (0.5, 1.0, 2.0, 4.0)


def case_volume(case: dict):
    """A stored simulated case as a reader Volume (HU, LPS geometry, CT)."""
    from engines.radiology.geometry import Geometry
    from engines.radiology.reader import Volume

    geometry = Geometry(tuple(float(v) for v in case["spacing"]), tuple(float(v) for v in case["origin"]), np.eye(3))
    return Volume(np.asarray(case["hu"], np.float32), geometry, modality="CT", meta={"series_description": "sim"})


def detector_engine(model, temperature: float, calibration: dict | None = None):
    """The detector engine running ``model`` (a training script's network, or the shipped one) with finding
    temperature ``temperature``: its own prepare/infer/finish."""
    from engines.radiology_ai.common import attach_network
    from engines.radiology_ai.haemorrhage import HaemorrhageDetectorEngine

    card = SimpleNamespace(arch_args={"temperature": float(temperature)},
                           calibration=dict(calibration or {}, temperature=float(temperature)))
    return attach_network(HaemorrhageDetectorEngine(), model, card, "cpu")


def run_cases(engine, cases: list[dict]) -> list[dict]:
    """Per case: its findings as (score, type, hit lesion number or 0), lesion count and types, seconds."""
    from engines.radiology_ai.head_ct_sim import TYPES

    out = []
    for case in cases:
        t0 = time.process_time()
        result = engine.predict({"volume": case_volume(case), "threshold": 0.0})
        cpu = time.process_time() - t0
        inst = case["instances"]
        rows = []
        for f in result["findings"]:
            m = f.mask.full(inst.shape)
            hit = np.unique(inst[m & (inst > 0)])
            rows.append({"score": f.score, "type": f.type, "hits": [int(h) for h in hit]})
        out.append({"findings": rows, "lesions": len(case["meta"]["findings"]),
                    "lesion_types": [TYPES[int(x["type"])] for x in case["meta"]["findings"]],
                    "kernel": case["meta"]["kernel"], "cpu_s": cpu})
    return out


def froc(per_case: list[dict], rates=FP_RATES) -> dict[str, float]:
    """Sensitivity at each false-positive rate (per scan): the best sensitivity whose FP rate is <= the rate."""
    n_scans = len(per_case)
    total = sum(c["lesions"] for c in per_case)
    scores = sorted({r["score"] for c in per_case for r in c["findings"]}, reverse=True)
    curve = [(0.0, 0.0)]
    for t in scores:
        fp, hit = 0, 0
        for c in per_case:
            found = set()
            for r in c["findings"]:
                if r["score"] >= t:
                    if r["hits"]:
                        found.update(r["hits"])
                    else:
                        fp += 1
            hit += len(found)
        curve.append((fp / max(n_scans, 1), hit / max(total, 1)))
    return {f"{r:g}": round(max(s for f, s in curve if f <= r), 3) for r in rates}


def case_auc(per_case: list[dict], type_name: str | None, typed: bool = True) -> float | None:
    """Case-level AUC for a type (None: any haemorrhage), Mann-Whitney U / (n1 n0)."""
    from scipy.stats import mannwhitneyu

    from engines.radiology_ai.haemorrhage import CLASSES

    haem = set(CLASSES[1:6])
    labels, scores = [], []
    for c in per_case:
        if type_name is None:
            labels.append(any(t in haem for t in c["lesion_types"]))
            pool = [r["score"] for r in c["findings"] if (r["type"] in haem or not typed)]
        else:
            labels.append(type_name in c["lesion_types"])
            pool = [r["score"] for r in c["findings"] if (r["type"] == type_name or not typed)]
        scores.append(max(pool, default=0.0))
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    u = mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return round(float(u) / (len(pos) * len(neg)), 3)


FRACTURE = "skull fracture"


def fit_scaling(raw, y, with_bias: bool = False) -> tuple[float, float]:
    """(T, bias) minimising the negative log-likelihood of ``y`` (0/1) under sigmoid(logit(raw) / T + bias);
    (1, 0) when there are too few candidates or only one outcome."""
    from scipy.optimize import minimize

    raw, y = np.asarray(raw, float), np.asarray(y, float)
    if len(raw) < 4 or y.min() == y.max():
        return 1.0, 0.0
    logit = np.log(np.clip(raw, 1e-6, 1 - 1e-6) / np.clip(1 - raw, 1e-6, 1))

    def nll(v):
        log_t = np.clip(v[0], np.log(0.05), np.log(20.0))
        p = np.clip(1 / (1 + np.exp(-(logit / np.exp(log_t) + (v[1] if with_bias else 0.0)))), 1e-6, 1 - 1e-6)
        return -float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    res = minimize(nll, np.zeros(2), method="Nelder-Mead")
    return float(np.exp(np.clip(res.x[0], np.log(0.05), np.log(20.0)))), float(res.x[1] if with_bias else 0.0)


def calibrate(model, val_cases: list[dict]) -> tuple[float, dict]:
    """On the validation set: the temperature T of the haemorrhage finding scores (sigmoid(logit(raw) / T),
    fitted to 'this candidate hits a true finding') and the fracture scores' own T and bias (fracture
    candidates are many and rarely right: one shared scaling would rank them among the haemorrhages)."""
    per = run_cases(detector_engine(model, 1.0, {"fracture": {"temperature": 1.0, "bias": 0.0}}), val_cases)
    rows = [r for c in per for r in c["findings"]]
    haem = [r for r in rows if r["type"] != FRACTURE]
    frac = [r for r in rows if r["type"] == FRACTURE]
    t, _ = fit_scaling([r["score"] for r in haem], [bool(r["hits"]) for r in haem])
    tf, bf = fit_scaling([r["score"] for r in frac], [bool(r["hits"]) for r in frac], with_bias=True)
    return t, {"temperature": round(tf, 4), "bias": round(bf, 4), "candidates": len(frac),
               "hits": sum(bool(r["hits"]) for r in frac)}


def evaluate_sets(model, temperature: float, test_cases: list[dict], extra_cases: list[dict] | None = None,
                  fracture: dict | None = None) -> dict:
    """Both engines on ``test_cases``: ``table`` and ``detail``; with ``extra_cases`` (added held-out cases)
    also ``table_with_extra`` and ``detail_with_extra`` over the test cases and the added ones together (each
    case is run once)."""
    from engines.radiology_ai.haemorrhage import HaemorrhageThresholdEngine

    engines = {"network": detector_engine(model, temperature, {"fracture": fracture} if fracture else None),
               "threshold 50-90 HU": HaemorrhageThresholdEngine()}
    runs = {name: run_cases(e, test_cases) for name, e in engines.items()}
    out = {"table": _table(runs), "detail": _detail(runs["network"], test_cases), "temperature": temperature}
    if extra_cases:
        both = {name: per + run_cases(engines[name], extra_cases) for name, per in runs.items()}
        out["table_with_extra"] = _table(both)
        out["detail_with_extra"] = _detail(both["network"], list(test_cases) + list(extra_cases))
    return out


def _table(runs: dict[str, list[dict]]) -> dict:
    from engines.radiology_ai.haemorrhage import CLASSES

    table = {}
    for name, per in runs.items():
        typed = name == "network"
        table[name] = {"froc_sensitivity_at_fp_per_scan": froc(per),
                       "auc_any_haemorrhage": case_auc(per, None, typed),
                       "auc_per_type": {t: case_auc(per, t, typed) for t in CLASSES[1:]},
                       "cpu_s_per_study": round(float(np.mean([c["cpu_s"] for c in per])), 2)}
    return table


def _detail(per: list[dict], cases: list[dict]) -> dict:
    from engines.radiology_ai.haemorrhage import CLASSES

    return {"scans": len(cases), "true_findings": sum(c["lesions"] for c in per),
            "scans_without_findings": sum(1 for c in per if c["lesions"] == 0),
            "per_type_true_findings": {t: sum(c["lesion_types"].count(t) for c in per) for t in CLASSES[1:]},
            "kernels": sorted({c["kernel"] for c in per})}


def markdown(metrics: dict, key: str = "table") -> str:
    from engines.radiology_ai.haemorrhage import CLASSES

    rates = list(next(iter(metrics[key].values()))["froc_sensitivity_at_fp_per_scan"])
    head = ["method"] + [f"sens @ {r} FP/scan" for r in rates] + ["AUC any haemorrhage"] + \
        [f"AUC {t.split()[0]}" if "fracture" not in t else "AUC fracture" for t in CLASSES[1:]] + ["CPU s/study"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for name, row in metrics[key].items():
        cells = [name] + [fmt(row["froc_sensitivity_at_fp_per_scan"][r]) for r in rates] + \
            [fmt(row["auc_any_haemorrhage"])] + [fmt(row["auc_per_type"][t]) for t in CLASSES[1:]] + \
            [f"{row['cpu_s_per_study']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def calibration_record(model, val_cases: list[dict]) -> dict:
    """The card's ``calibration``: finding-score temperature, reliability and the energy OOD reference, from
    the engine's own predict on the validation cases (raw scores: temperature 1)."""
    from engines.core.calibration import calibrate

    engine = detector_engine(model, 1.0, {"fracture": {"temperature": 1.0, "bias": 0.0}})
    raw, hits, energies, frac_raw, frac_hits = [], [], [], [], []
    for case in val_cases:
        result = engine.predict({"volume": case_volume(case), "threshold": 0.0})
        energies.append(result.scores["ood"]["score"])
        inst = case["instances"]
        for f in result.findings:
            m = f.mask.full(inst.shape)
            hit = bool((inst[m] > 0).any())
            (frac_raw if f.type == FRACTURE else raw).append(f.score)
            (frac_hits if f.type == FRACTURE else hits).append(hit)
    r = np.clip(np.asarray(raw, float), 1e-6, 1 - 1e-6)
    logits = np.stack([np.zeros_like(r), np.log(r / (1 - r))], 1)  # sigmoid(z / T) == softmax([0, z] / T)[1]
    cal = calibrate(logits, np.asarray(hits, int), ood_scores=np.asarray(energies))
    cal["ood"].update(unit="mean energy of the voxel logits inside the head (T = 1), per scan",
                      n_volumes=len(energies))
    tf, bf = fit_scaling(frac_raw, frac_hits, with_bias=True)
    cal["fracture"] = {"temperature": round(tf, 4), "bias": round(bf, 4), "candidates": len(frac_raw),
                       "hits": int(sum(frac_hits))}
    cal["scope"] = ("haemorrhage finding scores: sigmoid(logit(raw) / T); fracture finding scores: "
                    "sigmoid(logit(raw) / fracture.temperature + fracture.bias); a finding counts as correct when "
                    "its mask overlaps a true finding")
    cal["split"] = (f"validation cases ({len(val_cases)} scans, {len(raw)} haemorrhage and {len(frac_raw)} "
                    f"fracture candidate findings)")
    return cal


def main(argv=None) -> int:
    import argparse

    from engines.radiology_ai import haemorrhage as H
    from engines.core.card_json import update_card
    from scripts.radiology_ai.train_haemorrhage import OUT, SETS, load_set, make_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--update-card", action="store_true")
    ap.add_argument("--test-cases", type=int, default=SETS["test"][1])
    ap.add_argument("--val-cases", type=int, default=SETS["val"][1])
    ap.add_argument("--extra-sets", default="test_focus",
                    help="added held-out sets, reported in a second table together with the test set ('' : none)")
    ap.add_argument("--weights-dir", type=Path, default=None,
                    help="evaluate (and with --update-card, update) the weights in this folder instead of the "
                         "shipped ones (a training run's --out)")
    args = ap.parse_args(argv)
    engine = H.HaemorrhageDetectorEngine()
    if args.weights_dir is not None:
        from engines.core.weights import WeightsStore, load_state_checked

        tensors, card = WeightsStore([args.weights_dir]).load(H.WEIGHTS_NAME, "cpu", H.ARCH)
        model = engine.build_network(card)
        load_state_checked(model, tensors)
        model.eval()
        engine = detector_engine(model, float((card.calibration or {}).get(
            "temperature", card.arch_args.get("temperature", 1.0))), card.calibration)
    else:
        engine.load("cpu")
        model = engine.network
    card_dir = args.weights_dir
    report: dict = {}
    if args.calibrate:
        make_data(["val"])
        cal = calibration_record(model, load_set("val")[:args.val_cases])
        report["calibration"] = {k: v for k, v in cal.items() if not k.startswith("bins")}
        print(json.dumps(report["calibration"]), flush=True)
        if args.update_card:
            update_card(H.WEIGHTS_NAME, calibration=cal, directory=card_dir)
        temperature, fracture = cal["temperature"], cal["fracture"]
    else:
        temperature = engine.temperature
        t_frac, b_frac = engine.fracture_calibration
        fracture = {"temperature": t_frac, "bias": b_frac}
    extra = [n for n in args.extra_sets.split(",") if n]
    make_data(["test"] + extra)
    metrics = evaluate_sets(model, temperature, load_set("test")[:args.test_cases],
                            [c for n in extra for c in load_set(n)], fracture)
    print(markdown(metrics))
    print(json.dumps(metrics["detail"], indent=1))
    if extra:
        print(f"\nwith the added held-out set(s) {', '.join(extra)}:")
        print(markdown(metrics, "table_with_extra"))
        print(json.dumps(metrics["detail_with_extra"], indent=1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "eval.json").write_text(json.dumps(metrics, indent=1))
    sample = round(float(H.sample_hit_score(detector_engine(model, temperature, {"fracture": fracture}))), 4)
    print(f"test sample: hit score {sample}")
    if args.update_card:  # the card's table is then the one this evaluation measured (card JSON only)
        update_card(H.WEIGHTS_NAME, directory=card_dir, metrics={
            "test_sample_hit_score": sample,
            "test_sample": "head_ct_sim.sample_case (held-out anatomy, one intraparenchymal haemorrhage): the "
                           "highest score of a finding overlapping it, through the engine",
            "held_out": metrics["table"], "detail": metrics["detail"], "temperature": round(temperature, 4),
            **({f"held_out_with_{'_'.join(extra)}": metrics["table_with_extra"],
                f"detail_with_{'_'.join(extra)}": metrics["detail_with_extra"]} if extra else {}),
            "evaluation": "through the engines' predict (scripts/radiology_ai/eval_haemorrhage.py)",
            "evaluation_command": "OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 flock /tmp/csi-training.lock timeout "
                                  "900 .venv/bin/python scripts/radiology_ai/eval_haemorrhage.py --calibrate "
                                  "--update-card"})
        print("model card updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
