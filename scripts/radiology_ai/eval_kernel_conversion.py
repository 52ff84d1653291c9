"""Re-measure the shipped kernel-conversion networks through the engines and store their OOD reference.

    OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 flock /tmp/csi-training.lock timeout 900 \
        .venv/bin/python scripts/radiology_ai/eval_kernel_conversion.py --update-card

The held-out test split of scripts/radiology_ai/make_kernel_pairs.py (12 scans: the real slice 693_UNCI.dcm
x4 noise/orientations, phantom seeds 9000-9003, ellipse seeds 9100-9103), made on first use (the test split
alone, the same scans as in the full file). The network runs through ``ct-kernel-conversion``'s predict, the
baselines through ``ct-kernel-conversion-linear``'s predict with the shipped fitted filters. With
``--update-card``: the table as ``held_out`` in each card's metrics (the old table was measured on the bare
network with the baselines refitted; the figures are the engine's now, at its default precision and after its
int16 rounding), the bfloat16-vs-float32 difference of the last head on the held-out slices, the
one-scan test sample the tests reproduce, and ``calibration.ood``: per head, the percentiles of the network's
mean correction |output - input| on the held-out slices (a regression network has no class scores: no
temperature). Only the card JSON changes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
COMMAND = ("OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 flock /tmp/csi-training.lock timeout 900 .venv/bin/python "
           "scripts/radiology_ai/eval_kernel_conversion.py --update-card")


def held_out(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        from scripts.radiology_ai.make_kernel_pairs import main as make_pairs

        make_pairs(["--out", str(path), "--splits", "test"])
    return dict(np.load(path))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "build/radiology_ai/kernel_pairs_test.npz")
    ap.add_argument("--directions", nargs="+", default=["sharpen", "smooth"], choices=["sharpen", "smooth"])
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args(argv)

    from engines.radiology_ai import kernel_eval
    from engines.core.card_json import update_card
    from engines.radiology_ai.kernel_engine import BF16_TOLERANCE_HU, DIRECTIONS, KernelConversionEngine

    data = held_out(args.data)
    sample = kernel_eval.test_sample_scan()
    engine = KernelConversionEngine()
    engine.load("cpu")
    report = {}
    for direction in args.directions:
        rows = kernel_eval.evaluate(engine, data, direction)
        ood = kernel_eval.correction_reference(engine, data, direction)
        test = kernel_eval.test_sample_metrics(engine, direction, sample)
        src_k, targets = kernel_eval.ladder(direction)
        bf16 = kernel_eval.precision_difference(engine, data[f"test/{src_k}"], direction, targets[-1])
        bf16_ok = bf16["rms_hu"] <= BF16_TOLERANCE_HU["rms"] and bf16["max_hu"] <= BF16_TOLERANCE_HU["max"]
        report[direction] = {"held_out": rows, "test_sample": test, "ood": ood, "bfloat16_vs_float32": bf16,
                             "within_tolerance": bf16_ok}
        print(direction, json.dumps({"test_sample": test, "last": list(rows.items())[-1]}), flush=True)
        if args.update_card:
            name = DIRECTIONS[direction][0]
            update_card(name, metrics={
                "held_out": rows, "held_out_scans": int(len(data["test/names"])),
                "test_sample": dict(test, scan="693_UNCI.dcm rescanned, noise seed 424242, 1.5e5 photons/ray"),
                "test_sample_rmse_hu": test["rmse_hu"],
                "precision": {"default": "auto (bfloat16 on CPUs with native bfloat16, else float32)",
                              "bfloat16_vs_float32_held_out": bf16, "tolerance_hu": BF16_TOLERANCE_HU,
                              "within_tolerance": bf16_ok},
                "evaluation": "through the engines' predict (engines.radiology_ai.kernel_eval); baselines with "
                              "the shipped filters (ct-kernel-linear.json)",
                "evaluation_command": COMMAND},
                calibration={"ood": ood, "note": "regression network: no class scores, so no temperature; the "
                                                 "OOD score is the mean correction |output - input| in HU over "
                                                 "the body, per head, on the held-out slices"})
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
