"""Compare the C4d CNN with the plain colour-deconvolution threshold on the held-out tile, through the
engines' own code path (analyser -> watershed-split structures), as stained and under stain jitter.

    .venv/bin/python scripts/pathology/eval_c4d.py [--jitters 24] [--update-card]

Truth: the deconvolution proposal on the held-out quadrant *as stained* (the same AI-assisted labels the
CNN was trained on, never seen in training), split into structures the way the engines split them. On the
original staining the threshold reproduces its own labels by construction; the comparison that matters is
under stain jitter (another lab's staining of the same tissue). --update-card writes the figures into the
model card (the weights are re-saved unchanged, so their SHA-256 stays the same).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def structures(prob: np.ndarray, margin: int = 0):
    from engines.pathology.tiles import Tile, _components

    h, w = prob.shape
    return _components(prob, 0.5, 30, margin, max(h, w), w, h, Tile(0, 0, w, h, 0, 0), 1.0, 1.0)


def match(pred, pred_mask, truth, truth_mask, tol_px: int = 3) -> dict:
    from engines.pathology.stain import enlarge_mask

    tgrow = enlarge_mask(truth_mask, tol_px)
    pgrow = enlarge_mask(pred_mask, tol_px)

    def hits(dets, grow):
        if len(dets) == 0:
            return 0
        ij = np.clip(np.round(dets.xy - 0.5).astype(int), 0, np.array(grow.shape[::-1]) - 1)
        return int(grow[ij[:, 1], ij[:, 0]].sum())

    tp = hits(pred, tgrow)
    found = hits(truth, pgrow)
    prec = tp / len(pred) if len(pred) else 0.0
    rec = found / len(truth) if len(truth) else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    inter = (pred_mask & truth_mask).sum()
    dice = 2 * inter / (pred_mask.sum() + truth_mask.sum()) if pred_mask.sum() + truth_mask.sum() else 1.0
    return {"precision": prec, "recall": rec, "f1": f1, "dice": float(dice), "n_pred": len(pred)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jitters", type=int, default=24)
    ap.add_argument("--strength", type=float, default=0.3)
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()

    import torch
    from skimage import data

    from engines.core.weights import WeightsStore
    from engines.pathology.c4d import WEIGHTS_NAME, _CnnAnalyzer, _DeconvolutionAnalyzer
    from engines.pathology.c4d_model import TinyUNet
    from engines.pathology.stain import propose_dab_mask, stain_jitter

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_c4d import HOLD, resize

    torch.set_num_threads(1)
    tensors, card = WeightsStore.default().load(WEIGHTS_NAME)
    model = TinyUNet(**card.arch_args)
    model.load_state_dict(tensors)
    model.eval()
    img = data.immunohistochemistry()
    hold = resize(img[HOLD], (128, 128))
    truth_mask = propose_dab_mask(hold, 1.0)
    truth = structures(truth_mask.astype(np.float32))
    cnn, thr = _CnnAnalyzer(model, "cpu"), _DeconvolutionAnalyzer()
    rng = np.random.default_rng(2024)
    variants = [hold] + [stain_jitter(hold, rng, args.strength) for _ in range(args.jitters)]
    rows = {"cnn": [], "threshold": []}
    for v in variants:
        for name, an in (("cnn", cnn), ("threshold", thr)):
            prob = an.analyze(v[None].copy(), 1.0)[0]
            dets = structures(prob)
            from engines.pathology.stain import remove_small

            rows[name].append(match(dets, remove_small(prob > 0.5, 30), truth, truth_mask))
    out = {"held_out": f"bottom-right 256x256 quadrant of skimage IHC at 1 µm/px (128x128), {len(truth)} true "
                       f"structures (deconvolution labels as stained, watershed-split like the engines)",
           "stain_jitter": f"{args.jitters} draws, strength {args.strength} (HED optical density x0.7-1.3)"}
    for name, r in rows.items():
        jit = r[1:]
        out[name] = {"as_stained": {k: round(float(v), 4) for k, v in r[0].items()},
                     "jitter_mean": {k: round(float(np.mean([m[k] for m in jit])), 4) for k in jit[0]},
                     "jitter_worst_f1": round(float(min(m["f1"] for m in jit)), 4),
                     "jitter_worst_dice": round(float(min(m["dice"] for m in jit)), 4)}
    print(json.dumps(out, indent=1))
    if args.update_card:
        weights, card_path = WeightsStore.default().paths(WEIGHTS_NAME)
        card.metrics["engine_eval"] = out
        card.metrics["engine_eval_command"] = (".venv/bin/python scripts/pathology/eval_c4d.py "
                                               f"--jitters {args.jitters} --strength {args.strength} --update-card")
        WeightsStore.save(weights.parent, WEIGHTS_NAME, tensors, card)
        print(f"updated {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
