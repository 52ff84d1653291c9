"""Held-out evaluation of kernel conversion: network vs identity, Gaussian/unsharp and Wiener baselines.

Used by the training script (metrics in the model card) and by scripts/radiology_ai/eval_kernel_conversion.py
(the table in docs/radiology_ai.md). Torch is imported inside the functions.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from engines.radiology_ai import kernels as K
from engines.radiology_ai.baselines import LinearBaselines, fov_mask, rmse_hu, ssim_hu

HU_SCALE = 1000.0


def ladder(direction: str) -> tuple[str, list[str]]:
    """(source kernel, targets in stage order) of a direction."""
    if direction == "sharpen":
        return K.KERNELS[0], list(K.KERNELS[1:])
    if direction == "smooth":
        return K.KERNELS[-1], list(reversed(K.KERNELS[:-1]))
    raise ValueError(f"direction must be 'sharpen' or 'smooth', not '{direction}'")


def run_net(model, hu: np.ndarray, stage: int, device: str = "cpu", batch: int = 4,
            progress=None, cancel=None) -> np.ndarray:
    """HU slices [n, h, w] -> HU slices converted by head ``stage`` of ``model`` (slice-batched, no grad)."""
    import torch

    out = np.empty(hu.shape, dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(hu), batch):
            if cancel is not None:
                cancel.raise_if_cancelled()
            x = torch.from_numpy(np.ascontiguousarray(hu[start:start + batch], dtype=np.float32) / HU_SCALE)
            y = model(x[:, None].to(device), upto=stage)[stage]
            out[start:start + batch] = y[:, 0].float().cpu().numpy() * HU_SCALE
            if progress is not None:
                progress(min(len(hu), start + batch) / len(hu), f"converted {min(len(hu), start + batch)}/{len(hu)} slices")
    return out


def evaluate(model, data: dict[str, np.ndarray], direction: str, baselines: Sequence[LinearBaselines],
             device: str = "cpu") -> dict[str, Any]:
    """Per target kernel: mean SSIM and RMSE (HU, inside the field of view) of each method on the test split."""
    src_k, targets = ladder(direction)
    src = data[f"test/{src_k}"]
    mask = fov_mask(src.shape[-1])
    rows = {}
    for stage, tgt_k in enumerate(targets):
        dst = data[f"test/{tgt_k}"]
        base = baselines[stage]
        preds = {"identity": src, base.spatial_name: np.stack([base.spatial(x) for x in src]),
                 "Wiener filter": np.stack([base.frequency(x) for x in src])}
        if model is not None:
            preds["network"] = run_net(model, src, stage, device)
        row = {}
        for name, pred in preds.items():
            row[name] = {"ssim": round(float(np.mean([ssim_hu(p, y) for p, y in zip(pred, dst)])), 4),
                         "rmse_hu": round(float(np.mean([rmse_hu(p, y, mask) for p, y in zip(pred, dst)])), 2)}
        rows[f"{src_k}->{tgt_k}"] = row
    return rows


def fit_baselines(data: dict[str, np.ndarray], direction: str) -> list[LinearBaselines]:
    src_k, targets = ladder(direction)
    return [LinearBaselines.fit(data[f"train/{src_k}"], data[f"train/{t}"], direction == "sharpen") for t in targets]
