"""Where the slide viewer looks and what it must read to show it: the viewport, the pyramid's tile maths and the
level-of-detail rules for drawing many objects. Pure numpy, no Qt: the canvas draws what these functions choose,
and a test or a script drives the same navigation with no screen.

Coordinates are level-0 pixels. The viewport keeps a level-0 centre and a scale in screen pixels per level-0
pixel; the level read from the pyramid is the finest one whose downsample does not exceed 1 / scale (OpenSlide's
rule: never read more pixels than the screen shows, never resample up from a coarser level).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Container, Protocol, Sequence

import numpy as np
from psygnal import Signal

TILE = 256  # pixels of a level per cached tile (the tile size of most pyramids)
MAX_SCALE = 4.0  # screen px per level-0 px at the deepest zoom
MIN_SCALE_OF_FIT = 0.25  # the furthest zoom out, as a fraction of the scale that fits the slide

TileKey = tuple[int, int, int]  # (level, column, row)
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in level-0 pixels


class Pyramid(Protocol):
    """What the tile maths needs from a slide's metadata (``engines.pathology.slide.SlideMetadata`` has it)."""

    dimensions: tuple[int, int]
    level_count: int
    level_dimensions: Sequence[tuple[int, int]]
    level_downsamples: Sequence[float]
    mpp: float | None
    objective_power: float | None


# -- levels and tiles ----------------------------------------------------------------------------------------
def best_level(downsamples: Sequence[float], downsample: float) -> int:
    """The highest-resolution level whose downsample is <= ``downsample`` (0 when none is)."""
    best = 0
    for i, d in enumerate(downsamples):
        if d <= downsample * 1.0001:
            best = i
    return best


