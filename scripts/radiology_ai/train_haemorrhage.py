"""Train the head-CT haemorrhage/fracture detector (seed 5.6) on simulated head CTs; ship it with its card.

    flock /tmp/csi-training.lock .venv/bin/python scripts/radiology_ai/train_haemorrhage.py data
    flock /tmp/csi-training.lock .venv/bin/python scripts/radiology_ai/train_haemorrhage.py train --max-minutes 12

``data`` simulates the case sets once into out/haemorrhage/data (resumable: finished cases are kept):
strong-label cases (voxel masks used), weak-label cases (only the case's finding types used), a validation set
(temperature scaling, early checks) and a held-out test set with other anatomy seeds, kernels and doses; a
'focus' strong-label set and an added held-out 'test_focus' set draw their findings from subdural, fracture and
epidural only (the thin and rare classes).
``train`` runs the seed's recipe under one wall-clock budget: strong-label pre-training on 32^3 patches with the
voxel masks, then weak-label fine-tuning by multiple-instance learning (each case is a bag of patches; the
highest-scoring patches per finding type are pushed up when the case has that type and down when it has not,
and a negative case's hard patches are pushed to background), then temperature scaling of the finding scores
on the validation set, then the held-out evaluation (scripts/radiology_ai/eval_haemorrhage.py's table, the
engine's own predict path) into the model card. The harness (engines.core.training.TrainingRun) seeds, sets
one torch thread and the CPU by default, logs steps/s and keeps a resumable safetensors checkpoint (model,
optimizer, phase and time spent: the budget covers every resumed run) under .training/head-ct-haemorrhage/.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "out/haemorrhage"
DATA = OUT / "data"

# name: (first seed, count, kernels, photon range, slice choices, negative share[, finding types drawn from])
SETS = {
    "strong": (0, 36, ("hann", "hamming", "shepp-logan", "ramp"), (2e5, 2e6), (2.5, 3.0, 4.0, 5.0), 0.1),
    # strong labels too: the thin and rare classes (subdural 2/5, fracture 2/5, epidural 1/5 of the findings)
    "focus": (40000, 30, ("hann", "hamming", "shepp-logan", "ramp"), (2e5, 2e6), (2.5, 3.0, 4.0, 5.0), 0.0,
              (3, 3, 6, 6, 2)),
    "weak": (10000, 48, ("hann", "hamming", "shepp-logan", "ramp"), (2e5, 2e6), (2.5, 3.0, 4.0, 5.0), 0.35),
    "val": (20000, 12, ("hann", "hamming", "shepp-logan", "ramp"), (2e5, 2e6), (2.5, 3.0, 5.0), 0.3),
    "test": (30000, 24, ("cosine", "edge", "hann"), (1.2e5, 3e6), (2.5, 5.0), 0.3),
    # added held-out cases (same conditions as 'test') with subdurals, fractures and epidurals only: reported
    # beside 'test', never mixed into its figures
    "test_focus": (31000, 12, ("cosine", "edge", "hann"), (1.2e5, 3e6), (2.5, 5.0), 0.0, (3, 6, 2)),
}


def case_path(name: str, seed: int) -> Path:
    return DATA / name / f"case{seed:05d}.npz"


def make_data(names) -> None:
    from engines.radiology_ai.head_ct_sim import simulate_head

    t0 = time.time()
    for name in names:
        first, count, kernels, photons, slices, neg = SETS[name][:6]
        types = SETS[name][6] if len(SETS[name]) > 6 else None
        (DATA / name).mkdir(parents=True, exist_ok=True)
        for seed in range(first, first + count):
            path = case_path(name, seed)
            if path.exists():
                continue
            c = simulate_head(seed, types=types, kernels=kernels, photon_range=photons, slice_choices=slices,
                              p_negative=neg)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, hu=c.hu.astype(np.float16), types=c.types, instances=c.instances,
                                brain=c.brain, spacing=np.asarray(c.spacing), origin=np.asarray(c.origin_lps),
                                meta=json.dumps({"kernel": c.kernel, "photons": c.photons, "seed": seed,
                                                 "findings": c.findings}))
            tmp.replace(path)
            print(f"{name} seed {seed}: {len(c.findings)} finding(s), {c.kernel}, {c.photons:.0f} photons, "
                  f"{c.spacing[2]:g} mm slices ({time.time() - t0:.0f} s)", flush=True)


def load_set(name: str) -> list[dict]:
    first, count = SETS[name][:2]
    cases = []
    for seed in range(first, first + count):
        p = case_path(name, seed)
        if p.exists():
            z = np.load(p)
            cases.append({k: z[k] for k in z.files if k != "meta"} | {"meta": json.loads(str(z["meta"]))})
    return cases


def to_training_case(case: dict) -> dict:
    """A stored case on the engine's working grid: features [2, k, j, i], types and instances (nearest)."""
    from engines.radiology_ai import haemorrhage as H

    spacing = tuple(float(v) for v in case["spacing"])
    hu = np.asarray(case["hu"], np.float32)
    work, _ = H.to_work_grid(hu, spacing)
    types = H.labels_to_work_grid(case["types"], work.shape)
    inst = H.labels_to_work_grid(case["instances"], work.shape)
    crop = H.head_crop(work)
    work, types, inst = work[crop], types[crop], inst[crop]
    return {"x": H.features(work), "types": types, "instances": inst,
            "case_types": sorted({int(f["type"]) for f in case["meta"]["findings"]}), "meta": case["meta"]}


