"""Held-out evaluation of kernel conversion: network vs identity, Gaussian/unsharp and Wiener baselines.

Every figure goes through the engines users run: the network through ``KernelConversionEngine.predict`` (contract
checks, acquisition-plane slicing, the direction's network, clipping and the int16 rounding of the written
series), the baselines through ``LinearKernelConversionEngine.predict`` with the same fitted filters. Used by the
training script (metrics in the model card), scripts/radiology_ai/eval_kernel_conversion.py (re-measure and
calibrate the shipped cards, the table in docs/radiology_ai.md) and the tests. Torch is imported inside.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from engines.radiology_ai import kernels as K
from engines.radiology_ai.baselines import LinearBaselines, fov_mask, rmse_hu, ssim_hu

HU_SCALE = 1000.0
PIXEL_MM = 1.4  # the pairs' pixel size


def ladder(direction: str) -> tuple[str, list[str]]:
    """(source kernel, targets in stage order) of a direction."""
    if direction == "sharpen":
        return K.KERNELS[0], list(K.KERNELS[1:])
    if direction == "smooth":
        return K.KERNELS[-1], list(reversed(K.KERNELS[:-1]))
    raise ValueError(f"direction must be 'sharpen' or 'smooth', not '{direction}'")


def run_net(model, hu: np.ndarray, stage: int, device: str = "cpu", batch: int = 4,
            progress=None, cancel=None) -> np.ndarray:
    """HU slices [n, h, w] -> HU slices converted by head ``stage`` of a bare ``model`` (no engine: for
    training-time monitoring; card figures come from :func:`evaluate`)."""
    import torch

    out = np.empty(hu.shape, dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(hu), batch):
            if cancel is not None:
                cancel.raise_if_cancelled()
            x = torch.from_numpy(np.ascontiguousarray(hu[start:start + batch], dtype=np.float32) / HU_SCALE)
            y = model.convert(x[:, None].to(device), stage)
            out[start:start + batch] = y[:, 0].float().cpu().numpy() * HU_SCALE
            if progress is not None:
                progress(min(len(hu), start + batch) / len(hu), f"converted {min(len(hu), start + batch)}/{len(hu)} slices")
    return out


def slices_volume(hu: np.ndarray, description: str = "held-out kernel pair"):
    """HU slices [n, h, w] as an axial CT Volume at the pairs' 1.4 mm pixels (what the engines read)."""
    from engines.radiology.geometry import Geometry
    from engines.radiology.reader import Volume

    return Volume(np.asarray(hu, np.float32), Geometry((PIXEL_MM, PIXEL_MM, 2.5)), modality="CT",
                  meta={"series_description": description})


def engine_convert(engine, hu: np.ndarray, direction: str, target: str, **options) -> tuple[np.ndarray, Any]:
    """(converted HU slices, result) of ``engine`` on slices ``hu`` as the user path runs it."""
    result = engine.predict({"volume": slices_volume(hu), "direction": direction, "target": target, **options})
    conv = result.volume
    return np.asarray(conv.real(conv.voxels), np.float32), result


def evaluate(engine, data: dict[str, np.ndarray], direction: str, baselines: Sequence[LinearBaselines] | None = None
             ) -> dict[str, Any]:
    """Per target kernel: mean SSIM and RMSE (HU, inside the field of view) of the identity, the linear
    baselines and (with ``engine``, a KernelConversionEngine) the network on the test split."""
    from engines.radiology_ai.kernel_engine import LinearKernelConversionEngine

    src_k, targets = ladder(direction)
    src = data[f"test/{src_k}"]
    mask = fov_mask(src.shape[-1])
    linear = LinearKernelConversionEngine(fits={direction: dict(zip(targets, baselines))} if baselines else None)
    rows = {}
    for stage, tgt_k in enumerate(targets):
        dst = data[f"test/{tgt_k}"]
        spatial_name = "unsharp masking" if direction == "sharpen" else "Gaussian smoothing"
        preds = {"identity": src,
                 spatial_name: engine_convert(linear, src, direction, tgt_k, method="spatial")[0],
                 "Wiener filter": engine_convert(linear, src, direction, tgt_k, method="wiener")[0]}
        if engine is not None:
            preds["network"] = engine_convert(engine, src, direction, tgt_k)[0]
        row = {}
        for name, pred in preds.items():
            row[name] = {"ssim": round(float(np.mean([ssim_hu(p, y) for p, y in zip(pred, dst)])), 4),
                         "rmse_hu": round(float(np.mean([rmse_hu(p, y, mask) for p, y in zip(pred, dst)])), 2)}
        rows[f"{src_k}->{tgt_k}"] = row
    return rows


def correction_reference(engine, data: dict[str, np.ndarray], direction: str, split: str = "test") -> dict[str, Any]:
    """Per head: percentiles of the network's mean correction |output - input| (HU, body) over the slices
    of ``split``, the reference the engine's out-of-distribution check compares an input with."""
    from engines.core.calibration import ood_reference
    from engines.radiology_ai.kernel_engine import correction_score

    src_k, targets = ladder(direction)
    src = data[f"{split}/{src_k}"]
    out = {}
    for stage, tgt_k in enumerate(targets):
        conv, _ = engine_convert(engine, src, direction, tgt_k)
        scores = [correction_score(c[None], s[None]) for c, s in zip(conv, src)]
        out[f"head{stage}"] = dict(ood_reference(np.asarray(scores), name="mean correction (HU)"),
                                   target=tgt_k, n_slices=len(scores))
    return out


def precision_difference(engine, hu: np.ndarray, direction: str, target: str) -> dict[str, float]:
    """RMS and largest |bfloat16 - float32| (HU, body voxels) of the engine's conversion of slices ``hu``."""
    ref, _ = engine_convert(engine, hu, direction, target, precision="float32")
    fast, _ = engine_convert(engine, hu, direction, target, precision="bfloat16")
    body = np.asarray(hu) > -500
    d = (fast - ref)[body]
    return {"rms_hu": round(float(np.sqrt(np.mean(d ** 2))), 3), "max_hu": round(float(np.abs(d).max()), 2)}


TEST_SAMPLE = {"sharpen": ("hann", "edge"), "smooth": ("edge", "hann")}


def test_sample_scan() -> dict[str, np.ndarray]:
    """The tests' small held-out sample: the real slice 693_UNCI.dcm (never trained on) scanned once more with
    a noise seed no training scan used (1.5e5 photons per ray), reconstructed with every kernel."""
    real = dict(K.real_ct_slices(256))["693_UNCI.dcm"]
    return K.simulate_pair_set(real, np.random.default_rng(424242), K.ScanSettings(photons=1.5e5))


def test_sample_metrics(engine, direction: str, scan: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """RMSE (HU, field of view) and SSIM of the engine's conversion of the test sample, beside the identity's."""
    scan = scan if scan is not None else test_sample_scan()
    src_k, dst_k = TEST_SAMPLE[direction]
    x, y = scan[src_k], scan[dst_k]
    conv, _ = engine_convert(engine, x[None], direction, dst_k)
    mask = fov_mask(x.shape[0])
    return {"pair": f"{src_k}->{dst_k}", "rmse_hu": round(rmse_hu(conv[0], y, mask), 2),
            "ssim": round(ssim_hu(conv[0], y), 4), "identity_rmse_hu": round(rmse_hu(x, y, mask), 2)}


def fit_baselines(data: dict[str, np.ndarray], direction: str) -> list[LinearBaselines]:
    src_k, targets = ladder(direction)
    return [LinearBaselines.fit(data[f"train/{src_k}"], data[f"train/{t}"], direction == "sharpen") for t in targets]
