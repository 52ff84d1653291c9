"""Whole-slide access through OpenSlide (every format it reads) and ImageSlide (plain images). No Qt.

Coordinates: level-0 pixels everywhere in the public API unless a name says otherwise. ``read_region``
takes a level-0 origin and a size in pixels of the requested level, as OpenSlide does.
"""
from __future__ import annotations

import math
import re
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.budget import check_allocation, memory_budget
from engines.core.engine import EngineError

BACKGROUND = (255, 255, 255)
THUMBNAIL_REGION_BYTES = 64 << 20  # a thumbnail level bigger than this is read region by region
THUMBNAIL_STEP = 2048  # level pixels per side of one such region (16 MiB of RGBA)


@dataclass
class SlideMetadata:
    """What a pathologist wants to know about a slide before looking at it."""

    path: str
    vendor: str
    dimensions: tuple[int, int]
    level_count: int
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    mpp_x: float | None
    mpp_y: float | None
    objective_power: float | None
    associated_images: list[str]
    properties: dict[str, str] = field(default_factory=dict)
    backend: str = "openslide"  # or "image" (ImageSlide)

    @property
    def mpp(self) -> float | None:
        """Mean microns per level-0 pixel, or None when the file does not say."""
        vals = [v for v in (self.mpp_x, self.mpp_y) if v]
        return float(sum(vals) / len(vals)) if vals else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mpp"] = self.mpp
        return data


