"""Slides that declare more pixels than memory holds: sizes are decided from the header, thumbnails of huge
single-level images are read region by region, and what cannot fit is refused in one plain sentence."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from engines.core.engine import EngineError

BUDGET = 16 << 20


@pytest.fixture(scope="module")
def single_level_tiff(tmp_path_factory):
    """4096 x 4096, one level, tiled JPEG (a few hundred KB on disk; 64 MiB as RGBA)."""
    import tifffile

    tile = np.full((256, 256, 3), 240, np.uint8)
    tile[100:150, 100:150] = (20, 30, 140)
    path = tmp_path_factory.mktemp("huge") / "single-level.tiff"
    with tifffile.TiffWriter(path) as tif:
        tif.write((tile for _ in range(16 * 16)), shape=(4096, 4096, 3), dtype=np.uint8, tile=(256, 256),
                  compression="jpeg", photometric="rgb", resolution=(20000, 20000), resolutionunit="CENTIMETER")
    return path


def _png(path, width, height):
    """A 1-bit greyscale PNG of the given size, all black, written row by row (small on disk)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_thumbnail_of_a_huge_single_level_slide_stays_within_the_budget(single_level_tiff, monkeypatch):
    from engines.pathology.slide import open_slide

    monkeypatch.setenv("CSI_MEMORY_BUDGET_BYTES", str(BUDGET))
    reader = open_slide(single_level_tiff)
    requested = []
    real = reader._slide.read_region

    def spy(location, level, size):
        requested.append(size[0] * size[1] * 4)
        return real(location, level, size)

    reader._slide.read_region = spy
    try:
        assert reader.metadata.level_count == 1
        progress = []
        thumb, scale = reader.thumbnail(1024, progress=lambda f, m: progress.append(f))
    finally:
        reader.close()
    assert thumb.shape == (1024, 1024, 3) and scale == pytest.approx(4.0)
    assert max(requested) * 7 / 4 <= BUDGET, max(requested)
    assert progress and progress[-1] == pytest.approx(1.0)
    # the marker squares of the tiles survive the shrinking (tissue is not lost between regions)
    assert (thumb[..., 2].astype(int) - thumb[..., 0] > 60).sum() > 100


def test_a_region_larger_than_the_budget_is_refused_before_decoding(single_level_tiff, monkeypatch):
    from engines.pathology.slide import open_slide

    monkeypatch.setenv("CSI_MEMORY_BUDGET_BYTES", str(BUDGET))
    with open_slide(single_level_tiff) as reader:
        with pytest.raises(EngineError, match=r"single-level.tiff: reading a region of 4,096 x 4,096 pixels would "
                                              r"need 112.0 MiB of memory, more than the 16.0 MiB"):
            reader.read_region((0, 0), 0, (4096, 4096))


def test_decompression_bomb_png_is_one_plain_sentence(tmp_path):
    from engines.pathology.slide import open_slide

    path = _png(tmp_path / "bomb.png", 30000, 30000)  # 900 megapixels, about 100 KB on disk
    with pytest.raises(EngineError, match=r"bomb.png: the image of 900,000,000 pixels is too large to decode as a "
                                          r"plain PNG/JPEG image"):
        open_slide(path)


def test_a_plain_image_beyond_the_budget_is_refused_from_its_header(tmp_path, monkeypatch):
    """100 megapixels: past Pillow's warning limit (no warning escapes), refused by the budget, nothing decoded."""
    from engines.pathology.slide import open_slide

    monkeypatch.setenv("CSI_MEMORY_BUDGET_BYTES", str(BUDGET))
    path = _png(tmp_path / "wide.png", 10000, 10000)
    with pytest.raises(EngineError, match=r"wide.png: decoding this 10,000 x 10,000 pixel image would need"):
        open_slide(path)


def test_the_view_opens_a_huge_single_level_slide(window, qtbot, single_level_tiff, monkeypatch):
    monkeypatch.setenv("CSI_MEMORY_BUDGET_BYTES", str(BUDGET))
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(single_level_tiff)
    canvas = view.canvas
    canvas.cache.max_tiles = 128  # fitted, the single level needs more tiles than the cache holds
    canvas.fit()
    canvas.repaint()
    assert not canvas.loader.pending  # fitted: the thumbnail stands in, no full-resolution tiles queued
    assert canvas.visible_tiles_loaded()
    canvas.set_view(2048, 2048, 1.0)
    canvas.repaint()
    assert canvas.loader.pending  # zoomed in: the few visible tiles are read