def sample_patch(c: dict, rng, size: int, centre=None):
    x, y = c["x"], c["types"]
    shape = np.array(y.shape)
    if centre is None:
        centre = np.array([rng.integers(0, s) for s in shape])
    lo = np.clip(np.asarray(centre) - size // 2 + rng.integers(-size // 4, size // 4 + 1, 3), 0,
                 np.maximum(shape - size, 0))
    sl = tuple(slice(int(a), int(a) + size) for a in lo)
    px, py = x[(slice(None),) + sl], y[sl]
    pad = [(0, size - s) for s in py.shape]
    px = np.pad(px, [(0, 0)] + pad, constant_values=0.0)
    py = np.pad(py, pad)
    if rng.random() < 0.5:  # left-right mirror (i axis)
        px, py = px[..., ::-1], py[..., ::-1]
    return np.ascontiguousarray(px), np.ascontiguousarray(py)


def strong_batch(cases, rng, batch: int, size: int, rim_share: float = 0.0, focus: dict | None = None):
    """A batch of strong-label patches. ``focus`` maps a class to its guaranteed share of the batch (patches
    centred on a voxel of that class, from a case that has it: thin and rare classes such as fractures and
    subdural crescents are otherwise almost never the centre of a patch, their voxels being a tiny part of
    all finding voxels); the rest: 60% on a finding voxel, ``rim_share`` on the skull, the others anywhere in
    the head."""
    xs, ys = [], []
    slots: list[int | None] = []
    for cls, share in (focus or {}).items():
        slots += [cls] * int(round(share * batch))
    slots = (slots + [None] * batch)[:batch]
    for slot in slots:
        holders = [c for c in cases if len(c["cls_idx"].get(slot, ()))] if slot is not None else []
        if holders:
            c = holders[rng.integers(len(holders))]
            idx = c["cls_idx"][slot]
            centre = idx[rng.integers(len(idx))]
        else:
            c = cases[rng.integers(len(cases))]
            fg = c["fg_idx"]
            u = rng.random()
            if len(fg) and u < 0.6 - rim_share / 2:
                centre = fg[rng.integers(len(fg))]
            elif u < 0.6 + rim_share / 2 and len(c["rim_idx"]):  # hard negatives: the skull's inner table
                centre = c["rim_idx"][rng.integers(len(c["rim_idx"]))]
            else:
                centre = c["head_idx"][rng.integers(len(c["head_idx"]))]
        px, py = sample_patch(c, rng, size, centre)
        xs.append(px)
        ys.append(py)
    return np.stack(xs), np.stack(ys)