def _float(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


class SlideReader:
    """One open slide. Thread-safe: OpenSlide handles are; ImageSlide (PIL) reads are serialised."""

    def __init__(self, path: str | Path) -> None:
        try:
            import openslide
        except ImportError as exc:  # pragma: no cover - openslide-bin is a dependency
            raise EngineError(f"OpenSlide is not available: {exc}") from None
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise EngineError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise EngineError(f"{self.path.name} is a folder; open the slide file inside it "
                              f"(for MRXS the .mrxs file beside its data folder, for DICOM WSI any .dcm of the series)")
        try:
            self._slide = _open(openslide, self.path)
        except EngineError:
            raise
        except (openslide.OpenSlideUnsupportedFormatError, _pil_unidentified()):
            raise EngineError(f"{self.path.name}: not a slide format OpenSlide reads, and not a plain image "
                              f"(SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM WSI, PNG/JPEG)") from None
        except Exception as exc:  # noqa: BLE001 - OpenSlideError, PIL errors, OSError
            raise EngineError(f"{self.path.name}: OpenSlide cannot open this slide ({_short(exc)})") from None
        self.backend = "image" if isinstance(self._slide, openslide.ImageSlide) else "openslide"
        if self.backend == "image":  # a plain image is decoded whole on the first read: check its size now
            w, h = self._slide.dimensions
            bands = len(self._slide._image.getbands()) if getattr(self._slide, "_image", None) else 4
            try:
                check_allocation(w * h * max(bands, 1), f"decoding this {w:,} x {h:,} pixel image", self.path)
            except EngineError:
                self._slide.close()
                raise
        self._lock = threading.Lock() if self.backend == "image" else None
        self._closed = False
        props = dict(self._slide.properties)
        vendor = props.get(openslide.PROPERTY_NAME_VENDOR) or ("image" if self.backend == "image" else "unknown")
        try:
            associated = sorted(self._slide.associated_images.keys())
        except Exception:  # noqa: BLE001 - a broken associated image must not stop the slide opening
            associated = []
        self.metadata = SlideMetadata(
            path=str(self.path), vendor=vendor,
            dimensions=tuple(self._slide.dimensions),
            level_count=int(self._slide.level_count),
            level_dimensions=[tuple(d) for d in self._slide.level_dimensions],
            level_downsamples=[float(d) for d in self._slide.level_downsamples],
            mpp_x=_float(props.get(openslide.PROPERTY_NAME_MPP_X)),
            mpp_y=_float(props.get(openslide.PROPERTY_NAME_MPP_Y)),
            objective_power=_float(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)),
            associated_images=associated, properties=props, backend=self.backend)

    # -- reading ------------------------------------------------------------------------------------
    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 (h, w, 3) of ``size`` pixels at ``level``; ``location`` in level-0 pixels.

        Transparent pixels (outside the scanned area) become white, as on a glass slide.
        """
        if self._closed:
            raise EngineError(f"{self.path.name} is closed")
        if not 0 <= level < self.metadata.level_count:
            raise EngineError(f"{self.path.name} has no level {level} (levels 0-{self.metadata.level_count - 1})")
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            return np.zeros((max(h, 0), max(w, 0), 3), np.uint8)
        # OpenSlide hands back RGBA, converted to RGB here: both exist at once
        check_allocation(w * h * 7, f"reading a region of {w:,} x {h:,} pixels", self.path)
        try:
            if self._lock is not None:
                with self._lock:
                    img = self._slide.read_region((int(location[0]), int(location[1])), level, (w, h))
            else:
                img = self._slide.read_region((int(location[0]), int(location[1])), level, (w, h))
        except Exception as exc:  # noqa: BLE001 - OpenSlideError on corrupt tiles
            raise EngineError(f"{self.path.name}: OpenSlide opens this slide but cannot read its tiles "
                              f"({_short(exc)})") from None
        return _pil_to_rgb(img)

    def thumbnail(self, max_size: int = 1024, *, progress=None, cancel=None) -> tuple[np.ndarray, float]:
        """(RGB thumbnail, level-0 pixels per thumbnail pixel). Read from the smallest level that is big enough.

        Decided from the header: when that level is large (a single-level slide, or a pyramid without small
        levels), it is read region by region and each region shrunk into its place, so memory stays at one
        region whatever the slide declares. ``progress(fraction, message)`` and ``cancel`` (with
        ``raise_if_cancelled``) are for those long reads.
        """
        from PIL import Image

        w0, h0 = self.metadata.dimensions
        scale = max(w0, h0) / float(max_size)
        scale = max(scale, 1.0)
        level = self.best_level(scale)
        lw, lh = self.metadata.level_dimensions[level]
        tw, th = max(1, round(w0 / scale)), max(1, round(h0 / scale))
        check_allocation(tw * th * 3 * 2, f"a {tw:,} x {th:,} thumbnail", self.path)
        budget = memory_budget()
        if lw * lh * 4 <= min(THUMBNAIL_REGION_BYTES, budget // 8):
            region = self.read_region((0, 0), level, (lw, lh))
            if (lw, lh) != (tw, th):
                region = np.asarray(Image.fromarray(region).resize((tw, th), Image.BILINEAR))
            return region, w0 / tw
        ds = self.metadata.level_downsamples[level]
        out = Image.new("RGB", (tw, th), BACKGROUND)
        # regions of at most an eighth of the budget each (read_region holds RGBA and RGB: 7 bytes a pixel)
        step = max(256, min(THUMBNAIL_STEP, int(math.sqrt(budget / 56)) // 256 * 256))
        cols, rows = range(0, lw, step), range(0, lh, step)
        total, done = len(cols) * len(rows), 0
        for y in rows:
            ty0, ty1 = round(y * th / lh), round(min(y + step, lh) * th / lh)
            for x in cols:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                tx0, tx1 = round(x * tw / lw), round(min(x + step, lw) * tw / lw)
                done += 1
                if tx1 <= tx0 or ty1 <= ty0:
                    continue
                w, h = min(step, lw - x), min(step, lh - y)
                part = self.read_region((int(round(x * ds)), int(round(y * ds))), level, (w, h))
                out.paste(Image.fromarray(part).resize((tx1 - tx0, ty1 - ty0), Image.BOX), (tx0, ty0))
                if progress is not None and done % 16 == 0:
                    progress(done / total, f"reading the thumbnail of {self.path.name} ({done:,}/{total:,} regions)")
        return np.asarray(out), w0 / tw

    def best_level(self, downsample: float) -> int:
        """The highest-resolution level whose downsample is <= ``downsample`` (OpenSlide's rule, no resampling up)."""
        best = 0
        for i, d in enumerate(self.metadata.level_downsamples):
            if d <= downsample * 1.0001:
                best = i
        return best

    def associated_image(self, name: str) -> np.ndarray:
        try:
            img = self._slide.associated_images[name]
        except KeyError:
            raise EngineError(f"{self.path.name} has no associated image '{name}'") from None
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"{self.path.name}: cannot read the associated image '{name}' ({_short(exc)})") from None
        return _flatten_rgba(np.asarray(img.convert("RGBA")))

    def check_readable(self) -> None:
        """Read a little from every level: a slide whose header parses but whose tiles do not fails here."""
        for level, (w, h) in enumerate(self.metadata.level_dimensions):
            self.read_region((0, 0), level, (min(w, 64), min(h, 64)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._slide.close()

    def __enter__(self) -> "SlideReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open(openslide, path: Path):
    """OpenSlide for slide formats, else a plain image through Pillow, whose decompression-bomb limit becomes
    one plain sentence (the size check against the memory budget follows in SlideReader)."""
    from PIL import Image

    if openslide.OpenSlide.detect_format(str(path)) is not None:
        return openslide.OpenSlide(str(path))
    try:
        with warnings.catch_warnings():
            # between Pillow's warning and error limits the memory budget decides, not a warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return openslide.ImageSlide(str(path))
    except Image.DecompressionBombError as exc:
        found = re.findall(r"\d+", str(exc))
        size = f" of {int(found[0]):,} pixels" if found else ""
        raise EngineError(f"{path.name}: the image{size} is too large to decode as a plain PNG/JPEG image; "
                          f"save it as a tiled, pyramidal TIFF (or another slide format) to open it") from None


def open_slide(path: str | Path, check: bool = True) -> SlideReader:
    """Open a slide (or a plain image) and, by default, check that its pixels decode."""
    reader = SlideReader(path)
    if check:
        try:
            reader.check_readable()
        except EngineError:
            reader.close()
            raise
    return reader


def _pil_unidentified():
    from PIL import UnidentifiedImageError

    return UnidentifiedImageError


def _pil_to_rgb(img) -> np.ndarray:
    """RGB uint8 from OpenSlide's RGBA image, transparent areas composited on white (in C, via Pillow)."""
    from PIL import Image

    if img.mode == "RGB":
        return np.asarray(img)
    if img.mode != "RGBA":
        return np.asarray(img.convert("RGB"))
    alpha = img.getchannel("A")
    if alpha.getextrema()[0] == 255:
        return np.asarray(img.convert("RGB"))
    out = Image.new("RGB", img.size, BACKGROUND)
    out.paste(img, mask=alpha)
    return np.asarray(out)


def _flatten_rgba(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2).astype(np.uint8)
    if arr.shape[2] == 3:
        return np.ascontiguousarray(arr, dtype=np.uint8)
    rgb = arr[:, :, :3].astype(np.uint16)
    alpha = arr[:, :, 3:4].astype(np.uint16)
    if alpha.min() == 255:
        return np.ascontiguousarray(arr[:, :, :3])
    bg = np.array(BACKGROUND, np.uint16)
    # OpenSlide returns premultiplied ARGB un-premultiplied by Pillow; composite onto white
    out = (rgb * alpha + bg * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
