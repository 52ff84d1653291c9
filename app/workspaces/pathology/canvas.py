"""The slide canvas: pyramid tiles from a cache, loaded on a thread pool with prefetch, and overlays.

The canvas keeps a level-0 centre and a scale (screen pixels per level-0 pixel). Painting never reads the
slide: it draws cached tiles (the finest loaded level first falls back to coarser ones and to the
thumbnail) and queues the missing ones on a pool of loader threads, nearest the centre first, then a ring
around the view and the next coarser level (prefetch). Overlays are drawn in level-0 coordinates; the
detection layer switches to a density raster when too many objects are visible (level of detail), so
100,000 objects pan as smoothly as ten.
"""
from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import (QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPolygonF,
                           QTransform)
from PySide6.QtWidgets import QWidget

log = logging.getLogger(__name__)

TILE = 256  # pixels of a level per cached tile (the tile size of most pyramids)
MAX_SCALE = 4.0  # screen px per level-0 px at the deepest zoom


def qimage_from_rgb(arr: np.ndarray) -> QImage:
    """A deep-copied QImage (RGB32, fast to draw) from an RGB uint8 array; safe in any thread."""
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    img = QImage(arr.data, w, h, 3 * w, QImage.Format_RGB888)
    return img.convertToFormat(QImage.Format_RGB32)


def qimage_from_rgba(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 4 * w, QImage.Format_RGBA8888).copy()


class TileCache:
    """LRU cache of decoded tiles (GUI thread only), bounded by tile count."""

    def __init__(self, max_tiles: int = 768) -> None:
        self.max_tiles = max_tiles
        self._items: OrderedDict[tuple, QImage] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> QImage | None:
        img = self._items.get(key)
        if img is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return img

    def peek(self, key: tuple) -> QImage | None:
        return self._items.get(key)

    def put(self, key: tuple, img: QImage) -> None:
        self._items[key] = img
        self._items.move_to_end(key)
        while len(self._items) > self.max_tiles:
            self._items.popitem(last=False)

    def __contains__(self, key: tuple) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


class _Bridge(QObject):
    loaded = Signal(int, object, object)  # generation, key, QImage or None (failed/skipped)
    failed = Signal(int, object, str)


class _TileJob(QRunnable):
    def __init__(self, loader: "TileLoader", gen: int, key: tuple, reader, x0: int, y0: int, w: int, h: int):
        super().__init__()
        self.loader, self.gen, self.key, self.reader = loader, gen, key, reader
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.setAutoDelete(True)

    def run(self) -> None:  # worker thread: no widgets, only a signal at the end
        try:
            if not self.loader.still_wanted(self.gen, self.key):
                self.loader.bridge.loaded.emit(self.gen, self.key, None)
                return
            try:
                arr = self.reader.read_region((self.x0, self.y0), self.key[0], (self.w, self.h))
                img = qimage_from_rgb(arr)
            except Exception as exc:  # noqa: BLE001 - a bad tile is reported once, painting goes on
                self.loader.bridge.failed.emit(self.gen, self.key, str(exc))
                return
            self.loader.bridge.loaded.emit(self.gen, self.key, img)
        except RuntimeError:  # the canvas was deleted while this tile loaded: nobody to tell
            return


class TileLoader:
    """Queues tile reads on its own thread pool; drops jobs that are no longer wanted before they start."""

    def __init__(self, threads: int | None = None) -> None:
        self.pool = QThreadPool()
        import os

        self.pool.setMaxThreadCount(threads or max(2, min(4, os.cpu_count() or 2)))
        self.bridge = _Bridge()
        self._lock = threading.Lock()
        self._wanted: set[tuple] = set()
        self._gen = 0
        self.pending: set[tuple] = set()

    def still_wanted(self, gen: int, key: tuple) -> bool:
        with self._lock:
            return gen == self._gen and key in self._wanted

    def set_wanted(self, keys: set[tuple]) -> None:
        with self._lock:
            self._wanted = set(keys)

    def new_generation(self) -> int:
        self.pool.clear()
        with self._lock:
            self._gen += 1
            self._wanted = set()
        self.pending.clear()
        return self._gen

    @property
    def generation(self) -> int:
        return self._gen

    def request(self, key: tuple, reader, x0: int, y0: int, w: int, h: int, priority: int = 0) -> None:
        if key in self.pending:
            return
        self.pending.add(key)
        self.pool.start(_TileJob(self, self._gen, key, reader, x0, y0, w, h), priority)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        self.new_generation()
        return self.pool.waitForDone(timeout_ms)


@dataclass
class HeatmapLayer:
    """A heatmap drawn over the slide: colour map, opacity and threshold are the user's."""

    name: str
    values: np.ndarray
    cell: float
    origin: tuple[float, float] = (0.0, 0.0)
    colormap: str = "inferno"
    opacity: float = 0.5
    threshold: float = 0.0
    visible: bool = True
    smooth: bool = True  # bilinear between cells; False shows the raw grid
    _image: QImage | None = field(default=None, repr=False)

    def image(self) -> QImage:
        if self._image is None:
            self._image = heatmap_image(self.values, self.colormap, self.opacity, self.threshold)
        return self._image

    def invalidate(self) -> None:
        self._image = None

    def rect(self) -> QRectF:
        rows, cols = self.values.shape
        return QRectF(self.origin[0], self.origin[1], cols * self.cell, rows * self.cell)


