"""Train the C4d tiny U-Net on AI-assisted labels from scikit-image's IHC field; write safetensors + card.

    .venv/bin/python scripts/pathology/train_c4d.py --steps 2500 --threads 1 --out resources/models/pathology

The harness (engines/core/training.py) owns the arguments, seed, threads, time budget, resumable checkpoints
and the saved model with its card; the figures come from the engine's own path (engines/pathology/c4d_eval.py:
predict on a slide file, no clean-up the engine lacks - this script used to add a binary opening).

Data: skimage.data.immunohistochemistry() (512 x 512, treated as 0.5 µm/px). Labels: the colour-deconvolution
proposal (engines.pathology.stain.propose_dab_mask) on the original staining, enlarged by one pixel at the
working scale (the authors' enlarged masks). Hold-out: the bottom-right 256 x 256 quadrant is never seen in
training; evaluation runs on it, as stained and under 24 random stain jitters, against the un-enlarged labels.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.pathology.c4d_eval import WORK_MPP, resize  # noqa: E402
from engines.pathology.stain import DAB_THRESHOLD, enlarge_mask, propose_dab_mask, stain_jitter  # noqa: E402

SRC_MPP = 0.5
PATCH = 96


def training_sources(img, label):
    """The three training quadrants, each mirror-padded by 128 px, so no patch ever sees the held-out one."""
    out = []
    for ys, xs in ((slice(0, 256), slice(0, 256)), (slice(0, 256), slice(256, 512)), (slice(256, 512), slice(0, 256))):
        out.append((np.pad(img[ys, xs], ((128, 128), (128, 128), (0, 0)), mode="symmetric"),
                    np.pad(label[ys, xs], 128, mode="symmetric")))
    return out


def sample_patch(sources, rng):
    """A random patch at a random scale (0.8-1.25 of the working scale), rotation and flip, from training area."""
    from scipy import ndimage

    img, lab = sources[rng.integers(len(sources))]
    scale = rng.uniform(0.8, 1.25) * SRC_MPP / WORK_MPP  # output px per source px
    src = int(np.ceil(PATCH / scale * 1.45))  # room for rotation
    y, x = rng.integers(0, img.shape[0] - src, 2)
    crop, lcrop = img[y:y + src, x:x + src], lab[y:y + src, x:x + src].astype(np.uint8) * 255
    angle = rng.uniform(0, 360)
    crop = ndimage.rotate(crop, angle, axes=(0, 1), reshape=False, order=1, mode="reflect")
    lcrop = ndimage.rotate(lcrop, angle, reshape=False, order=0, mode="reflect")
    n = int(round(src * scale))
    crop, lcrop = resize(crop, (n, n)), resize(lcrop, (n, n), nearest=True)
    o = (n - PATCH) // 2
    crop, lcrop = crop[o:o + PATCH, o:o + PATCH], lcrop[o:o + PATCH, o:o + PATCH] > 127
    if rng.random() < 0.5:
        crop, lcrop = crop[:, ::-1], lcrop[:, ::-1]
    crop = stain_jitter(np.ascontiguousarray(crop), rng, strength=0.3) if rng.random() < 0.85 else crop
    lcrop = enlarge_mask(lcrop, 1)
    return np.ascontiguousarray(crop), np.ascontiguousarray(lcrop)


def main() -> int:
    from engines.core.training import TrainingRun, command_line, parser

    ap = parser(__doc__.splitlines()[0], minutes=22.0, seed=0)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", default="resources/models/pathology")
    args = ap.parse_args()

    import torch

    from engines.core.weights import ModelCard
    from engines.pathology import c4d_eval as E
    from engines.pathology.c4d import WEIGHTS_NAME, C4dDeconvolutionEngine
    from engines.pathology.c4d_model import ARCHITECTURE, TinyUNet
    from skimage import data

    run = TrainingRun.from_args(WEIGHTS_NAME, args)  # seed, threads, device, budget, checkpoints
    rng = np.random.default_rng(args.seed)
    img = data.immunohistochemistry()
    label = propose_dab_mask(img, SRC_MPP)
    sources = training_sources(img, label)

    model = TinyUNet(base=args.base).to(run.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    bce = torch.nn.BCEWithLogitsLoss()
    step = run.resume(model, opt)
    while run.keep_going(step, args.steps):
        for group in opt.param_groups:  # cosine decay over the planned steps
            group["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        xs, ys = zip(*(sample_patch(sources, rng) for _ in range(args.batch)))
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().to(run.device) / 255
        y = torch.from_numpy(np.stack(ys).astype(np.float32)).to(run.device)
        logits = model(x)
        prob = torch.sigmoid(logits)
        dice = 1 - (2 * (prob * y).sum() + 1) / (prob.sum() + y.sum() + 1)
        loss = bce(logits, y) + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        run.log_step(step, loss=loss.item())
        run.checkpoint_maybe(step, model, opt)
    summary = run.done(step)

    def card_for(metrics=None) -> ModelCard:
        return ModelCard(
            name=WEIGHTS_NAME, architecture=ARCHITECTURE, arch_args={"base": args.base},
            task="C4d-positive (DAB) structure segmentation -> detections, at 1.0 µm/px",
            labels=["C4d-positive"],
            inputs={"mpp": WORK_MPP, "channels": "RGB uint8 / 255", "tile": 512, "margin": 32,
                    "output": "one logit per pixel; sigmoid > 0.5 = positive"},
            training_data=("scikit-image immunohistochemistry field (512x512 DAB/haematoxylin, colonic glands, "
                           "treated as 0.5 µm/px) minus its bottom-right 256x256 quadrant (held out). Labels: "
                           f"AI-assisted - colour deconvolution (rgb2hed) DAB > {DAB_THRESHOLD}, opened, structures "
                           "< 30 µm² removed, then enlarged by 1 px (authors' enlarged masks); no pathologist "
                           "review. Augmentation: stain jitter in HED optical density (x0.7-1.3, 85% of patches), "
                           "any rotation, flips, scale 0.8-1.25."),
            training_command=command_line(),
            metrics=dict(metrics or {}, steps_done=step, train_minutes=summary["minutes"],
                         parameters=sum(p.numel() for p in model.parameters())),
            limits=("Trained on one 512x512 IHC field of colonic glands (membranous DAB), not on renal allograft "
                    "C4d slides: it finds DAB-positive structures, not peritubular capillaries specifically. "
                    "Labels come from colour deconvolution, so on the original staining it can at best match the "
                    "threshold; its value is robustness to stain variation. Scaled down to fit a 2-core CPU."))

    # every figure through the engine's own path (predict on a slide file), as users run it
    engine = E.engine_with_network(model, card_for(), run.device)
    metrics = {"engine_eval": E.evaluate({"cnn": engine, "threshold": C4dDeconvolutionEngine()}),
               **E.test_sample_metrics(engine)}
    print(json.dumps(metrics, indent=1), flush=True)
    run.save_best(metrics["engine_eval"]["cnn"]["jitter_mean"]["f1"], model, lambda: card_for(metrics), args.out)
    print("calibrate the saved model with scripts/pathology/eval_c4d.py --calibrate --update-card", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
