"""Slide access on the OpenSlide fixtures and on generated pyramids: formats, metadata, clear failures, levels."""
from __future__ import annotations

import numpy as np
import pytest

from engines.core.engine import EngineError
from engines.pathology.slide import open_slide

from .conftest import MARK, bbox_of_dark_blue


@pytest.mark.parametrize("name, vendor, backend", [
    ("boxes.tiff", "generic-tiff", "openslide"),
    ("small.svs", "aperio", "openslide"),
    ("boxes_0.dcm", "dicom", "openslide"),
    ("boxes_1.dcm", "dicom", "openslide"),
    ("boxes.png", "image", "image"),
])
def test_every_fixture_format_opens_and_reads(fixtures_dir, name, vendor, backend):
    with open_slide(fixtures_dir / name) as reader:
        m = reader.metadata
        assert m.vendor == vendor and reader.backend == backend
        assert m.level_count == len(m.level_dimensions) >= 1
        w, h = m.level_dimensions[-1]
        region = reader.read_region((0, 0), m.level_count - 1, (w, h))
        assert region.shape == (h, w, 3) and region.dtype == np.uint8
        thumb, scale = reader.thumbnail(64)
        assert max(thumb.shape[:2]) <= 64 and scale >= 1.0


def test_boxes_tiff_pyramid_levels(fixtures_dir):
    with open_slide(fixtures_dir / "boxes.tiff") as reader:
        assert reader.metadata.level_dimensions == [(300, 250), (150, 125), (75, 62), (37, 31)]
        assert reader.best_level(3.0) == 1 and reader.best_level(100) == 3 and reader.best_level(0.5) == 0


def test_svs_metadata_mpp_objective_and_associated_images(fixtures_dir):
    with open_slide(fixtures_dir / "small.svs") as reader:
        m = reader.metadata
        assert m.mpp == pytest.approx(0.499)
        assert m.objective_power == 20
        assert "thumbnail" in m.associated_images
        assert reader.associated_image("thumbnail").ndim == 3
        assert any(k.startswith("aperio.") for k in m.properties)
        with pytest.raises(EngineError, match="no associated image"):
            reader.associated_image("label")


def test_dicom_wsi_metadata(fixtures_dir):
    with open_slide(fixtures_dir / "boxes_0.dcm") as reader:
        assert reader.metadata.mpp == pytest.approx(0.499)


def test_unreadable_svs_gives_a_clear_message(fixtures_dir):
    with pytest.raises(EngineError, match="opens this slide but cannot read its tiles"):
        open_slide(fixtures_dir / "unreadable.svs")


def test_unopenable_tiff_gives_a_clear_message(fixtures_dir):
    with pytest.raises(EngineError, match="unopenable.tiff: OpenSlide cannot open this slide"):
        open_slide(fixtures_dir / "unopenable.tiff")


def test_non_slide_and_missing_files(fixtures_dir, tmp_path):
    with pytest.raises(EngineError, match="not a slide format"):
        open_slide(fixtures_dir / "README.md")
    with pytest.raises(EngineError, match="no such file"):
        open_slide(tmp_path / "nope.svs")


def test_generated_pyramid_metadata(small_pyramid):
    with open_slide(small_pyramid) as reader:
        m = reader.metadata
        assert m.vendor == "generic-tiff"
        assert m.level_dimensions == [(2048, 1536), (1024, 768), (512, 384), (256, 192)]
        assert m.level_downsamples == [1.0, 2.0, 4.0, 8.0]
        assert m.mpp == pytest.approx(0.5, rel=1e-3)


def test_marker_lands_at_the_same_level0_place_on_every_level(small_pyramid):
    """Coordinates: what level 3 shows at (x, y) * 8 is what level 0 shows at (x, y)."""
    x0, y0, x1, y1 = MARK
    with open_slide(small_pyramid) as reader:
        for level in range(4):
            ds = reader.metadata.level_downsamples[level]
            lw, lh = reader.metadata.level_dimensions[level]
            box = bbox_of_dark_blue(reader.read_region((0, 0), level, (lw, lh)))
            assert box is not None
            got = [v * ds for v in box]
            assert got == pytest.approx([x0, y0, x1, y1], abs=2 * ds + 2), f"level {level}"
        # a level-3 read at a level-0 origin starts at that level-0 point
        region = reader.read_region((x0 - 64, y0 - 64), 3, (64, 64))
        box = bbox_of_dark_blue(region)
        assert box[0] == pytest.approx(8, abs=1) and box[1] == pytest.approx(8, abs=1)