_LUTS: dict[str, np.ndarray] = {}


def colormap_lut(name: str) -> np.ndarray:
    if name not in _LUTS:
        import pyqtgraph as pg

        _LUTS[name] = np.asarray(pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False), np.uint8)
    return _LUTS[name]


def heatmap_image(values: np.ndarray, colormap: str, opacity: float, threshold: float) -> QImage:
    v = np.nan_to_num(values, nan=-1.0)
    idx = np.clip(v * 255, 0, 255).astype(np.uint8)
    rgba = np.empty(values.shape + (4,), np.uint8)
    rgba[..., :3] = colormap_lut(colormap)[idx]
    show = (v >= 0) & (v >= threshold)
    rgba[..., 3] = np.where(show, int(round(255 * opacity)), 0)
    # premultiplied, so that smooth scaling does not bleed dark colour into transparent cells
    return qimage_from_rgba(rgba).convertToFormat(QImage.Format_ARGB32_Premultiplied)


CLASS_COLORS = [QColor(230, 40, 40), QColor(40, 120, 230), QColor(40, 180, 60), QColor(230, 160, 0),
                QColor(160, 60, 200)]


@dataclass
class DetectionLayer:
    """Detections in level-0 pixels with level-of-detail drawing."""

    name: str
    xy: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_names: list[str]
    polygons: list[np.ndarray] | None = None
    visible: bool = True
    min_score: float = 0.0
    density_above: int = 3000  # more visible objects than this: draw a density raster
    outline_below: int = 1500  # fewer than this and big enough on screen: draw outlines
    _qpolys: dict[int, QPolygonF] = field(default_factory=dict, repr=False)
    _qrects: list | None = field(default=None, repr=False)
    last_mode: str = ""

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, np.float32).reshape(-1, 2)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.classes = np.asarray(self.classes, np.int16).reshape(-1)
        sizes = np.maximum(self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1])
        self.median_size = float(np.median(sizes)) if len(sizes) else 0.0

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def qrects(self, idx: np.ndarray) -> list[QRectF]:
        """Level-0 QRectF of the given objects, built once per object and kept."""
        if self._qrects is None:
            self._qrects = [None] * len(self)
        out = []
        cache, b = self._qrects, self.boxes
        for i in idx.tolist():
            r = cache[i]
            if r is None:
                x0, y0, x1, y1 = b[i].tolist()
                r = cache[i] = QRectF(x0, y0, x1 - x0, y1 - y0)
            out.append(r)
        return out

    def qpolygon(self, i: int) -> QPolygonF:
        poly = self._qpolys.get(i)
        if poly is None:
            poly = QPolygonF([QPointF(float(x), float(y)) for x, y in self.polygons[i]])
            self._qpolys[i] = poly
        return poly


@dataclass
class Transform:
    cx: float
    cy: float
    scale: float
    width: int
    height: int

    def to_screen(self, x, y):
        return (x - self.cx) * self.scale + self.width / 2, (y - self.cy) * self.scale + self.height / 2

    def to_level0(self, sx: float, sy: float) -> tuple[float, float]:
        return (sx - self.width / 2) / self.scale + self.cx, (sy - self.height / 2) / self.scale + self.cy

    def visible_level0(self) -> tuple[float, float, float, float]:
        x0, y0 = self.to_level0(0, 0)
        x1, y1 = self.to_level0(self.width, self.height)
        return x0, y0, x1, y1

    def qtransform(self) -> QTransform:
        return QTransform(self.scale, 0, 0, self.scale, self.width / 2 - self.cx * self.scale,
                          self.height / 2 - self.cy * self.scale)