def strong_loss(logits, yt, class_w, dice_classes=range(1, 7)):
    """Weighted cross-entropy + soft Dice of all findings against background + the mean soft Dice of each
    finding class present in the batch (a class's Dice does not depend on how few voxels it has, so thin
    fractures and crescents weigh as much as large clots)."""
    import torch.nn.functional as F

    prob = logits.softmax(1)
    fg_p, fg_t = 1 - prob[:, 0], (yt > 0).float()
    dice = 1 - (2 * (fg_p * fg_t).sum() + 1) / (fg_p.sum() + fg_t.sum() + 1)
    per = []
    for t in dice_classes:
        tt = (yt == t).float()
        if tt.sum() > 0:
            pt = prob[:, t]
            per.append(1 - (2 * (pt * tt).sum() + 1) / (pt.sum() + tt.sum() + 1))
    cls_dice = sum(per) / len(per) if per else logits.new_zeros(())
    return F.cross_entropy(logits, yt, weight=class_w) + dice + cls_dice


def main(argv=None) -> int:
    from engines.core.training import add_common_arguments

    ap = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), minutes=12.0, seed=56)
    ap.set_defaults(threads=1, device="cpu")
    ap.add_argument("what", choices=["data", "train"])
    ap.add_argument("--minutes", dest="max_minutes", type=float, default=argparse.SUPPRESS,
                    help="same as --max-minutes")
    ap.add_argument("--fresh", dest="no_resume", action="store_true", default=argparse.SUPPRESS,
                    help="same as --no-resume: ignore an existing checkpoint")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--strong-share", type=float, default=0.6, help="share of the budget for strong labels")
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--width", type=int, default=12)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/radiology_ai")
    ap.add_argument("--rim-share", type=float, default=0.0,
                    help="share of strong patches centred on the skull (hard negatives); the shipped model used 0")
    ap.add_argument("--fracture-share", type=float, default=0.25,
                    help="share of every strong batch centred on a fracture voxel")
    ap.add_argument("--subdural-share", type=float, default=0.25,
                    help="share of every strong batch centred on a subdural voxel")
    ap.add_argument("--class-weights", default="0.3,1,1,2,1.5,1,4",
                    help="cross-entropy weight of each class (background, IPH, EDH, SDH, SAH, IVH, fracture)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (a .safetensors of this architecture) instead of from scratch")
    args = ap.parse_args(argv)
    args.minutes = args.max_minutes  # the card's training command names the budget
    if args.what == "data":
        make_data(args.sets.split(","))
        return 0
    return train(args)


