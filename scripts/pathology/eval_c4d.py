"""Compare the C4d CNN with the plain colour-deconvolution threshold on the held-out tile, through the
engines' own path (``engine.predict`` on a slide file: stain contract, tile pipeline, watershed-split
structures, detections), as stained and under stain jitter; optionally calibrate the CNN.

    flock /tmp/csi-training.lock timeout 900 env OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 \
        .venv/bin/python scripts/pathology/eval_c4d.py [--jitters 24] [--calibrate] [--update-card]

Truth: the deconvolution proposal on the held-out quadrant *as stained* (the same AI-assisted labels the
CNN was trained on, never seen in training), split into structures the way the engines split them. On the
original staining the threshold reproduces its own labels by construction; the comparison that matters is
under stain jitter (another lab's staining of the same tissue). ``--calibrate`` fits the CNN's temperature and
its energy percentiles on 12 other stain-jitter draws of the held-out tile (engines.core.calibration).
``--update-card`` writes the figures into the model card's JSON (the weights and their SHA-256 stay the same).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jitters", type=int, default=24)
    ap.add_argument("--strength", type=float, default=0.3)
    ap.add_argument("--calibrate", action="store_true", help="fit temperature and OOD percentiles (12 draws)")
    ap.add_argument("--calibration-draws", type=int, default=12)
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()

    from engines.core.calibration import calibrate, ood_reference
    from engines.core.card_json import update_card
    from engines.core.threads import apply_thread_policy
    from engines.pathology import c4d_eval as E
    from engines.pathology.c4d import WEIGHTS_NAME, C4dCnnEngine, C4dDeconvolutionEngine

    apply_thread_policy()
    cnn = C4dCnnEngine()
    cnn.load("cpu")
    metrics: dict = {}
    calibration: dict = {}
    if args.calibrate:
        cnn.card.calibration = {}  # fit on the uncalibrated network
        logits, labels = E.calibration_data(cnn, args.calibration_draws, args.strength)
        calibration = calibrate(logits, labels)
        # the OOD reference is per input (the mean energy of a slide's stained pixels) at the fitted temperature,
        # on inputs like the training data (the four quadrants under the training's stain jitter)
        cnn.card.calibration = {"temperature": calibration["temperature"]}
        energies = E.in_distribution_energies(cnn)
        calibration["ood"] = ood_reference(energies)
        calibration["ood"]["inputs"] = (f"{len(energies)}: the four 256x256 quadrants of the IHC field at "
                                        f"1 µm/px, as stained and under 5 stain jitters each (seed 11)")
        calibration["data"] = (f"temperature: {len(labels)} pixels of {args.calibration_draws} stain-jitter "
                               f"draws (strength "
                               f"{args.strength}, seed 7) of the held-out tile, through engine.predict; the "
                               f"evaluation draws use seed 2024. Same tissue as the test figures: not an "
                               f"independent validation set.")
        calibration["command"] = " ".join(["scripts/pathology/eval_c4d.py", *sys.argv[1:]])
        cnn.card.calibration = calibration
        metrics["reliability_ece_before"] = calibration["ece_before"]
        metrics["reliability_ece_after"] = calibration["ece_after"]
    out = E.evaluate({"cnn": cnn, "threshold": C4dDeconvolutionEngine()}, args.jitters, args.strength)
    sample = E.test_sample_metrics(cnn)
    metrics.update(engine_eval=out, **sample,
                   engine_eval_command=(".venv/bin/python scripts/pathology/eval_c4d.py " + " ".join(sys.argv[1:])))
    print(json.dumps({"metrics": metrics, "calibration": {k: v for k, v in calibration.items()
                                                          if not k.startswith("bins")}}, indent=1))
    if args.update_card:
        sections = {"metrics": metrics}
        if calibration:
            sections["calibration"] = calibration
        print(f"updated {update_card(WEIGHTS_NAME, **sections)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
