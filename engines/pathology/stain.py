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
