"""Train the CT kernel conversion network (seed 5.9) for one direction and ship it with its model card.

    .venv/bin/python scripts/radiology_ai/train_kernel_conversion.py --direction sharpen --max-minutes 18
    .venv/bin/python scripts/radiology_ai/train_kernel_conversion.py --direction smooth --max-minutes 18

Needs build/radiology_ai/kernel_pairs.npz (scripts/radiology_ai/make_kernel_pairs.py). Deterministic seed,
stops at --steps or --max-minutes, whichever comes first (engines.core.training.TrainingRun: threads, seed,
resumable checkpoints, steps/s log). The held-out table in the card comes from the engines users run
(engines.radiology_ai.kernel_eval.evaluate: the trained network inside ct-kernel-conversion's predict, the
fitted filters inside ct-kernel-conversion-linear's).

Progressive learning: the network has one stage per step of the kernel ladder (hann -> hamming -> cosine ->
shepp-logan -> ramp -> edge, or the reverse); during the first half of training the stages are unlocked one by
one (a stage's auxiliary loss at its intermediate kernel joins when it is unlocked); in the second half all
stages train together with double weight on the final target kernel.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from engines.core.training import TrainingRun, command_line, parser

    ap = parser(__doc__.splitlines()[0], minutes=18.0, seed=59)
    ap.add_argument("--direction", choices=("sharpen", "smooth"), required=True)
    ap.add_argument("--data", type=Path, default=ROOT / "build/radiology_ai/kernel_pairs.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/radiology_ai")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args(argv)

    import torch

    from engines.core.weights import ModelCard, WeightsStore
    from engines.radiology_ai import kernels as K
    from engines.radiology_ai.kernel_engine import KernelConversionEngine
    from engines.radiology_ai.kernel_eval import HU_SCALE, evaluate, fit_baselines, ladder
    from engines.radiology_ai.nets import KERNEL_ARCH, KernelConversionNet

    run = TrainingRun.from_args(f"ct-kernel-{args.direction}", args)
    rng = np.random.default_rng(args.seed)
    data = dict(np.load(args.data))
    src_k, targets = ladder(args.direction)
    S = len(targets)
    train_src = data[f"train/{src_k}"] / HU_SCALE
    train_tgt = np.stack([data[f"train/{t}"] for t in targets], axis=1) / HU_SCALE  # [n, S, h, w]
    n, h, w = train_src.shape
    model = KernelConversionNet(stages=S, channels=args.channels)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    P = args.patch
    step = run.resume(model, opt)
    losses = []
    while run.keep_going(step, args.steps):
        frac = max(step / args.steps, run.elapsed_s / max(run.budget_s, 1e-9))
        unlocked = min(S, 1 + int(frac * 2 * S)) if frac < 0.5 else S
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.5 * (1 + np.cos(np.pi * min(1.0, frac))) * 0.95 + 0.05)
        xs, ys = [], []
        while len(xs) < args.batch:
            i = rng.integers(n)
            r, c = rng.integers(0, h - P), rng.integers(0, w - P)
            x = train_src[i, r:r + P, c:c + P]
            if (x > -0.9).mean() < 0.2:  # mostly air outside the body: little to learn
                continue
            xs.append(x)
            ys.append(train_tgt[i, :, r:r + P, c:c + P])
        x = torch.from_numpy(np.stack(xs)[:, None].astype(np.float32))
        y = torch.from_numpy(np.stack(ys).astype(np.float32))
        outs = model(x, upto=unlocked - 1)
        loss = 0.0
        for s, o in enumerate(outs):
            weight = 2.0 if (s == S - 1 and unlocked == S) else 1.0
            loss = loss + weight * torch.mean((o[:, 0] - y[:, s]) ** 2) * 1e4  # (HU/10)^2
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        run.log_step(step, loss=float(np.mean(losses[-25:])), stages=unlocked)
        run.checkpoint_maybe(step, model, opt)
    train_s = run.elapsed_s
    print(f"trained {step} steps in {train_s:.0f} s; evaluating on the held-out pairs", flush=True)
    model.eval()
    baselines = fit_baselines(data, args.direction)
    names = sorted(set(str(v).split("#")[0] for v in data["train/names"]))
    real_train = sorted({v.split("#")[0][5:] for v in map(str, data["train/names"]) if v.startswith("real:")})
    name = f"ct-kernel-{args.direction}"
    card = ModelCard(
        name=name, architecture=KERNEL_ARCH,
        arch_args={"stages": S, "channels": args.channels, "blocks_per_stage": 1,
                   "dilations": [1, 2, 4, 2, 1], "source_kernel": src_k,
                   "stage_kernels": targets, "hu_scale": HU_SCALE},
        task=f"CT kernel conversion ({'smooth -> sharp' if args.direction == 'sharpen' else 'sharp -> smooth'}): "
             f"an image reconstructed with the '{src_k}' kernel -> the same scan reconstructed with "
             f"{', '.join(targets)} (one head per kernel)",
        labels=targets,
        inputs={"modality": "CT", "units": "HU", "kernel": src_k, "pixel_mm_trained": 1.4,
                "any_size": "fully convolutional; trained on 64x64 patches of 256x256 slices"},
        training_data=(
            "Physics-made pairs (scripts/radiology_ai/make_kernel_pairs.py, seed 5): 256x256 slices forward-"
            "projected with skimage.transform.radon (256 views / 180 deg), Poisson noise at 5e4..5e5 photons per "
            "ray, the same noisy sinogram reconstructed with iradon for each kernel (hann, hamming, cosine, "
            "shepp-logan, ramp; 'edge' = ramp x (1 + 1.2 f^2) pre-filter then iradon(filter_name=None)). "
            f"Training slices ({len(data['train/names'])} scans): real CT slices {', '.join(real_train)} "
            "(8 flips/rotations each, new noise), skimage Shepp-Logan, the radiology phantom "
            "(engines.radiology.samples.ct_phantom_slice, seeds 1000-1035), random ellipse phantoms (seeds "
            "2000-2035). Held out for the metrics: the real slice 693_UNCI.dcm (pydicom-data), phantom seeds "
            f"9000-9003, ellipse seeds 9100-9103 ({len(data['test/names'])} scans). Source kinds: {', '.join(names[:8])}..."),
        training_command=command_line(),
        limits=("Trained at 1.4 mm pixels on simulated parallel-beam scans with skimage's filters, not on a "
                "scanner's vendor kernels; a real series keeps its own noise texture, so the conversion is an "
                "approximation. Scaled down to fit ~18 minutes on one CPU thread (24 channels, 5 stages, 64x64 "
                "patches). Smooth -> sharp cannot restore noise the smooth kernel removed: it restores the "
                "expected sharper image, not the target's noise realisation."),
    )
    engine = KernelConversionEngine().use_network(args.direction, model, card, "cpu")
    metrics = evaluate(engine, data, args.direction, baselines)
    print(json.dumps(metrics, indent=1), flush=True)
    card.metrics = {"held_out": metrics, "steps": step, "train_seconds": round(train_s), "threads": run.threads,
                    "final_loss": round(float(np.mean(losses[-50:])), 4),
                    "baseline_params": [{"target": t, "sigma": b.sigma, "amount": b.amount}
                                        for t, b in zip(targets, baselines)],
                    "evaluation": "through the engines' predict (engines.radiology_ai.kernel_eval)"}
    args.out.mkdir(parents=True, exist_ok=True)
    WeightsStore.save(args.out, name, model.state_dict(), card)
    run.done(step)
    print(f"saved {args.out / name}.safetensors", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