def tile_rect0(meta: Pyramid, level: int, col: int, row: int) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of a tile: its level-0 origin and its size in pixels of its level (edge tiles are smaller)."""
    ds = meta.level_downsamples[level]
    lw, lh = meta.level_dimensions[level]
    w = min(TILE, lw - col * TILE)
    h = min(TILE, lh - row * TILE)
    return int(round(col * TILE * ds)), int(round(row * TILE * ds)), w, h


def tiles_for(meta: Pyramid, level: int, rect0: Rect, ring: int = 0) -> list[TileKey]:
    """The tiles of ``level`` that meet ``rect0``, row by row, widened by ``ring`` tiles on every side."""
    ds = meta.level_downsamples[level]
    lw, lh = meta.level_dimensions[level]
    ncol, nrow = math.ceil(lw / TILE), math.ceil(lh / TILE)
    c0 = max(0, int(rect0[0] / ds // TILE) - ring)
    r0 = max(0, int(rect0[1] / ds // TILE) - ring)
    c1 = min(ncol - 1, int(rect0[2] / ds // TILE) + ring)
    r1 = min(nrow - 1, int(rect0[3] / ds // TILE) + ring)
    return [(level, c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]


@dataclass(frozen=True)
class TilePlan:
    """What to read for one view: the visible tiles, the missing ones nearest the centre first, and the prefetch
    (a ring around the view and the next coarser level) that is read only once nothing visible is missing."""

    level: int
    visible: list[TileKey]
    missing: list[TileKey]
    prefetch: list[TileKey]
    skipped: bool  # too many tiles at this level: the thumbnail stands in until the user zooms in

    @property
    def wanted(self) -> set[TileKey]:
        """Every tile still worth reading if it is queued already."""
        return set(self.visible) | set(self.prefetch)


def plan_tiles(meta: Pyramid, level: int, rect0: Rect, centre: tuple[float, float],
               cached: Container[TileKey], *, prefetch: bool = True, limit: int | None = None) -> TilePlan:
    """The tiles to request for the view ``rect0`` at ``level``; ``cached`` answers ``key in cached``.

    More visible tiles than ``limit`` (a slide without a small enough level, one huge level) plans nothing:
    queueing tens of thousands of full-resolution tiles would never finish.
    """
    visible = tiles_for(meta, level, rect0)
    if limit is not None and len(visible) > limit:
        return TilePlan(level, visible, [], [], True)
    ds = meta.level_downsamples[level]
    cx, cy = centre

    def dist(k: TileKey) -> float:
        return abs((k[1] + 0.5) * TILE * ds - cx) + abs((k[2] + 0.5) * TILE * ds - cy)

    missing = sorted((k for k in visible if k not in cached), key=dist)
    extra: list[TileKey] = []
    if prefetch:
        shown = set(visible)
        coarser = tiles_for(meta, level + 1, rect0) if level + 1 < meta.level_count else []
        ring = [k for k in tiles_for(meta, level, rect0, ring=1) if k not in shown]
        extra = [k for k in coarser + ring if k not in cached]
    return TilePlan(level, visible, missing, extra, False)


# -- the viewport ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewTransform:
    """Level-0 <-> screen for one frame: ``screen = (level0 - centre) * scale + size / 2``."""

    cx: float
    cy: float
    scale: float
    width: int
    height: int

    def to_screen(self, x, y):
        return (x - self.cx) * self.scale + self.width / 2, (y - self.cy) * self.scale + self.height / 2

    def to_level0(self, sx: float, sy: float) -> tuple[float, float]:
        return (sx - self.width / 2) / self.scale + self.cx, (sy - self.height / 2) / self.scale + self.cy

    def visible_level0(self) -> Rect:
        x0, y0 = self.to_level0(0, 0)
        x1, y1 = self.to_level0(self.width, self.height)
        return x0, y0, x1, y1

    def offset(self) -> tuple[float, float]:
        """Screen position of level-0 (0, 0): with ``scale`` the affine map a painter applies."""
        return self.width / 2 - self.cx * self.scale, self.height / 2 - self.cy * self.scale


class Viewport:
    """The view of one slide: centre, scale (screen px per level-0 px) and screen size; evented (``changed``).

    The level to read, the microns per screen pixel and the objective-equivalent magnification (10x is 1 µm per
    screen pixel) follow from these. Without a slide every navigation call is a no-op.
    """

    changed = Signal()

    def __init__(self, width: int = 800, height: int = 600) -> None:
        self.meta: Pyramid | None = None
        self.width, self.height = max(1, int(width)), max(1, int(height))
        self.cx = self.cy = 0.0
        self.scale = 1.0

    # -- state ----------------------------------------------------------------------------------------------
    def set_slide(self, meta: Pyramid | None) -> None:
        """Show this slide (None: nothing) fitted to the screen."""
        self.meta = meta
        if meta is None:
            self.cx = self.cy = 0.0
            self.scale = 1.0
            self.changed.emit()
        else:
            self.fit()

    def resize(self, width: int, height: int) -> None:
        """The screen size changed; the centre and scale stay."""
        width, height = max(1, int(width)), max(1, int(height))
        if (width, height) != (self.width, self.height):
            self.width, self.height = width, height
            self.changed.emit()

    def transform(self) -> ViewTransform:
        return ViewTransform(self.cx, self.cy, self.scale, self.width, self.height)

    def visible_level0(self) -> Rect:
        return self.transform().visible_level0()

    # -- navigation -----------------------------------------------------------------------------------------
    def fit_scale(self) -> float:
        if self.meta is None:
            return 1.0
        w0, h0 = self.meta.dimensions
        return min(self.width / w0, self.height / h0) * 0.95

    def clamp_scale(self, scale: float) -> float:
        return float(np.clip(scale, self.fit_scale() * MIN_SCALE_OF_FIT, MAX_SCALE))

    def fit(self) -> None:
        if self.meta is None:
            return
        w0, h0 = self.meta.dimensions
        self.cx, self.cy = w0 / 2, h0 / 2
        self.scale = self.fit_scale()
        self.changed.emit()

    def set_view(self, cx: float, cy: float, scale: float | None = None) -> None:
        """Centre on level-0 (cx, cy), at ``scale`` when given (clamped to the zoom range)."""
        if scale is not None:
            self.scale = self.clamp_scale(scale)
        self.cx, self.cy = float(cx), float(cy)
        self._clamp()
        self.changed.emit()

    def zoom_by(self, factor: float, anchor: tuple[float, float] | None = None) -> None:
        """Zoom by ``factor`` keeping the level-0 point under the screen point ``anchor`` (default: centre) still."""
        if self.meta is None:
            return
        t = self.transform()
        ax, ay = anchor if anchor is not None else (t.width / 2, t.height / 2)
        x0, y0 = t.to_level0(ax, ay)
        new = self.clamp_scale(self.scale * factor)
        self.scale = new
        self.cx = x0 - (ax - t.width / 2) / new
        self.cy = y0 - (ay - t.height / 2) / new
        self._clamp()
        self.changed.emit()

    def pan_by(self, dx_screen: float, dy_screen: float) -> None:
        """Move the picture by a screen distance (the centre moves the other way)."""
        if self.meta is None:
            return
        self.cx -= dx_screen / self.scale
        self.cy -= dy_screen / self.scale
        self._clamp()
        self.changed.emit()

    def _clamp(self) -> None:
        if self.meta is None:
            return
        w0, h0 = self.meta.dimensions
        self.cx = float(np.clip(self.cx, 0, w0))
        self.cy = float(np.clip(self.cy, 0, h0))

    # -- resolution -----------------------------------------------------------------------------------------
    @property
    def level(self) -> int:
        """The pyramid level drawn at this scale."""
        if self.meta is None:
            return 0
        return best_level(self.meta.level_downsamples, 1.0 / self.scale)

    def screen_mpp(self) -> float | None:
        """Microns per screen pixel, or None when the slide has no resolution."""
        if self.meta is None or not self.meta.mpp:
            return None
        return self.meta.mpp / self.scale

    def magnification(self) -> float | None:
        """Objective-equivalent magnification on screen (10x is 1 µm per screen pixel)."""
        mpp = self.screen_mpp()
        if mpp:
            return 10.0 / mpp
        if self.meta is not None and self.meta.objective_power:
            return self.meta.objective_power * self.scale
        return None

    def scale_for_magnification(self, mag: float) -> float | None:
        if self.meta is None:
            return None
        if self.meta.mpp:
            return self.meta.mpp * mag / 10.0
        if self.meta.objective_power:
            return mag / self.meta.objective_power
        return None

    def zoom_to_magnification(self, mag: float) -> None:
        """Objective-equivalent ``mag`` at the same centre; a slide with neither resolution nor objective power
        takes ``mag`` as a fraction of 40x at level 0."""
        scale = self.scale_for_magnification(mag)
        self.set_view(self.cx, self.cy, scale if scale is not None else mag / 40.0)

    def set_screen_mpp(self, mpp: float) -> None:
        """Zoom so that one screen pixel covers ``mpp`` microns (needs a slide with a resolution)."""
        if self.meta is None or not self.meta.mpp or mpp <= 0:
            raise ValueError("this slide has no resolution in microns per pixel")
        self.set_view(self.cx, self.cy, self.meta.mpp / mpp)

    # -- tiles ----------------------------------------------------------------------------------------------
    def visible_tiles(self, level: int | None = None) -> list[TileKey]:
        if self.meta is None:
            return []
        return tiles_for(self.meta, self.level if level is None else level, self.visible_level0())

    def plan(self, cached: Container[TileKey], *, prefetch: bool = True, limit: int | None = None) -> TilePlan:
        """The tiles to request now (see :func:`plan_tiles`)."""
        if self.meta is None:
            return TilePlan(0, [], [], [], False)
        return plan_tiles(self.meta, self.level, self.visible_level0(), (self.cx, self.cy), cached,
                          prefetch=prefetch, limit=limit)


# -- drawing many things: which rows are in view, and how to draw them -----------------------------------------
def boxes_meeting(boxes: np.ndarray, rect0: Rect) -> np.ndarray:
    """Rows of (n, 4) boxes x0, y0, x1, y1 that meet ``rect0`` (NaN boxes never do)."""
    with np.errstate(invalid="ignore"):
        vis = (boxes[:, 2] >= rect0[0]) & (boxes[:, 0] <= rect0[2]) & (boxes[:, 3] >= rect0[1]) & \
              (boxes[:, 1] <= rect0[3])
    return np.flatnonzero(vis)


def detection_mode(n_visible: int, size_px: float, *, density_above: int, outline_below: int,
                   has_outlines: bool) -> str:
    """How to draw ``n_visible`` objects of median on-screen size ``size_px``: "none", "density" (too many or
    too small to tell apart), "outlines" (few and large) or "boxes"."""
    if n_visible == 0:
        return "none"
    if n_visible > density_above or size_px < 2.5:
        return "density"
    if n_visible <= outline_below and size_px >= 10 and has_outlines:
        return "outlines"
    return "boxes"


def point_density(sx: np.ndarray, sy: np.ndarray, width: int, height: int, cell: int = 4) -> np.ndarray:
    """(gh, gw) counts of screen points per ``cell`` x ``cell`` pixel cell, whatever their number."""
    gw, gh = max(1, width // cell + 1), max(1, height // cell + 1)
    gx = np.clip((np.asarray(sx) // cell).astype(np.int64), 0, gw - 1)
    gy = np.clip((np.asarray(sy) // cell).astype(np.int64), 0, gh - 1)
    return np.bincount(gy * gw + gx, minlength=gw * gh).reshape(gh, gw)


def density_rgba(counts: np.ndarray, rgb: tuple[int, int, int], slope: float = 35.0) -> np.ndarray:
    """A translucent RGBA picture of per-cell counts: empty cells clear, more objects more opaque (log scale)."""
    rgba = np.zeros(counts.shape + (4,), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = rgb
    rgba[..., 3] = np.where(counts > 0, np.clip(80 + slope * np.log2(np.maximum(counts, 1)), 0, 210), 0)
    return rgba


def heatmap_rgba(values: np.ndarray, lut: np.ndarray, opacity: float, threshold: float) -> np.ndarray:
    """RGBA of a [0, 1] raster through a (256, 3) colour table; NaN and values under ``threshold`` are clear."""
    v = np.nan_to_num(values, nan=-1.0)
    idx = np.clip(v * 255, 0, 255).astype(np.uint8)
    rgba = np.empty(values.shape + (4,), np.uint8)
    rgba[..., :3] = lut[idx]
    show = (v >= 0) & (v >= threshold)
    rgba[..., 3] = np.where(show, int(round(255 * opacity)), 0)
    return rgba


def raster_window(shape: tuple[int, int], cell: float, origin: tuple[float, float],
                  rect0: Rect) -> tuple[int, int, int, int] | None:
    """(c0, r0, c1, r1): the cells of a raster that meet ``rect0``, one more on each far side; None if none do.
    Scaling only these is what keeps a heatmap over a 40,000-pixel slide cheap to draw."""
    rows, cols = shape
    c0 = max(0, int((rect0[0] - origin[0]) // cell))
    r0 = max(0, int((rect0[1] - origin[1]) // cell))
    c1 = min(cols, int(math.ceil((rect0[2] - origin[0]) / cell)) + 1)
    r1 = min(rows, int(math.ceil((rect0[3] - origin[1]) / cell)) + 1)
    if c1 <= c0 or r1 <= r0:
        return None
    return c0, r0, c1, r1


def nice_length(value: float) -> tuple[float, str]:
    """The largest 1-2-5 length <= value, and its label in µm or mm (for a scale bar)."""
    if value <= 0:
        return 1.0, "1 µm"
    exp = math.floor(math.log10(value))
    best = 10 ** exp
    for m in (1, 2, 5):
        if m * 10 ** exp <= value:
            best = m * 10 ** exp
    if best >= 1000:
        return best, f"{best / 1000:g} mm"
    return best, f"{best:g} µm"


def scale_bar(t: ViewTransform, mpp0: float | None, target_px: float = 140) -> tuple[float, str]:
    """(length in screen pixels, label) of a scale bar near ``target_px`` long; in pixels when there is no mpp."""
    if mpp0:
        mpp = mpp0 / t.scale
        length, label = nice_length(target_px * mpp)
        return length / mpp, label
    length, label = nice_length(target_px / t.scale)
    return length * t.scale, f"{label.replace(' µm', '').replace(' mm', '000')} px"



def point_in_polygon(x: float, y: float, points) -> bool:
    """Whether level-0 (x, y) lies inside the closed outline ``points`` ((k, 2), even-odd rule)."""
    pts = np.asarray(points, float).reshape(-1, 2)
    if len(pts) < 3:
        return False
    xs, ys = pts[:, 0], pts[:, 1]
    xn, yn = np.roll(xs, -1), np.roll(ys, -1)
    crosses = (ys > y) != (yn > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = xs + (y - ys) * (xn - xs) / (yn - ys)
    return bool(np.count_nonzero(crosses & (x < at)) % 2)
