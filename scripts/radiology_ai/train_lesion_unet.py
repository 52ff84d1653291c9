"""Train the 2-D lesion U-Net (seed 5.5) with or without SE blocks on simulated DWI; ship it with its card.

    .venv/bin/python scripts/radiology_ai/train_lesion_unet.py --se --max-minutes 15
    .venv/bin/python scripts/radiology_ai/train_lesion_unet.py --no-se --max-minutes 15

Subjects come from engines.radiology_ai.dwi_sim (MNI152 anatomy from the nilearn wheel): training seeds
0..train_subjects-1, held-out seeds 1000..1000+test_subjects-1 (other poses, lesions, bias, noise). Seed 55,
stops at --steps or --max-minutes (engines.core.training.TrainingRun: threads, seed, resumable checkpoints).
Both variants see the same batches in the same order. The held-out figures in the card come from the engine's
own prepare/infer/finish (engines.radiology_ai.lesion_eval: LPS->RAS flip, 2.4 mm zoom, pad to 8, calibrated
probabilities back on the input grid), with the trained network attached to the engine; calibrate the new
model afterwards with scripts/radiology_ai/eval_lesion_unet.py --calibrate --update-card.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def load_subjects(seeds, cache: Path):
    from engines.radiology_ai.dwi_sim import normalise, simulate_subject

    if cache.exists():
        z = np.load(cache)
        return z["x"], z["y"]
    xs, ys = [], []
    for n, s in enumerate(seeds):
        sub = simulate_subject(int(s))
        xs.append(normalise(sub.dwi))
        ys.append(sub.lesions)
        print(f"\rsimulated {n + 1}/{len(seeds)} subjects", end="", flush=True)
    print()
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=np.stack(xs).astype(np.float32), y=np.stack(ys))
    return np.stack(xs).astype(np.float32), np.stack(ys)


def main(argv=None) -> int:
    from engines.core.training import TrainingRun, command_line, parser

    ap = parser(__doc__.splitlines()[0], minutes=15.0, seed=55)
    ap.add_argument("--se", dest="se", action="store_true", default=True)
    ap.add_argument("--no-se", dest="se", action="store_false")
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/radiology_ai")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--base", type=int, default=12)
    ap.add_argument("--train-subjects", type=int, default=40)
    ap.add_argument("--test-subjects", type=int, default=10)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from engines.core.weights import ModelCard, WeightsStore
    from engines.radiology_ai import lesion_eval
    from engines.radiology_ai.common import attach_network
    from engines.radiology_ai.lesion_engine import LesionSegmentationPlainEngine, LesionSegmentationSEEngine
    from engines.radiology_ai.nets import UNET_ARCH, UNet2D

    name = "lesion-unet-se" if args.se else "lesion-unet-plain"
    run = TrainingRun.from_args(name, args)
    rng = np.random.default_rng(args.seed)
    cache = ROOT / "build/radiology_ai"
    xtr, ytr = load_subjects(range(args.train_subjects), cache / f"dwi_train_{args.train_subjects}.npz")
    xs, ys = xtr.reshape(-1, *xtr.shape[2:]), ytr.reshape(-1, *ytr.shape[2:])
    brain = xs.reshape(len(xs), -1).max(1) > 0.3
    lesion_slices = np.flatnonzero(ys.reshape(len(ys), -1).any(1))
    other_slices = np.flatnonzero(brain & ~ys.reshape(len(ys), -1).any(1))
    model = UNet2D(base=args.base, levels=4, se=args.se)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = run.resume(model, opt)
    losses = []
    model.train()
    while run.keep_going(step, args.steps):
        frac = max(step / args.steps, run.elapsed_s / max(run.budget_s, 1e-9))
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.5 * (1 + np.cos(np.pi * min(1.0, frac))) * 0.95 + 0.05)
        idx = np.where(rng.random(args.batch) < 0.6, rng.choice(lesion_slices, args.batch),
                       rng.choice(other_slices, args.batch))
        x, y = xs[idx].copy(), ys[idx].copy()
        flip = rng.random(args.batch) < 0.5
        x[flip], y[flip] = x[flip][:, :, ::-1], y[flip][:, :, ::-1]
        x = x * rng.uniform(0.85, 1.15, (args.batch, 1, 1)).astype(np.float32)
        xt, yt = torch.from_numpy(np.ascontiguousarray(x)[:, None]), torch.from_numpy(np.ascontiguousarray(y)).long()
        logits = model(xt)
        prob = logits.softmax(1)[:, 1]
        inter = (prob * (yt == 1)).sum()
        dice = 1 - (2 * inter + 1) / (prob.sum() + (yt == 1).sum() + 1)
        loss = F.cross_entropy(logits, yt) + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        run.log_step(step, loss=float(np.mean(losses[-25:])))
        run.checkpoint_maybe(step, model, opt)
    train_s = run.elapsed_s
    card = ModelCard(
        name=name, architecture=UNET_ARCH,
        arch_args={"in_channels": 1, "classes": 2, "base": args.base, "levels": 4, "se": args.se},
        task="lesion segmentation on diffusion-weighted MR (infarct-like bright lesions), axial 2-D slices",
        labels=["background", "lesion"],
        inputs={"modality": "MR (DWI b=1000-like)", "plane": "axial", "pixel_mm_trained": [2.4, 2.4],
                "slice_mm_trained": 2.5, "size_trained": [96, 96],
                "normalisation": "volume / 99th percentile of voxels above 10% of the maximum "
                                 "(engines.radiology_ai.dwi_sim.normalise)"},
        training_data=(f"Simulated DWI (engines.radiology_ai.dwi_sim) on nilearn's MNI152 2009 template and its "
                       f"grey/white-matter maps (2 mm): {args.train_subjects} subjects (seeds 0-"
                       f"{args.train_subjects - 1}) x 56 axial slices of 96x96 at 2.4 mm, random pose, 0-4 "
                       f"irregular lesions (3-16 mm radii, 1.35-2.6x contrast), bias field, Rician noise. Held out: "
                       f"{args.test_subjects} subjects with seeds 1000-{999 + args.test_subjects}."),
        training_command=command_line(),
        limits=("Trained on simulated lesions on one template anatomy (a population average, smoother than any "
                "single brain), at 2.4 mm; real DWI has ADC-dependent contrast, T2 shine-through, artefacts and "
                "vascular-territory shapes that the simulation lacks. Scaled to ~15 minutes on one CPU thread."),
    )
    model.eval()
    engine_cls = LesionSegmentationSEEngine if args.se else LesionSegmentationPlainEngine
    engine = attach_network(engine_cls(), model, card, "cpu")
    metrics = lesion_eval.evaluate(engine, lesion_eval.TEST_SEEDS[:args.test_subjects])
    print(json.dumps({k: v for k, v in metrics.items() if k != "per_volume"}), flush=True)
    card.metrics = {"held_out": metrics, "steps": step, "train_seconds": round(train_s), "threads": run.threads,
                    "evaluation": "through the engine's prepare/infer/finish (engines.radiology_ai.lesion_eval)"}
    WeightsStore.save(args.out, name, model.state_dict(), card)
    run.done(step)
    print(f"saved {name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
