"""Colour deconvolution (Ruifrok & Johnston, through skimage.color.rgb2hed) and stain jitter. No Qt, no torch.

The C4d engine's AI-assisted labelling starts here: the DAB channel proposes positive structures, which are
cleaned into label masks and enlarged for training (seed 5.1: "enlarging mask and AI-assisted labeling").
"""
from __future__ import annotations

import numpy as np

#: DAB optical density above which a pixel is called positive by the plain deconvolution threshold
DAB_THRESHOLD = 0.08
#: the smallest positive structure kept, in µm² (smaller specks are staining noise)
MIN_AREA_UM2 = 30.0


def dab_density(rgb: np.ndarray) -> np.ndarray:
    """DAB optical density (float32, >= 0) of an RGB uint8 image."""
    from skimage.color import rgb2hed

    return np.clip(rgb2hed(rgb)[..., 2], 0, None).astype(np.float32)


def propose_dab_mask(rgb: np.ndarray, mpp: float, threshold: float = DAB_THRESHOLD,
                     min_area_um2: float = MIN_AREA_UM2) -> np.ndarray:
    """The plain deconvolution proposal: smoothed DAB > threshold, opened, small specks removed."""
    from scipy import ndimage

    dab = ndimage.gaussian_filter(dab_density(rgb), 1.0)
    mask = dab > threshold
    mask = ndimage.binary_opening(mask, iterations=1)
    return remove_small(mask, max(1, int(round(min_area_um2 / (mpp * mpp)))))


def remove_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def enlarge_mask(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """The authors' enlarged mask: a thin positive ring becomes a band the network can learn."""
    from scipy import ndimage

    if radius <= 0:
        return mask
    return ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(2, 1), iterations=radius)


def stain_jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float = 0.25) -> np.ndarray:
    """Scale and shift each stain's optical density (H, E, DAB): another lab's staining, same tissue.

    Works in optical density with skimage's Ruifrok-Johnston matrices; strength 0 returns the input exactly.
    """
    from skimage.color import hed_from_rgb, rgb_from_hed

    od = -np.log((rgb.astype(np.float32) + 1.0) / 256.0)
    hed = od @ hed_from_rgb.astype(np.float32)
    alpha = rng.uniform(1 - strength, 1 + strength, 3).astype(np.float32)
    beta = (rng.uniform(-0.02, 0.02, 3) * strength).astype(np.float32)
    hed = hed * alpha + beta
    od2 = hed @ rgb_from_hed.astype(np.float32)
    out = 256.0 * np.exp(-od2) - 1.0
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# -- the stain contract of the C4d detectors -----------------------------------------------------------
#: a pixel counts as stained when its optical densities (R + G + B) sum above this (glass is near 0)
STAINED_OD = 0.45
#: DAB (brown) absorbs blue most: its optical-density vector (Ruifrok & Johnston) has B/G = 1.37, while
#: hematoxylin (0.41) and eosin (0.70, Macenko's reference H&E vectors) stay well below 1
BROWN_BLUE_OVER_GREEN = 1.15
#: eosin (pink) absorbs green and little red: R/G = 0.27 (eosin) against 0.78-0.93 (hematoxylin)
EOSIN_RED_OVER_GREEN = 0.7
MIN_STAINED_PIXELS = 20
MIN_BROWN_FRACTION = 0.01
MIN_EOSIN_FRACTION = 0.10


def stain_profile(rgb: np.ndarray) -> dict[str, float]:
    """What the stained pixels of an RGB image are made of: their number and the fractions that are
    DAB-brown and eosin-pink, judged from each pixel's optical-density vector (Beer-Lambert)."""
    od = -np.log((np.asarray(rgb, np.float32).reshape(-1, 3)[:, :3] + 1.0) / 256.0)
    od = od[od.sum(axis=1) > STAINED_OD]
    if len(od) == 0:
        return {"stained_pixels": 0, "brown_fraction": 0.0, "eosin_fraction": 0.0}
    r, g, b = od[:, 0], od[:, 1], od[:, 2]
    brown = (b > BROWN_BLUE_OVER_GREEN * g) & (b > r) & (b > 0.2)
    eosin = (r < EOSIN_RED_OVER_GREEN * g) & (b < g)
    return {"stained_pixels": int(len(od)), "brown_fraction": float(brown.mean()),
            "eosin_fraction": float(eosin.mean())}


def check_dab_stain(rgb: np.ndarray, checks, name: str = "slide") -> dict[str, float]:
    """The C4d detectors' stain contract on a slide's thumbnail: DAB present passes; H&E (eosin, no brown) is
    refused; neither (too little tissue, counterstain only) is a warning. Adds one "stain" check."""
    p = stain_profile(rgb)
    brown, eosin = p["brown_fraction"], p["eosin_fraction"]
    if p["stained_pixels"] < MIN_STAINED_PIXELS:
        checks.warn("stain", f"{name}: too little stained tissue on the thumbnail ({p['stained_pixels']} pixels) to "
                             f"confirm a DAB (brown) immunostain; the C4d detector was trained on DAB "
                             f"immunohistochemistry")
    elif brown >= MIN_BROWN_FRACTION:
        checks.passed("stain", f"DAB (brown) staining in {100 * brown:.1f}% of the stained tissue")
    elif eosin >= MIN_EOSIN_FRACTION:
        checks.refuse("stain", f"{name}: this looks like an H&E stain with no DAB (brown) component "
                               f"({100 * eosin:.0f}% of the stained tissue is eosin-pink, {100 * brown:.1f}% "
                               f"brown); the C4d detector was trained on DAB immunohistochemistry, and on H&E "
                               f"it would count eosin as C4d. Open the C4d (DAB) stained section instead.")
    else:
        checks.warn("stain", f"{name}: no DAB (brown) staining found ({100 * brown:.1f}% of the stained tissue): "
                             f"either a C4d-negative section or not a DAB immunostain; the C4d detector was "
                             f"trained on DAB immunohistochemistry")
    return p
