"""Fit the classical kernel-conversion filters (Wiener-style radial transfer function, Gaussian/unsharp) on the
training pairs and store them for the ``ct-kernel-conversion-linear`` engine.

    .venv/bin/python scripts/radiology_ai/fit_linear_kernels.py

Reads build/radiology_ai/kernel_pairs.npz (train split only); writes
resources/models/radiology_ai/ct-kernel-linear.json (plain numbers, no weights file, no pickle).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from engines.core.atomic import atomic_write_text
    from engines.radiology_ai.kernel_eval import fit_baselines, ladder

    data = dict(np.load(ROOT / "build/radiology_ai/kernel_pairs.npz"))
    out = {"format": "csi-workstation/ct-kernel-linear@1",
           "fitted_on": "train split of scripts/radiology_ai/make_kernel_pairs.py (seed 5), 256x256 at 1.4 mm",
           "command": "python scripts/radiology_ai/fit_linear_kernels.py",
           "intended_use": "Research use only. Not for diagnosis or treatment.", "directions": {}}
    for direction in ("sharpen", "smooth"):
        src, targets = ladder(direction)
        fits = fit_baselines(data, direction)
        out["directions"][direction] = {"source": src, "targets": {t: b.to_dict() for t, b in zip(targets, fits)}}
        print(direction, [(t, round(b.sigma, 2), round(b.amount, 2)) for t, b in zip(targets, fits)], flush=True)
    path = ROOT / "resources/models/radiology_ai/ct-kernel-linear.json"
    atomic_write_text(path, json.dumps(out, indent=1) + "\n")
    print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
