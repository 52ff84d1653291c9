"""Opening images for VQA: huge declared sizes and damaged files are one plain sentence naming the file."""
from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image

from engines.core.engine import EngineError
from engines.textvqa.vqa_engine import read_image


def _png_header_only(path, width: int, height: int):
    """A PNG whose header declares ``width`` x ``height`` (no pixel data needed to trip the size checks)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [
    (20_000, 20_000),  # beyond PIL's own limit: DecompressionBombError
    (12_000, 8_000),   # PIL only warns (DecompressionBombWarning)
    (10_000, 6_000),   # under PIL's limits, over this workspace's
])
def test_an_image_declaring_a_huge_size_is_refused_in_one_sentence(tmp_path, width, height):
    assert width * height > 50_000_000
    path = _png_header_only(tmp_path / "huge scan.png", width, height)
    with pytest.raises(EngineError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith("huge scan.png declares an image too large to open safely")
    assert "Decompression" not in message and "\n" not in message


def test_damaged_and_unknown_files_name_the_problem_not_the_exception(tmp_path):
    good = tmp_path / "scene.png"
    Image.new("RGB", (64, 64), (120, 120, 120)).save(good)
    assert read_image(good).shape == (64, 64, 3)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(EngineError, match=r"^cut.png is not an image this workspace can read \(the file is damaged"):
        read_image(cut)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(EngineError) as info:
        read_image(text)
    assert str(info.value) == "notes.png is not an image this workspace can read (not a known image format)"
