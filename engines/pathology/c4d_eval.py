"""The C4d engines' evaluation through the path users run (``engine.predict`` on a slide file), shared by
scripts/pathology/eval_c4d.py, train_c4d.py and the tests, so the model card measures what users get.

Held-out tile: the bottom-right 256 x 256 quadrant of scikit-image's IHC field (never seen in training), at
1 µm/px (128 x 128), written as a lossless tiled TIFF that records 1 µm/px. Truth: the deconvolution proposal
on it as stained (engines.pathology.stain.propose_dab_mask), split into structures as the engines split them.
A prediction is the engine's detections (their outlines rasterised) - no extra clean-up that the engine lacks.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HOLD = (slice(256, 512), slice(256, 512))
WORK_MPP = 1.0
TOL_PX = 3


def resize(arr: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize(size, Image.NEAREST if nearest else Image.BILINEAR))


def held_out_tile() -> tuple[np.ndarray, np.ndarray]:
    """(RGB 128 x 128 at 1 µm/px, truth mask) of the held-out quadrant."""
    from skimage import data

    from engines.pathology.stain import propose_dab_mask

    hold = resize(data.immunohistochemistry()[HOLD], (128, 128))
    return hold, propose_dab_mask(hold, WORK_MPP)


def write_tile(path: Path, rgb: np.ndarray, mpp: float = WORK_MPP) -> Path:
    """A lossless tiled TIFF recording ``mpp`` (OpenSlide reads it as a generic TIFF)."""
    import tifffile

    res = 1e4 / mpp
    h, w = rgb.shape[:2]
    side = 256 if min(h, w) >= 256 else max(16, min(h, w) // 16 * 16)  # libtiff reads tiles within the image
    tile = (side, side)
    tifffile.imwrite(path, np.ascontiguousarray(rgb), tile=tile, photometric="rgb", resolution=(res, res),
                     resolutionunit="CENTIMETER", metadata=None)
    return path


def run_engine(engine, rgb: np.ndarray, *, keep_logits: bool = False, name: str = "held-out.tiff"):
    """``engine.predict`` on ``rgb`` written as a slide file: the user path, checks included."""
    with tempfile.TemporaryDirectory(prefix="c4d-eval-") as tmp:
        path = write_tile(Path(tmp) / name, rgb)
        return engine.predict({"slide_path": path, "keep_logits": keep_logits})


def tile_logits(analysis, shape: tuple[int, int]) -> np.ndarray:
    """The CNN's logits on the image pixels of a one-tile slide (the tile starts one margin before the image)."""
    logits = analysis.extra["tile_logits"]
    if len(logits) != 1:
        raise ValueError(f"expected one tile, got {len(logits)}")
    m = 32
    return np.asarray(logits[0])[m:m + shape[0], m:m + shape[1]]


