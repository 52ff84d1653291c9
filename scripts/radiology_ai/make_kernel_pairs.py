"""Make the physics-made CT kernel pairs (seed 5.9) for training and held-out evaluation.

    .venv/bin/python scripts/radiology_ai/make_kernel_pairs.py --out build/radiology_ai/kernel_pairs.npz

Each scan: a source slice in HU (256 x 256) -> radon (256 views over 180 degrees) -> Poisson noise at
5e4..5e5 photons per ray -> the same noisy sinogram reconstructed with every kernel of the ladder.

Train sources: the radiology phantom at random heights (seeds 1000+), random-ellipse phantoms (seeds 2000+),
Shepp-Logan, and the real slices CT_small.dcm and eCT_Supplemental.dcm frames 1-2 (flipped/rotated, new noise).
Held out (test): the real slice 693_UNCI.dcm (never in training), radiology phantom seeds 9000+, ellipse seeds
9100+. Deterministic (seed 5). About 5 minutes on one core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.radiology_ai import kernels as K  # noqa: E402

HELD_OUT_REAL = "693_UNCI.dcm"


def sources(split: str, n: int, rng: np.random.Generator):
    real = dict(K.real_ct_slices(n))
    if split == "test":
        for r in range(4):
            yield f"real:{HELD_OUT_REAL}#{r}", K.augment(real[HELD_OUT_REAL], rng) if r else real[HELD_OUT_REAL]
        for s in range(4):
            yield f"phantom-seed{9000 + s}", K.anatomy_phantom(n, float(rng.uniform(-240, 0)), 9000 + s)
        for s in range(4):
            yield f"ellipses-seed{9100 + s}", K.ellipse_phantom(n, np.random.default_rng(9100 + s))
        return
    train_real = [k for k in real if k != HELD_OUT_REAL]
    for r in range(8):
        for name in train_real:
            yield f"real:{name}#{r}", K.augment(real[name], rng)
    for s in range(4):
        yield f"shepp-logan#{s}", K.augment(K.shepp_logan_hu(n), rng)
    for s in range(36):
        yield f"phantom-seed{1000 + s}", K.augment(K.anatomy_phantom(n, float(rng.uniform(-240, 0)), 1000 + s), rng)
    for s in range(36):
        yield f"ellipses-seed{2000 + s}", K.ellipse_phantom(n, np.random.default_rng(2000 + s))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/radiology_ai/kernel_pairs.npz"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--splits", nargs="+", default=["test", "train"], choices=["test", "train"],
                    help="which splits to make (each has its own generator: the test split alone is the same)")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    payload = {}
    for split in [s for s in ("test", "train") if s in args.splits]:
        rng = np.random.default_rng(args.seed + (0 if split == "train" else 100))
        names, stacks, photons = [], {k: [] for k in K.KERNELS}, []
        items = list(sources(split, args.size, rng))
        for i, (name, hu) in enumerate(items):
            ph = float(np.exp(rng.uniform(np.log(5e4), np.log(5e5))))
            recon = K.simulate_pair_set(hu, rng, K.ScanSettings(photons=ph))
            for k in K.KERNELS:
                stacks[k].append(recon[k].astype(np.float16 if False else np.float32))
            names.append(name)
            photons.append(ph)
            print(f"\r{split}: {i + 1}/{len(items)} {name:32s} {time.time() - t0:6.0f} s", end="", flush=True)
        print()
        for k in K.KERNELS:
            payload[f"{split}/{k}"] = np.stack(stacks[k])
        payload[f"{split}/names"] = np.array(names)
        payload[f"{split}/photons"] = np.array(photons)
    np.savez(args.out, **payload)
    print(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