def train(args) -> int:
    import torch

    from engines.core.training import TrainingRun
    from engines.radiology_ai import haemorrhage as H

    log = logging.getLogger("csi.training").info
    run = TrainingRun.from_args(H.WEIGHTS_NAME, args)
    dev = run.device
    rng = np.random.default_rng(args.seed)
    t_load = time.time()
    strong = [to_training_case(c) for c in load_set("strong") + load_set("focus")]
    weak = [to_training_case(c) for c in load_set("weak")]
    for c in strong + weak:
        c["fg_idx"] = np.argwhere(c["types"] > 0)
        c["cls_idx"] = {t: np.argwhere(c["types"] == t) for t in (3, 6)}
        c["head_idx"] = np.argwhere(c["x"][0] > -0.9)[::7]
        c["rim_idx"] = np.argwhere(c["x"][1] > 0.3)[::11]
    log(f"loaded {len(strong)} strong ({sum(len(c['cls_idx'][6]) > 0 for c in strong)} with a fracture, "
        f"{sum(len(c['cls_idx'][3]) > 0 for c in strong)} with a subdural), {len(weak)} weak cases in "
        f"{time.time() - t_load:.0f} s")
    model = H.make_net(width=args.width).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    OUT.mkdir(parents=True, exist_ok=True)
    step = run.resume(model, opt)
    if not step and args.init is not None:
        from engines.core.weights import load_state_checked
        from safetensors.torch import load_file

        load_state_checked(model, load_file(str(args.init)), str(args.init))
        log(f"started from {args.init}")
    phase = str(run.resumed_extra.get("phase", "strong")) if step else "strong"
    spent = float(run.resumed_extra.get("elapsed", 0.0)) if step else 0.0  # training seconds of earlier runs
    budget = run.budget_s
    class_w = torch.tensor([float(v) for v in args.class_weights.split(",")], device=dev)
    focus = {6: args.fracture_share, 3: args.subdural_share}
    t0 = time.time() - spent  # the loop's clock starts after loading, and goes on from a resumed run's time
    losses: list[float] = []

    def extra() -> dict:
        return {"phase": phase, "elapsed": time.time() - t0}

    model.train()
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.5 * (1 + np.cos(np.pi * frac)) * 0.95 + 0.05)
        if frac >= args.strong_share and phase == "strong":
            phase = "weak"
            log(f"step {step}: strong-label pre-training done; weak-label MIL fine-tuning")
        if phase == "strong" or rng.random() < 0.25:  # keep some strong batches against drift
            x, y = strong_batch(strong, rng, args.batch, args.patch, args.rim_share, focus)
            xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).long().to(dev)
            loss = strong_loss(model(xt), yt, class_w)
        else:
            loss = mil_loss(model, weak, rng, args.patch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses = (losses + [float(loss.item())])[-20:]
        run.log_step(step, loss=float(np.mean(losses)))
        run.checkpoint_maybe(step, model, opt, extra=extra())
    run.checkpoint(step, model, opt, extra=extra())
    train_s = time.time() - t0
    model = model.cpu().eval()
    log(f"trained {step} steps in {train_s:.0f} s; calibrating")
    from scripts.radiology_ai.eval_haemorrhage import calibrate, evaluate_sets

    temperature, fracture = calibrate(model, load_set("val"))
    log(f"temperature {temperature:.3f}; fracture scores {fracture}")
    metrics = evaluate_sets(model, temperature, load_set("test"), load_set("test_focus"), fracture)
    log(json.dumps(metrics["table"], indent=1))
    log("with test_focus: " + json.dumps(metrics["table_with_extra"], indent=1))
    card = H.model_card(args, temperature=temperature, metrics=metrics, steps=step, train_s=train_s, sets=SETS,
                        fracture=fracture)
    from engines.core.weights import WeightsStore

    WeightsStore.save(args.out, H.WEIGHTS_NAME, model.state_dict(), card)
    (OUT / "eval.json").write_text(json.dumps(metrics, indent=1, default=str))
    log(f"saved {H.WEIGHTS_NAME}")
    run.done(step)
    return 0


def mil_loss(model, weak, rng, size: int, candidates: int = 8, top: int = 2):
    """Multiple-instance loss of one weakly labelled case: a bag of ``candidates`` patches from the head; per
    finding type the bag's score is the maximum voxel probability over its patches. Without grad the patches
    are ranked, the ``top`` most suspicious are run with grad; present types: -log(max p), absent types:
    -log(1 - max p); a case without findings also pushes every voxel of its hard patches to background."""
    import torch
    import torch.nn.functional as F

    c = weak[rng.integers(len(weak))]
    patches = np.stack([sample_patch(c, rng, size, c["head_idx"][rng.integers(len(c["head_idx"]))])[0]
                        for _ in range(candidates)])
    dev = next(model.parameters()).device
    with torch.no_grad():
        p = model(torch.from_numpy(patches).to(dev)).softmax(1)
        susp = (1 - p[:, 0]).flatten(1).max(1).values
    order = torch.argsort(susp, descending=True)[:top].cpu().numpy()
    logits = model(torch.from_numpy(patches[order]).to(dev))
    prob = logits.softmax(1)
    present = set(c["case_types"])
    loss = logits.new_zeros(())
    for t in range(1, prob.shape[1]):
        s = prob[:, t].max().clamp(1e-5, 1 - 1e-5)
        loss = loss + (-torch.log(s) if t in present else -torch.log(1 - s))
    if not present:
        loss = loss + F.cross_entropy(logits, torch.zeros(logits.shape[:1] + logits.shape[2:], dtype=torch.long,
                                                          device=logits.device))
    return loss / 3.0


if __name__ == "__main__":
    raise SystemExit(main())
