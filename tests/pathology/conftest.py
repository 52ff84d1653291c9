"""Pathology test helpers: small generated pyramids built from real IHC tissue."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURES = "openslide-fixtures"

# a dark-blue square at known level-0 coordinates, to check where things land at each level
MARK = (1200, 640, 1456, 896)  # x0, y0, x1, y1


@pytest.fixture(scope="session")
def small_pyramid(tmp_path_factory) -> Path:
    """2048 x 1536 tiled JPEG TIFF at 0.5 µm/px, 4 levels, with a marker square at MARK."""
    from engines.pathology.samples import synth_ihc_canvas, write_pyramid_tiff

    canvas, _ = synth_ihc_canvas(2048, 1536, seed=3)
    x0, y0, x1, y1 = MARK
    canvas[y0:y1, x0:x1] = (20, 30, 140)
    path = tmp_path_factory.mktemp("slides") / "small-ihc.tiff"
    write_pyramid_tiff(path, canvas, 0.5, levels=4)
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Real OpenSlide fixtures, committed with the suite in tests/data/openslide-fixtures (with their licence)."""
    return Path(__file__).resolve().parents[1] / "data" / FIXTURES


def bbox_of_dark_blue(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    m = (rgb[..., 2].astype(int) > 100) & (rgb[..., 0] < 70) & (rgb[..., 1] < 80)
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