class SlideCanvas(QWidget):
    """Pan/zoom view of one slide with heatmap, detection and annotation overlays."""

    view_changed = Signal()
    cursor_moved = Signal(float, float)  # level-0 x, y (NaN when outside)
    annotation_drawn = Signal(str, object)  # shape, list of (x, y) level-0
    annotation_clicked = Signal(str)  # id, "" for none
    tile_failed = Signal(str)
    paint_failed = Signal(str)  # a plain sentence, once per slide: an overlay item could not be drawn

    TOOLS = ("pan", "rectangle", "ellipse", "polygon", "freehand")

    def __init__(self, parent: QWidget | None = None, loader_threads: int | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumSize(320, 240)
        self.reader = None
        self.meta = None
        self.thumbnail: QImage | None = None
        self.thumb_scale = 1.0
        self.cache = TileCache()
        self.loader = TileLoader(loader_threads)
        self.loader.bridge.loaded.connect(self._on_tile)
        self.loader.bridge.failed.connect(self._on_tile_failed)
        self.cx = self.cy = 0.0
        self.scale = 1.0
        self.heatmaps: list[HeatmapLayer] = []
        self.detections: list[DetectionLayer] = []
        self._annotations = []  # engines.pathology.geojson.Annotation (the store's items)
        self._annotation_bounds = None  # (n, 4) level-0 boxes, row for row (the store keeps them)
        self._annotation_index = None  # the store's SpatialIndex: rows in a rectangle without a scan of all
        self._row_of = None
        self._density_cache = None  # (rows, QImage, level-0 rect) of the grid density when zoomed far out
        self.annotation_grid_above = 200_000  # more candidates in view than this: draw the index's grid counts
        self.annotation_density_above = 4000  # more annotations in view than this: a density raster
        self.annotation_labels_below = 300  # names are written only when fewer are in view
        self.annotation_mode = ""
        self.annotations_visible = True
        self.selected_id = ""
        self.tool = "pan"
        self._drag_start = None
        self._drawing: list[tuple[float, float]] = []
        self._press_pos = None
        self._failed_reported = False
        self.broken_ids: set[str] = set()  # annotations whose drawing failed once: skipped from then on
        self._paint_failure_reported = False
        self._retired = []
        self.prefetch = True
        self.frames_painted = 0
        # while the view moves, tiles are drawn without smoothing; a last smooth frame follows when it stops
        self._moving = False
        from PySide6.QtCore import QTimer

        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(150)
        self._settle_timer.timeout.connect(self._settled)
        # tiles arriving in a burst are drawn together, at most ~12 times a second (painting holds the GIL
        # and a core that the loader threads need)
        self._tile_timer = QTimer(self)
        self._tile_timer.setSingleShot(True)
        self._tile_timer.setInterval(80)
        self._tile_timer.timeout.connect(self.update)

    # -- slide ------------------------------------------------------------------------------------------
    def set_slide(self, reader, thumbnail: np.ndarray, thumb_scale: float,
                  preloaded: dict[tuple, QImage] | None = None) -> None:
        if self.reader is not None:
            self._retired.append(self.reader)
        self.loader.new_generation()
        self.cache.clear()
        self.reader = reader
        self.meta = reader.metadata
        self.thumbnail = qimage_from_rgb(thumbnail)
        self.thumb_scale = thumb_scale
        self.heatmaps, self.detections = [], []
        self._failed_reported = False
        self.broken_ids.clear()
        self._paint_failure_reported = False
        for key, img in (preloaded or {}).items():
            self.cache.put(key, img)
        self.fit()
        self._close_retired()

    def clear_slide(self) -> None:
        if self.reader is not None:
            self._retired.append(self.reader)
        self.loader.new_generation()
        self.cache.clear()
        self.reader = self.meta = self.thumbnail = None
        self.heatmaps, self.detections = [], []
        self.update()
        self._close_retired()

    def _close_retired(self) -> None:
        if self._retired and self.loader.pool.activeThreadCount() == 0:
            for r in self._retired:
                r.close()
            self._retired.clear()

    def shutdown(self) -> None:
        self.loader.shutdown()
        for r in self._retired:
            r.close()
        self._retired.clear()

    # -- annotations -------------------------------------------------------------------------------------
    @property
    def annotations(self) -> list:
        return self._annotations

    @annotations.setter
    def annotations(self, items: list) -> None:
        self.set_annotations(items, None)

    def set_annotations(self, items, bounds: np.ndarray | None, index=None, row_of=None) -> None:
        """The annotations to draw (a sequence; rows are read only when in view) and, when known, their level-0
        boxes (else computed on the next paint), a spatial index over them (``index.query(rect, bounds)``) and
        a function from id to row."""
        self._annotations = items
        self._annotation_bounds = bounds if bounds is not None and len(bounds) == len(items) else None
        self._annotation_index = index
        self._row_of = row_of
        self._density_cache = None

    def _bounds(self) -> np.ndarray:
        if self._annotation_bounds is None or len(self._annotation_bounds) != len(self._annotations):
            from engines.pathology.annotations import annotation_bounds

            self._annotation_bounds = annotation_bounds(self._annotations)
        return self._annotation_bounds

    def annotations_in(self, rect0: tuple[float, float, float, float]) -> np.ndarray:
        """Row indices of the annotations whose box meets ``rect0`` (x0, y0, x1, y1 in level 0)."""
        b = self._bounds()
        if not len(b):
            return np.zeros(0, np.int64)
        if self._annotation_index is not None:
            return self._annotation_index.query(rect0, b)
        with np.errstate(invalid="ignore"):
            vis = (b[:, 2] >= rect0[0]) & (b[:, 0] <= rect0[2]) & (b[:, 3] >= rect0[1]) & (b[:, 1] <= rect0[3])
        return np.flatnonzero(vis)

    # -- geometry ----------------------------------------------------------------------------------------
    def transform(self) -> Transform:
        return Transform(self.cx, self.cy, self.scale, max(1, self.width()), max(1, self.height()))

    def fit_scale(self) -> float:
        if self.meta is None:
            return 1.0
        w0, h0 = self.meta.dimensions
        return min(self.width() / w0, self.height() / h0) * 0.95

    def fit(self) -> None:
        if self.meta is None:
            return
        w0, h0 = self.meta.dimensions
        self.cx, self.cy = w0 / 2, h0 / 2
        self.scale = self.fit_scale()
        self._changed()

    def set_view(self, cx: float, cy: float, scale: float | None = None) -> None:
        if scale is not None:
            self.scale = float(np.clip(scale, self.fit_scale() / 4, MAX_SCALE))
        self.cx, self.cy = float(cx), float(cy)
        self._clamp()
        self._changed()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        if self.meta is None:
            return
        t = self.transform()
        ax, ay = (anchor.x(), anchor.y()) if anchor is not None else (t.width / 2, t.height / 2)
        x0, y0 = t.to_level0(ax, ay)
        new = float(np.clip(self.scale * factor, self.fit_scale() / 4, MAX_SCALE))
        self.scale = new
        self.cx = x0 - (ax - t.width / 2) / new
        self.cy = y0 - (ay - t.height / 2) / new
        self._clamp()
        self._changed()

    def pan_by(self, dx_screen: float, dy_screen: float) -> None:
        self.cx -= dx_screen / self.scale
        self.cy -= dy_screen / self.scale
        self._clamp()
        self._changed()

    def _clamp(self) -> None:
        if self.meta is None:
            return
        w0, h0 = self.meta.dimensions
        self.cx = float(np.clip(self.cx, 0, w0))
        self.cy = float(np.clip(self.cy, 0, h0))

    def _changed(self) -> None:
        self._moving = True
        self._settle_timer.start()
        self.update()
        self.view_changed.emit()

    def _settled(self) -> None:
        if not self.visible_tiles_loaded():  # smooth (slower) frames only once the view is complete
            self._settle_timer.start()
            return
        self._moving = False
        self.update()

    def screen_mpp(self) -> float | None:
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

    def current_level(self) -> int:
        if self.reader is None:
            return 0
        return self.reader.best_level(1.0 / self.scale)

    # -- tiles -------------------------------------------------------------------------------------------
    def tile_rect0(self, level: int, col: int, row: int) -> tuple[int, int, int, int]:
        """(x0, y0, w, h): level-0 origin and size in level pixels of a tile."""
        ds = self.meta.level_downsamples[level]
        lw, lh = self.meta.level_dimensions[level]
        w = min(TILE, lw - col * TILE)
        h = min(TILE, lh - row * TILE)
        return int(round(col * TILE * ds)), int(round(row * TILE * ds)), w, h

    def tiles_for(self, level: int, rect0: tuple[float, float, float, float], ring: int = 0) -> list[tuple]:
        ds = self.meta.level_downsamples[level]
        lw, lh = self.meta.level_dimensions[level]
        ncol, nrow = math.ceil(lw / TILE), math.ceil(lh / TILE)
        c0 = max(0, int(rect0[0] / ds // TILE) - ring)
        r0 = max(0, int(rect0[1] / ds // TILE) - ring)
        c1 = min(ncol - 1, int(rect0[2] / ds // TILE) + ring)
        r1 = min(nrow - 1, int(rect0[3] / ds // TILE) + ring)
        return [(level, c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def _request_tiles(self, level: int, rect0) -> None:
        keys = self.tiles_for(level, rect0)
        if len(keys) > self.cache.max_tiles // 2:
            # a slide without a small enough level (one huge level): the thumbnail stands in until the user
            # zooms in far enough; queueing tens of thousands of full-resolution tiles would never finish
            self.loader.set_wanted(set(self.loader.pending))
            return
        wanted = list(keys)
        if self.prefetch:
            ring = [k for k in self.tiles_for(level, rect0, ring=1) if k not in keys]
            coarser = self.tiles_for(level + 1, rect0) if level + 1 < self.meta.level_count else []
            wanted += coarser + ring
        self.loader.set_wanted(set(wanted) | self.loader.pending)
        cx, cy = self.cx, self.cy
        ds = self.meta.level_downsamples[level]

        def dist(k):
            return abs((k[1] + 0.5) * TILE * ds - cx) + abs((k[2] + 0.5) * TILE * ds - cy)

        missing = [k for k in keys if k not in self.cache]
        for n, key in enumerate(sorted(missing, key=dist)):
            self.loader.request(key, self.reader, *self.tile_rect0(*key), priority=100 - min(n, 50))
        # prefetch only once the visible tiles are in: it must never compete with what the user is looking at
        if self.prefetch and not missing:
            for key in wanted[len(keys):]:
                if key not in self.cache:
                    self.loader.request(key, self.reader, *self.tile_rect0(*key), priority=0)

    def _on_tile(self, gen: int, key: tuple, img) -> None:
        self.loader.pending.discard(key)
        if gen == self.loader.generation and img is not None:
            self.cache.put(key, img)
        # a skipped job (not wanted when it started) may be wanted again now: the next paint re-requests it
        if not self._tile_timer.isActive():
            self._tile_timer.start()
        self._close_retired()

    def _on_tile_failed(self, gen: int, key: tuple, message: str) -> None:
        self.loader.pending.discard(key)
        if gen == self.loader.generation and not self._failed_reported:
            self._failed_reported = True
            self.tile_failed.emit(message)

    def visible_tiles_loaded(self) -> bool:
        if self.meta is None:
            return True
        level = self.current_level()
        keys = self.tiles_for(level, self.transform().visible_level0())
        if len(keys) > self.cache.max_tiles // 2:  # not loaded at this zoom (see _request_tiles)
            return True
        return all(k in self.cache for k in keys)

    # -- painting ----------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()
        self.frames_painted += 1

    def _paint(self, p: QPainter) -> None:
        p.fillRect(self.rect(), QColor(58, 60, 64))
        if self.meta is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "Open a slide (File ▸ Open, or drop it here)\n"
                                                    "SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM WSI, PNG/JPEG")
            return
        t = self.transform()
        rect0 = t.visible_level0()
        w0, h0 = self.meta.dimensions
        p.setRenderHint(QPainter.SmoothPixmapTransform, not self._moving)
        p.save()
        p.setTransform(t.qtransform())
        level = self.current_level()
        visible = self.tiles_for(level, rect0)
        complete = all(k in self.cache for k in visible)
        first = level
        if not complete:  # fall back to the thumbnail and coarser levels under the missing tiles
            p.fillRect(QRectF(0, 0, w0, h0), QColor(255, 255, 255))
            if self.thumbnail is not None:
                p.drawImage(QRectF(0, 0, w0, h0), self.thumbnail)
            first = self.meta.level_count - 1
        else:
            lw, lh = self.meta.level_dimensions[level]
            ds = self.meta.level_downsamples[level]
            p.fillRect(QRectF(0, 0, w0, h0), QColor(255, 255, 255)) if lw * ds < w0 - 1 or lh * ds < h0 - 1 else None
        for lv in range(first, level - 1, -1):  # coarse to fine: finer tiles overwrite
            for key in self.tiles_for(lv, rect0):
                img = self.cache.get(key) if lv == level else self.cache.peek(key)
                if img is None:
                    continue
                x, y, w, h = self.tile_rect0(*key)
                ds = self.meta.level_downsamples[lv]
                p.drawImage(QRectF(x, y, w * ds, h * ds), img)
        for hm in self.heatmaps:
            if hm.visible:
                p.setRenderHint(QPainter.SmoothPixmapTransform, hm.smooth and not self._moving)
                self._draw_heatmap(p, hm, rect0)
        p.restore()
        self._request_tiles(level, rect0)
        for layer in self.detections:
            if layer.visible and len(layer):
                self._paint_detections(p, t, layer, rect0)
        if self.annotations_visible:
            self._paint_annotations(p, t)
        self._paint_drawing(p, t)
        self._paint_scale_bar(p, t)

    @staticmethod
    def _draw_heatmap(p: QPainter, hm: HeatmapLayer, rect0) -> None:
        """Only the visible cells: scaling the whole raster to a 40,000-px slide every frame is what costs."""
        rows, cols = hm.values.shape
        c0 = max(0, int((rect0[0] - hm.origin[0]) // hm.cell))
        r0 = max(0, int((rect0[1] - hm.origin[1]) // hm.cell))
        c1 = min(cols, int(math.ceil((rect0[2] - hm.origin[0]) / hm.cell)) + 1)
        r1 = min(rows, int(math.ceil((rect0[3] - hm.origin[1]) / hm.cell)) + 1)
        if c1 <= c0 or r1 <= r0:
            return
        target = QRectF(hm.origin[0] + c0 * hm.cell, hm.origin[1] + r0 * hm.cell, (c1 - c0) * hm.cell, (r1 - r0) * hm.cell)
        p.drawImage(target, hm.image(), QRectF(c0, r0, c1 - c0, r1 - r0))

    def _paint_detections(self, p: QPainter, t: Transform, layer: DetectionLayer, rect0) -> None:
        b = layer.boxes
        vis = (b[:, 2] >= rect0[0]) & (b[:, 0] <= rect0[2]) & (b[:, 3] >= rect0[1]) & (b[:, 1] <= rect0[3])
        if layer.min_score > 0:
            vis &= layer.scores >= layer.min_score
        idx = np.flatnonzero(vis)
        n = len(idx)
        if n == 0:
            layer.last_mode = "none"
            return
        size_px = layer.median_size * t.scale
        if n > layer.density_above or size_px < 2.5:
            layer.last_mode = "density"
            self._paint_density(p, t, layer, idx)
            return
        cls_of = layer.classes[idx]
        p.setBrush(Qt.NoBrush)
        if n <= layer.outline_below and size_px >= 10 and layer.polygons is not None:
            layer.last_mode = "outlines"
            p.save()
            p.setTransform(t.qtransform())
            for c in np.unique(cls_of):
                pen = QPen(CLASS_COLORS[int(c) % len(CLASS_COLORS)], 1)  # width 1: the fast stroker
                pen.setCosmetic(True)
                p.setPen(pen)
                for i in idx[cls_of == c]:
                    if len(layer.polygons[i]) >= 3:
                        p.drawPolygon(layer.qpolygon(int(i)))
            p.restore()
            return
        layer.last_mode = "boxes"
        p.save()
        p.setTransform(t.qtransform())
        for c in np.unique(cls_of):
            pen = QPen(CLASS_COLORS[int(c) % len(CLASS_COLORS)], 1)  # width 1: Qt's fast line path
            pen.setCosmetic(True)
            p.setPen(pen)
            p.drawRects(layer.qrects(idx[cls_of == c]))
        p.restore()

    def _paint_density(self, p: QPainter, t: Transform, layer: DetectionLayer, idx: np.ndarray) -> None:
        """Objects per 4x4 screen-pixel cell as a translucent raster (one image, whatever N is)."""
        cell = 4
        gw, gh = max(1, t.width // cell + 1), max(1, t.height // cell + 1)
        sx, sy = t.to_screen(layer.xy[idx, 0], layer.xy[idx, 1])
        gx = np.clip((sx // cell).astype(np.int64), 0, gw - 1)
        gy = np.clip((sy // cell).astype(np.int64), 0, gh - 1)
        counts = np.bincount(gy * gw + gx, minlength=gw * gh).reshape(gh, gw)
        rgba = np.zeros((gh, gw, 4), np.uint8)
        color = CLASS_COLORS[int(np.bincount(layer.classes[idx]).argmax()) % len(CLASS_COLORS)]
        rgba[..., 0], rgba[..., 1], rgba[..., 2] = color.red(), color.green(), color.blue()
        rgba[..., 3] = np.where(counts > 0, np.clip(80 + 35 * np.log2(np.maximum(counts, 1)), 0, 210), 0)
        p.drawImage(QRectF(0, 0, gw * cell, gh * cell), qimage_from_rgba(rgba))

    def _paint_annotations(self, p: QPainter, t: Transform) -> None:
        """Only the annotations in view; a density raster when there are too many to tell apart."""
        items = self._annotations
        if not len(items):
            self.annotation_mode = "none"
            return
        rect0 = t.visible_level0()
        index = self._annotation_index
        if index is not None and index.candidates(rect0, self._bounds()) > self.annotation_grid_above:
            # far out over very many: the index's per-cell counts, made once per change, stand for them
            self.annotation_mode = "density"
            self._paint_grid_density(p, t)
            idx = [i for i in (self._selected_row(),) if i >= 0]  # the selected one stays visible on top
        elif len(idx := self.annotations_in(rect0)) > self.annotation_density_above:
            self.annotation_mode = "density"
            b = self._bounds()[idx]
            self._paint_point_density(p, t, (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, QColor(0, 160, 160))
            idx = [i for i in (self._selected_row(),) if i >= 0]  # the selected one stays visible on top
        else:
            self.annotation_mode = "outlines" if len(idx) else "none"
        p.save()
        p.setTransform(t.qtransform())
        p.setBrush(Qt.NoBrush)
        for i in idx:
            a = items[i]
            if not a.points or a.id in self.broken_ids:
                continue
            try:
                self._paint_annotation(p, t, a)
            except Exception as exc:  # noqa: BLE001 - one bad item is skipped from now on, never every frame
                self._annotation_broke(a, exc)
        p.restore()
        if len(idx) > self.annotation_labels_below:
            return
        p.setPen(QColor(20, 20, 20))
        f = QFont(p.font())
        f.setPointSize(9)
        p.setFont(f)
        for i in idx:
            a = items[i]
            if (a.name or a.cls) and a.points and a.id not in self.broken_ids:
                try:
                    self._paint_label(p, t, a)
                except Exception as exc:  # noqa: BLE001
                    self._annotation_broke(a, exc)

    def _paint_grid_density(self, p: QPainter, t: Transform) -> None:
        n = len(self._annotations)
        if self._density_cache is None or self._density_cache[0] != n:
            counts, (x0, y0, cell) = self._annotation_index.density(self._bounds())
            gh, gw = counts.shape
            rgba = np.zeros((gh, gw, 4), np.uint8)
            rgba[..., 1], rgba[..., 2] = 160, 160
            rgba[..., 3] = np.where(counts > 0, np.clip(80 + 20 * np.log2(np.maximum(counts, 1)), 0, 210), 0)
            self._density_cache = (n, qimage_from_rgba(rgba), QRectF(x0, y0, gw * cell, gh * cell))
        _, img, rect = self._density_cache
        p.save()
        p.setTransform(t.qtransform())
        p.drawImage(rect, img)
        p.restore()

    def _selected_row(self) -> int:
        if not self.selected_id:
            return -1
        if self._row_of is not None:
            return self._row_of(self.selected_id)
        for i, a in enumerate(self._annotations):
            if a.id == self.selected_id:
                return i
        return -1

    @staticmethod
    def _paint_point_density(p: QPainter, t: Transform, x: np.ndarray, y: np.ndarray, color: QColor) -> None:
        """Objects per 4x4 screen-pixel cell as one translucent image, whatever their number."""
        cell = 4
        gw, gh = max(1, t.width // cell + 1), max(1, t.height // cell + 1)
        sx, sy = t.to_screen(x, y)
        gx = np.clip((sx // cell).astype(np.int64), 0, gw - 1)
        gy = np.clip((sy // cell).astype(np.int64), 0, gh - 1)
        counts = np.bincount(gy * gw + gx, minlength=gw * gh).reshape(gh, gw)
        rgba = np.zeros((gh, gw, 4), np.uint8)
        rgba[..., 0], rgba[..., 1], rgba[..., 2] = color.red(), color.green(), color.blue()
        rgba[..., 3] = np.where(counts > 0, np.clip(80 + 35 * np.log2(np.maximum(counts, 1)), 0, 210), 0)
        p.drawImage(QRectF(0, 0, gw * cell, gh * cell), qimage_from_rgba(rgba))

    def _paint_annotation(self, p: QPainter, t: Transform, a) -> None:
        col = QColor(*(a.color or (0, 160, 160)))
        pen = QPen(QColor(255, 220, 0) if a.id == self.selected_id else col, 3.0 if a.id == self.selected_id else 2.0)
        pen.setCosmetic(True)
        p.setPen(pen)
        if a.shape == "point":
            x, y = a.points[0]
            r = 5 / t.scale
            p.drawEllipse(QPointF(x, y), r, r)
        else:
            p.drawPolygon(QPolygonF([QPointF(x, y) for x, y in a.points]))

    @staticmethod
    def _paint_label(p: QPainter, t: Transform, a) -> None:
        x = min(q[0] for q in a.points)
        y = min(q[1] for q in a.points)
        sx, sy = t.to_screen(x, y)
        label = str(a.name) + (f" [{a.cls}]" if a.cls else "")
        r = p.boundingRect(QRectF(sx, sy - 18, 400, 16), Qt.AlignLeft, label)
        p.fillRect(r.adjusted(-2, 0, 2, 0), QColor(255, 255, 255, 200))
        p.drawText(r, Qt.AlignLeft, label)

    def _annotation_broke(self, a, exc: BaseException) -> None:
        """Log the first failure of an item, skip it in later frames, and tell the view once per slide."""
        self.broken_ids.add(a.id)
        log.warning("annotation %s (%r) cannot be drawn and is skipped: %r", a.id, getattr(a, "name", ""), exc)
        if not self._paint_failure_reported:
            self._paint_failure_reported = True
            self.paint_failed.emit(f"The annotation '{a.name or a.id}' cannot be drawn ({type(exc).__name__}: "
                                   f"{exc}); it is skipped.")

    def _paint_drawing(self, p: QPainter, t: Transform) -> None:
        if not self._drawing:
            return
        pen = QPen(QColor(255, 200, 0), 2, Qt.DashLine)
        p.setPen(pen)
        p.setBrush(Qt.NoBrush)
        pts = [QPointF(*t.to_screen(x, y)) for x, y in self._drawing]
        if self.tool in ("rectangle", "ellipse") and len(pts) == 2:
            r = QRectF(pts[0], pts[1]).normalized()
            p.drawRect(r) if self.tool == "rectangle" else p.drawEllipse(r)
        else:
            p.drawPolyline(QPolygonF(pts))

    def _paint_scale_bar(self, p: QPainter, t: Transform) -> None:
        mpp = self.screen_mpp()
        target_px = 140
        if mpp:
            length, unit_len = nice_length(target_px * mpp)
            px = length / mpp
        else:
            length, unit_len = nice_length(target_px / t.scale)
            px = length * t.scale
            unit_len = f"{unit_len.replace(' µm', '').replace(' mm', '000')} px"
        x, y = 16, t.height - 22
        p.fillRect(QRectF(x - 8, y - 22, px + 16, 34), QColor(255, 255, 255, 215))
        p.fillRect(QRectF(x, y, px, 5), QColor(0, 0, 0))
        p.setPen(QColor(0, 0, 0))
        label = unit_len
        mag = self.magnification()
        if mag:
            label += f"   ·   {mag:.1f}x"
        p.drawText(QRectF(x, y - 20, max(px, 200), 18), Qt.AlignLeft | Qt.AlignVCenter, label)

    # -- interaction -------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in self.TOOLS:
            raise ValueError(tool)
        self.tool = tool
        self._drawing = []
        self.setCursor(Qt.OpenHandCursor if tool == "pan" else Qt.CrossCursor)
        self.update()

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25 ** steps, event.position())

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.meta is None:
            return
        pos = event.position()
        self._press_pos = pos
        x, y = self.transform().to_level0(pos.x(), pos.y())
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self.tool == "pan"):
            self._drag_start = pos
            self.setCursor(Qt.ClosedHandCursor)
            return
        if event.button() != Qt.LeftButton:
            return
        if self.tool in ("rectangle", "ellipse"):
            self._drawing = [(x, y), (x, y)]
        elif self.tool == "freehand":
            self._drawing = [(x, y)]
        elif self.tool == "polygon":
            if not self._drawing:
                self._drawing = [(x, y), (x, y)]
            else:
                self._drawing[-1] = (x, y)
                self._drawing.append((x, y))
        self.update()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if self.meta is not None:
            x, y = self.transform().to_level0(pos.x(), pos.y())
            w0, h0 = self.meta.dimensions
            self.cursor_moved.emit(x, y) if 0 <= x < w0 and 0 <= y < h0 else self.cursor_moved.emit(math.nan, math.nan)
        else:
            return
        if self._drag_start is not None:
            d = pos - self._drag_start
            self._drag_start = pos
            self.pan_by(d.x(), d.y())
            return
        if not self._drawing:
            return
        if self.tool in ("rectangle", "ellipse", "polygon"):
            self._drawing[-1] = (x, y)
        elif self.tool == "freehand" and event.buttons() & Qt.LeftButton:
            lx, ly = self.transform().to_screen(*self._drawing[-1])
            if abs(lx - pos.x()) + abs(ly - pos.y()) >= 3:
                self._drawing.append((x, y))
        self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if self._drag_start is not None:
            self._drag_start = None
            self.setCursor(Qt.OpenHandCursor if self.tool == "pan" else Qt.CrossCursor)
            if self.tool == "pan" and self._press_pos is not None and \
                    (pos - self._press_pos).manhattanLength() < 3:
                self._click_select(pos)
            return
        if self.tool in ("rectangle", "ellipse") and len(self._drawing) == 2:
            (x0, y0), (x1, y1) = self._drawing
            self._drawing = []
            if abs(x1 - x0) * self.scale >= 3 and abs(y1 - y0) * self.scale >= 3:
                self.annotation_drawn.emit(self.tool, [(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))])
        elif self.tool == "freehand" and self._drawing:
            pts = self._drawing
            self._drawing = []
            if len(pts) >= 3:
                self.annotation_drawn.emit("freehand", pts)
        self.update()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if self.tool == "polygon" and len(self._drawing) >= 3:
            self.finish_polygon()
        elif self.tool == "pan":
            self.zoom_by(2.0, event.position())

    def finish_polygon(self) -> None:
        pts = self._drawing[:-1]
        # drop the duplicate vertex a double-click leaves behind
        dedup = [pt for i, pt in enumerate(pts) if i == 0 or pt != pts[i - 1]]
        self._drawing = []
        if len(dedup) >= 3:
            self.annotation_drawn.emit("polygon", dedup)
        self.update()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        step = 80
        if key == Qt.Key_Escape:
            self._drawing = []
            self.update()
        elif key in (Qt.Key_Return, Qt.Key_Enter) and self.tool == "polygon":
            if len(self._drawing) >= 3:
                self._drawing.append(self._drawing[-1])
                self.finish_polygon()
        elif key == Qt.Key_Left:
            self.pan_by(step, 0)
        elif key == Qt.Key_Right:
            self.pan_by(-step, 0)
        elif key == Qt.Key_Up:
            self.pan_by(0, step)
        elif key == Qt.Key_Down:
            self.pan_by(0, -step)
        elif key in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom_by(1.5)
        elif key == Qt.Key_Minus:
            self.zoom_by(1 / 1.5)
        else:
            super().keyPressEvent(event)

    def _click_select(self, pos: QPointF) -> None:
        x, y = self.transform().to_level0(pos.x(), pos.y())
        for i in self.annotations_in((x, y, x, y))[::-1]:  # only those whose box holds the point
            a = self._annotations[i]
            if len(a.points) >= 3:
                path = QPainterPath()
                path.addPolygon(QPolygonF([QPointF(px, py) for px, py in a.points]))
                if path.contains(QPointF(x, y)):
                    self.selected_id = a.id
                    self.annotation_clicked.emit(a.id)
                    self.update()
                    return
        if self.selected_id:
            self.selected_id = ""
            self.annotation_clicked.emit("")
            self.update()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.view_changed.emit()


def nice_length(value: float) -> tuple[float, str]:
    """The largest 1-2-5 length <= value, and its label in µm or mm."""
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


class Navigator(QWidget):
    """The thumbnail with the view rectangle; click or drag to move the view."""

    def __init__(self, canvas: SlideCanvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.setMinimumSize(200, 140)
        self.setMaximumHeight(220)
        canvas.view_changed.connect(self.update)
        self.setCursor(Qt.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")

    def _geometry(self) -> tuple[float, float, float] | None:
        if self.canvas.meta is None:
            return None
        w0, h0 = self.canvas.meta.dimensions
        s = min((self.width() - 4) / w0, (self.height() - 4) / h0)
        return s, (self.width() - w0 * s) / 2, (self.height() - h0 * s) / 2

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(58, 60, 64))
        g = self._geometry()
        if g is None or self.canvas.thumbnail is None:
            p.end()
            return
        s, ox, oy = g
        w0, h0 = self.canvas.meta.dimensions
        p.setRenderHint(QPainter.SmoothPixmapTransform, True)
        p.drawImage(QRectF(ox, oy, w0 * s, h0 * s), self.canvas.thumbnail)
        for hm in self.canvas.heatmaps:
            if hm.visible:
                r = hm.rect()
                p.drawImage(QRectF(ox + r.x() * s, oy + r.y() * s, r.width() * s, r.height() * s), hm.image())
        x0, y0, x1, y1 = self.canvas.transform().visible_level0()
        pen = QPen(QColor(230, 30, 30), 2)
        p.setPen(pen)
        p.setBrush(Qt.NoBrush)
        p.drawRect(QRectF(ox + x0 * s, oy + y0 * s, max(3, (x1 - x0) * s), max(3, (y1 - y0) * s)))
        p.end()

    def _move_to(self, pos) -> None:
        g = self._geometry()
        if g is None:
            return
        s, ox, oy = g
        self.canvas.set_view((pos.x() - ox) / s, (pos.y() - oy) / s)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self._move_to(event.position())

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if event.buttons() & Qt.LeftButton:
            self._move_to(event.position())
