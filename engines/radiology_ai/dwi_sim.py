"""Simulated diffusion-weighted MR (b=1000-like) with infarct-like lesions, built on real anatomy.

The anatomy is nilearn's MNI152 2009 template (a real averaged brain MR, 2 mm) with its grey-matter and
white-matter maps, shipped inside the nilearn wheel (no download). Each simulated subject:

* a random rigid-plus-scale pose (rotation up to 10 deg about the axial axis, 4 deg about the others, scale
  0.9-1.1, shift up to 6 mm), resampled onto a 96 x 96 x 56 grid of 2.4 x 2.4 x 2.5 mm (axial slices);
* DWI-like contrast: grey matter 1.0, white matter 0.78, CSF 0.22, with a little texture from the T1;
* 0-4 lesions: irregular blobs (an ellipsoid of radii 3-16 mm, random orientation, its boundary roughened by
  smoothed noise) inside the parenchyma, 1.35-2.6 times brighter than the tissue;
* a smooth multiplicative bias field (up to +-25%) and Rician noise (SD 3-8% of grey matter).

Subjects are reproducible from their seed; training uses seeds 0..N-1, the held-out set seeds 1000+.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SHAPE_KJI = (56, 96, 96)
SPACING_IJK = (2.4, 2.4, 2.5)  # mm, (x, y, z)
Z0_MM = -48.0  # MNI z of the first slice


@dataclass
class Subject:
    dwi: np.ndarray  # [k, j, i] float32, arbitrary units (grey matter ~ 1)
    lesions: np.ndarray  # [k, j, i] uint8, 1 = lesion
    affine_ras: np.ndarray  # voxel (i, j, k) -> RAS mm (NIfTI convention)
    n_lesions: int
    seed: int


@lru_cache(maxsize=1)
def anatomy() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t1, gm, wm, brain mask, affine) of MNI152 at 2 mm, arrays [x, y, z] float32."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=2)
    gm = datasets.load_mni152_gm_template(resolution=2)
    wm = datasets.load_mni152_wm_template(resolution=2)
    mask = datasets.load_mni152_brain_mask(resolution=2)
    arrs = [np.asarray(img.dataobj, dtype=np.float32) for img in (t1, gm, wm, mask)]
    return (*arrs, np.asarray(t1.affine, dtype=float))


def output_affine() -> np.ndarray:
    """Voxel (i, j, k) of the output grid -> RAS mm, centred on the brain."""
    aff = np.diag([SPACING_IJK[0], SPACING_IJK[1], SPACING_IJK[2], 1.0])
    aff[:3, 3] = [-(SHAPE_KJI[2] - 1) / 2 * SPACING_IJK[0], -(SHAPE_KJI[1] - 1) / 2 * SPACING_IJK[1] - 18.0, Z0_MM]
    return aff


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_noise(shape, sigma, rng) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return f / (f.std() + 1e-8)


def simulate_subject(seed: int, max_lesions: int = 4) -> Subject:
    from scipy.ndimage import affine_transform, gaussian_filter

    rng = np.random.default_rng(seed)
    t1, gm, wm, mask, src_aff = anatomy()
    out_aff = output_affine()
    # pose: output RAS -> (rotate/scale about the brain centre) -> template RAS -> template voxel
    deg = np.pi / 180
    R = _rotation(rng.uniform(-4, 4) * deg, rng.uniform(-4, 4) * deg, rng.uniform(-10, 10) * deg)
    scale = rng.uniform(0.9, 1.1)
    centre = np.array([0.0, -18.0, 18.0])
    shift = rng.uniform(-6, 6, 3)
    pose = np.eye(4)
    pose[:3, :3] = R / scale
    pose[:3, 3] = centre - R @ centre / scale + shift
    m = np.linalg.inv(src_aff) @ pose @ out_aff  # output voxel (i,j,k) -> template voxel (x,y,z)
    out_shape_ijk = SHAPE_KJI[::-1]

    def warp(a, order=1):
        return affine_transform(a, m[:3, :3], m[:3, 3], output_shape=out_shape_ijk, order=order, cval=0.0)

    g, w, b = warp(gm), warp(wm), warp(mask)
    t = warp(t1)
    csf = np.clip(b - g - w, 0, 1)
    tex = t / (np.percentile(t[b > 0.5], 99) + 1e-6) - gaussian_filter(t, 2) / (np.percentile(t[b > 0.5], 99) + 1e-6)
    dwi = (1.0 * g + 0.78 * w + 0.22 * csf) * b + 0.15 * tex * b
    parenchyma = (g + w > 0.6) & (b > 0.5)
    lesions = np.zeros(out_shape_ijk, dtype=np.uint8)
    n_les = int(rng.integers(0, max_lesions + 1)) if rng.random() > 0.1 else 0
    n_les = max(n_les, 1) if rng.random() < 0.8 else n_les
    placed = 0
    cand = np.argwhere(parenchyma)
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in out_shape_ijk], indexing="ij")
    for _ in range(n_les):
        c = cand[rng.integers(len(cand))]
        radii_mm = rng.uniform(3, 16) * rng.uniform(0.6, 1.0, 3)
        radii = radii_mm / np.asarray(SPACING_IJK)
        Rl = _rotation(*rng.uniform(0, np.pi, 3))
        pad = int(np.ceil(radii.max() * 1.6)) + 2
        lo = np.maximum(c - pad, 0)
        hi = np.minimum(c + pad + 1, out_shape_ijk)
        sl = tuple(slice(a, z) for a, z in zip(lo, hi))
        d = np.stack([ii[sl] - c[0], jj[sl] - c[1], kk[sl] - c[2]], -1).astype(np.float32)
        u = d @ Rl
        r = np.sqrt(((u / radii) ** 2).sum(-1))
        rough = _smooth_noise(r.shape, 1.5, rng) * rng.uniform(0.1, 0.3)
        blob = (r + rough < 1.0) & parenchyma[sl]
        if blob.sum() < 4:
            continue
        contrast = rng.uniform(1.35, 2.6)
        soft = gaussian_filter(blob.astype(np.float32), 0.6)
        dwi[sl] = dwi[sl] * (1 + (contrast - 1) * soft)
        lesions[sl][blob] = 1
        placed += 1
    bias = np.exp(0.25 * np.tanh(_smooth_noise(out_shape_ijk, 18, rng)))
    dwi = dwi * bias
    sd = rng.uniform(0.03, 0.08)
    dwi = np.sqrt((dwi + rng.normal(0, sd, dwi.shape)) ** 2 + rng.normal(0, sd, dwi.shape) ** 2)
    kji = lambda a: np.ascontiguousarray(np.transpose(a, (2, 1, 0)))  # noqa: E731
    return Subject(kji(dwi).astype(np.float32), kji(lesions), out_aff, placed, seed)


def normalise(volume: np.ndarray) -> np.ndarray:
    """Per-volume intensity normalisation used in training and inference (99th percentile of the head -> 1)."""
    v = np.asarray(volume, dtype=np.float32)
    fg = v[v > 0.1 * float(v.max() or 1.0)]
    scale = float(np.percentile(fg, 99)) if fg.size else float(v.max() or 1.0)
    return v / (scale or 1.0)


def lesion_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice, lesions found / lesions, false-positive components (3-D, 26-connected) of one volume."""
    from scipy import ndimage

    pred, truth = pred > 0, truth > 0
    inter = float(np.sum(pred & truth))
    denom = float(pred.sum() + truth.sum())
    dice = 2 * inter / denom if denom else 1.0
    st = np.ones((3, 3, 3))
    lt, nt = ndimage.label(truth, st)
    lp, np_ = ndimage.label(pred, st)
    found = sum(1 for n in range(1, nt + 1) if pred[lt == n].any())
    fp = sum(1 for n in range(1, np_ + 1) if not truth[lp == n].any())
    return {"dice": dice, "lesions": nt, "found": found, "false_positives": fp}