def detections_mask(detections, shape: tuple[int, int]) -> np.ndarray:
    """The detections' outlines (level-0 pixels = working pixels at 1 µm/px) filled into a mask."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    for poly in detections.polygons or []:
        if len(poly) >= 3:
            rr, cc = polygon(poly[:, 1] - 0.5, poly[:, 0] - 0.5, shape)
            mask[rr, cc] = True
    return mask


def truth_structures(truth_mask: np.ndarray):
    """The truth mask split into structures exactly as the engines split a probability map."""
    from engines.pathology.tiles import Tile, _components

    h, w = truth_mask.shape
    return _components(truth_mask.astype(np.float32), 0.5, 30, 0, max(h, w), w, h, Tile(0, 0, w, h, 0, 0), 1.0,
                       WORK_MPP)


def match(pred, pred_mask: np.ndarray, truth, truth_mask: np.ndarray, tol_px: int = TOL_PX) -> dict[str, float]:
    """Object precision/recall/F1 (a structure counts when its centroid lies within ``tol_px`` of the other
    side's mask) and pixel Dice."""
    from engines.pathology.stain import enlarge_mask

    tgrow, pgrow = enlarge_mask(truth_mask, tol_px), enlarge_mask(pred_mask, tol_px)

    def hits(dets, grow):
        if len(dets) == 0:
            return 0
        ij = np.clip(np.round(dets.xy - 0.5).astype(int), 0, np.array(grow.shape[::-1]) - 1)
        return int(grow[ij[:, 1], ij[:, 0]].sum())

    tp, found = hits(pred, tgrow), hits(truth, pgrow)
    prec = tp / len(pred) if len(pred) else 0.0
    rec = found / len(truth) if len(truth) else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    denom = pred_mask.sum() + truth_mask.sum()
    dice = 2 * (pred_mask & truth_mask).sum() / denom if denom else 1.0
    return {"precision": prec, "recall": rec, "f1": f1, "dice": float(dice), "n_pred": len(pred)}


def score(engine, rgb: np.ndarray, truth, truth_mask: np.ndarray) -> dict[str, float]:
    analysis = run_engine(engine, rgb)
    return match(analysis.detections, detections_mask(analysis.detections, truth_mask.shape), truth, truth_mask)


def jitter_variants(hold: np.ndarray, n: int, strength: float, seed: int) -> list[np.ndarray]:
    from engines.pathology.stain import stain_jitter

    rng = np.random.default_rng(seed)
    return [stain_jitter(hold, rng, strength) for _ in range(n)]


def evaluate(engines: dict[str, Any], jitters: int = 24, strength: float = 0.3, seed: int = 2024) -> dict[str, Any]:
    """Each engine on the held-out tile as stained and under ``jitters`` stain jitters, through predict."""
    hold, truth_mask = held_out_tile()
    truth = truth_structures(truth_mask)
    variants = [hold] + jitter_variants(hold, jitters, strength, seed)
    out: dict[str, Any] = {
        "held_out": f"bottom-right 256x256 quadrant of skimage IHC at 1 µm/px (128x128), {len(truth)} true "
                    f"structures (deconvolution labels as stained, watershed-split like the engines)",
        "stain_jitter": f"{jitters} draws, strength {strength} (HED optical density x{1 - strength:.1f}-"
                        f"{1 + strength:.1f}), seed {seed}",
        "path": "engine.predict on a lossless 1 µm/px TIFF; detections' outlines rasterised; no extra clean-up"}
    for name, engine in engines.items():
        rows = [score(engine, v, truth, truth_mask) for v in variants]
        jit = rows[1:] or rows
        out[name] = {"as_stained": {k: round(float(v), 4) for k, v in rows[0].items()},
                     "jitter_mean": {k: round(float(np.mean([m[k] for m in jit])), 4) for k in jit[0]},
                     "jitter_worst_f1": round(float(min(m["f1"] for m in jit)), 4),
                     "jitter_worst_dice": round(float(min(m["dice"] for m in jit)), 4)}
    return out


def test_sample_metrics(engine) -> dict[str, float]:
    """The small held-out sample the tests reproduce: the held-out tile as stained (one predict, seconds)."""
    hold, truth_mask = held_out_tile()
    m = score(engine, hold, truth_structures(truth_mask), truth_mask)
    return {"test_sample_f1": round(float(m["f1"]), 4), "test_sample_dice": round(float(m["dice"]), 4)}


def calibration_data(engine, n: int = 12, strength: float = 0.3, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(N x 2 pixel logits, N labels) of the CNN through predict on ``n`` stain-jittered draws of the held-out
    tile (seed 7: other draws than the evaluation's), labels from the tile as stained."""
    from engines.pathology.c4d import binary_logits

    hold, truth_mask = held_out_tile()
    logits, labels = [], []
    for v in [hold] + jitter_variants(hold, n - 1, strength, seed):
        z = tile_logits(run_engine(engine, v, keep_logits=True), truth_mask.shape)
        logits.append(binary_logits(z.ravel()).T)
        labels.append(truth_mask.ravel().astype(np.int64))
    return np.concatenate(logits), np.concatenate(labels)


def in_distribution_energies(engine, draws: int = 6, strength: float = 0.3, seed: int = 11) -> np.ndarray:
    """The engine's per-input OOD score on inputs like its training data: each quadrant of the IHC field at
    1 µm/px, as stained and under ``draws - 1`` stain jitters (the training augmentation)."""
    from skimage import data

    img = data.immunohistochemistry()
    scores = []
    for ys in (slice(0, 256), slice(256, 512)):
        for xs in (slice(0, 256), slice(256, 512)):
            quad = resize(img[ys, xs], (128, 128))
            for v in [quad] + jitter_variants(quad, draws - 1, strength, seed):
                scores.append(run_engine(engine, v).scores["ood"]["score"])
    return np.asarray(scores)


def engine_with_network(model, card, device: str = "cpu"):
    """A C4d CNN engine running ``model`` (a network being trained) instead of the shipped weights, so that a
    training script evaluates through the engine's own path."""
    from engines.pathology.c4d import C4dCnnEngine

    return C4dCnnEngine().attach_network(model, card, device)

