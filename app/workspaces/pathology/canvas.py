"""The slide canvas: draws a :class:`~engines.pathology.viewstate.Viewport` and the session's overlay layers,
and turns mouse and keys into navigation and drawn outlines.

Painting never reads the slide: it draws cached tiles (the finest loaded level first falls back to coarser ones
and to the thumbnail) and queues the missing ones on the tile pool, in the order the viewport's tile plan gives
(nearest the centre first, then a ring around the view and the next coarser level). Which detections and
annotations are in view, and whether they are drawn one by one or as a density raster (level of detail, so that
100,000 objects pan as smoothly as ten), is decided by the layer models in ``engines.pathology``.
"""
from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from app.workspaces.pathology.interaction import CanvasInteraction
from app.workspaces.pathology.navigator import Navigator
from app.workspaces.pathology.overlays import (ANNOTATION_DENSITY, CLASS_COLORS, colormap_lut, heatmap_image,
                                               paint_detections, paint_heatmap, paint_point_density, qtransform)
from app.workspaces.pathology.tile_pool import TileCache, TileLoader, qimage_from_rgb, qimage_from_rgba
from engines.pathology.session import DetectionLayer, HeatmapLayer, OverlayLayers
from engines.pathology.viewstate import (MAX_SCALE, TILE, ViewTransform, Viewport, density_rgba, nice_length,
                                         scale_bar, tile_rect0, tiles_for)

log = logging.getLogger(__name__)

__all__ = ["CLASS_COLORS", "MAX_SCALE", "TILE", "DetectionLayer", "HeatmapLayer", "Navigator", "SlideCanvas",
           "TileCache", "TileLoader", "Transform", "colormap_lut", "heatmap_image", "nice_length", "qimage_from_rgb",
           "qimage_from_rgba"]


class Transform(ViewTransform):
    """A frame's level-0 <-> screen mapping, with the QTransform a painter takes."""

    def qtransform(self):
        return qtransform(self)


def _layers_attribute(name: str, convert):
    """A canvas attribute that is the overlay layers' (the session's) attribute ``name``."""
    return property(lambda self: getattr(self.layers, name),
                    lambda self, value: setattr(self.layers, name, convert(value)))


class SlideCanvas(CanvasInteraction, QWidget):
    """Pan/zoom view of one slide with heatmap, detection and annotation overlays.

    ``viewport`` and ``layers`` are the session's (a canvas made alone makes its own)."""

    view_changed = Signal()
    cursor_moved = Signal(float, float)  # level-0 x, y (NaN when outside)
    annotation_drawn = Signal(str, object)  # shape, list of (x, y) level-0
    annotation_clicked = Signal(str)  # id, "" for none
    tile_failed = Signal(str)
    paint_failed = Signal(str)  # a plain sentence, once per slide: an overlay item could not be drawn

    def __init__(self, parent: QWidget | None = None, loader_threads: int | None = None,
                 viewport: Viewport | None = None, layers: OverlayLayers | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumSize(320, 240)
        self.viewport = viewport or Viewport()
        self.layers = layers or OverlayLayers()
        self.viewport.resize(self.width(), self.height())
        self.viewport.changed.connect(self._changed)
        self.reader = None
        self.thumbnail: QImage | None = None
        self.thumb_scale = 1.0
        self.cache = TileCache()
        self.loader = TileLoader(loader_threads)
        self.loader.bridge.loaded.connect(self._on_tile)
        self.loader.bridge.failed.connect(self._on_tile_failed)
        self._annotations = []  # engines.pathology.geojson.Annotation (the store's items)
        self._annotation_bounds = None  # (n, 4) level-0 boxes, row for row (the store keeps them)
        self._annotation_index = None  # the store's SpatialIndex: rows in a rectangle without a scan of all
        self._row_of = None
        self._density_cache = None  # (rows, QImage, level-0 rect) of the grid density when zoomed far out
        self.annotation_grid_above = 200_000  # more candidates in view than this: draw the index's grid counts
        self.annotation_density_above = 4000  # more annotations in view than this: a density raster
        self.annotation_labels_below = 300  # names are written only when fewer are in view
        self.annotation_mode = ""
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

    # -- the models' state, as the canvas's attributes ----------------------------------------------------
    meta = property(lambda self: self.viewport.meta)
    cx = property(lambda self: self.viewport.cx)
    cy = property(lambda self: self.viewport.cy)
    scale = property(lambda self: self.viewport.scale)

    heatmaps = _layers_attribute("heatmaps", list)
    detections = _layers_attribute("detections", list)
    annotations_visible = _layers_attribute("annotations_visible", bool)

    @property
    def selected_id(self) -> str:
        return self.layers.selected_id

    @selected_id.setter
    def selected_id(self, ann_id: str) -> None:
        self.layers.select(ann_id)

    # -- slide ------------------------------------------------------------------------------------------
    def set_slide(self, reader, thumbnail: np.ndarray | QImage, thumb_scale: float,
                  preloaded: dict[tuple, QImage] | None = None) -> None:
        """Show ``reader``'s slide (its previous reader is closed once no tile thread reads it any more)."""
        if self.reader is not None and self.reader is not reader:
            self._retired.append(self.reader)
        self.loader.new_generation()
        self.cache.clear()
        self.reader = reader
        self.thumbnail = thumbnail if isinstance(thumbnail, QImage) else qimage_from_rgb(thumbnail)
        self.thumb_scale = thumb_scale
        self._failed_reported = False
        self.broken_ids.clear()
        self._paint_failure_reported = False
        for key, img in (preloaded or {}).items():
            self.cache.put(key, img if isinstance(img, QImage) else qimage_from_rgb(img))
        self.viewport.resize(self.width(), self.height())
        if self.viewport.meta is not reader.metadata:
            self.layers.clear()
            self.viewport.set_slide(reader.metadata)
        else:
            self.viewport.fit()
        self._close_retired()

    def clear_slide(self) -> None:
        if self.reader is not None:
            self._retired.append(self.reader)
        self.loader.new_generation()
        self.cache.clear()
        self.reader = self.thumbnail = None
        self.layers.clear()
        self.viewport.set_slide(None)
        self.update()
        self._close_retired()

    def _close_retired(self) -> None:
        if self._retired and self.loader.pool.activeThreadCount() == 0:
            for r in self._retired:
                r.close()
            self._retired.clear()

    def shutdown(self) -> None:
        self.viewport.changed.disconnect(self._changed)
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
        from engines.pathology.viewstate import boxes_meeting

        b = self._bounds()
        if not len(b):
            return np.zeros(0, np.int64)
        if self._annotation_index is not None:
            return self._annotation_index.query(rect0, b)
        return boxes_meeting(b, rect0)

    # -- geometry (the viewport's) -----------------------------------------------------------------------
    def transform(self) -> Transform:
        vp = self.viewport
        return Transform(vp.cx, vp.cy, vp.scale, vp.width, vp.height)

    def fit_scale(self) -> float:
        return self.viewport.fit_scale()

    def fit(self) -> None:
        self.viewport.resize(self.width(), self.height())
        self.viewport.fit()

    def set_view(self, cx: float, cy: float, scale: float | None = None) -> None:
        self.viewport.set_view(cx, cy, scale)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.viewport.zoom_by(factor, None if anchor is None else (anchor.x(), anchor.y()))

    def pan_by(self, dx_screen: float, dy_screen: float) -> None:
        self.viewport.pan_by(dx_screen, dy_screen)

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
        return self.viewport.screen_mpp()

    def magnification(self) -> float | None:
        """Objective-equivalent magnification on screen (10x is 1 µm per screen pixel)."""
        return self.viewport.magnification()

    def scale_for_magnification(self, mag: float) -> float | None:
        return self.viewport.scale_for_magnification(mag)

    def current_level(self) -> int:
        return self.viewport.level if self.reader is not None else 0

    # -- tiles -------------------------------------------------------------------------------------------
    def tile_rect0(self, level: int, col: int, row: int) -> tuple[int, int, int, int]:
        """(x0, y0, w, h): level-0 origin and size in level pixels of a tile."""
        return tile_rect0(self.meta, level, col, row)

    def tiles_for(self, level: int, rect0: tuple[float, float, float, float], ring: int = 0) -> list[tuple]:
        return tiles_for(self.meta, level, rect0, ring)

    def _request_tiles(self) -> None:
        plan = self.viewport.plan(self.cache, prefetch=self.prefetch, limit=self.cache.max_tiles // 2)
        if plan.skipped:  # the thumbnail stands in until the user zooms in far enough
            self.loader.set_wanted(set(self.loader.pending))
            return
        self.loader.set_wanted(plan.wanted | self.loader.pending)
        for n, key in enumerate(plan.missing):
            self.loader.request(key, self.reader, *self.tile_rect0(*key), priority=100 - min(n, 50))
        # prefetch only once the visible tiles are in: it must never compete with what the user is looking at
        if not plan.missing:
            for key in plan.prefetch:
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
        if self.meta is None or self.reader is None:
            return True
        keys = self.viewport.visible_tiles()
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
        if self.meta is None or self.reader is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "Open a slide (File ▸ Open, or drop it here)\n"
                                                    "SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM WSI, PNG/JPEG")
            return
        t = self.transform()
        rect0 = t.visible_level0()
        p.setRenderHint(QPainter.SmoothPixmapTransform, not self._moving)
        p.save()
        p.setTransform(t.qtransform())
        self._paint_tiles(p, rect0)
        for hm in self.heatmaps:
            if hm.visible:
                p.setRenderHint(QPainter.SmoothPixmapTransform, hm.smooth and not self._moving)
                paint_heatmap(p, hm, rect0)
        p.restore()
        self._request_tiles()
        for layer in self.detections:
            if layer.visible and len(layer):
                paint_detections(p, t, layer, rect0)
        if self.annotations_visible:
            self._paint_annotations(p, t)
        self._paint_drawing(p, t)
        self._paint_scale_bar(p, t)

    def _paint_tiles(self, p: QPainter, rect0) -> None:
        """Coarse to fine, finer tiles over coarser ones; the thumbnail under tiles still missing."""
        meta, level = self.meta, self.current_level()
        w0, h0 = meta.dimensions
        complete = all(k in self.cache for k in self.tiles_for(level, rect0))
        first = level
        if not complete:
            p.fillRect(QRectF(0, 0, w0, h0), QColor(255, 255, 255))
            if self.thumbnail is not None:
                p.drawImage(QRectF(0, 0, w0, h0), self.thumbnail)
            first = meta.level_count - 1
        else:
            lw, lh = meta.level_dimensions[level]
            ds = meta.level_downsamples[level]
            if lw * ds < w0 - 1 or lh * ds < h0 - 1:
                p.fillRect(QRectF(0, 0, w0, h0), QColor(255, 255, 255))
        for lv in range(first, level - 1, -1):
            ds = meta.level_downsamples[lv]
            for key in self.tiles_for(lv, rect0):
                img = self.cache.get(key) if lv == level else self.cache.peek(key)
                if img is not None:
                    x, y, w, h = self.tile_rect0(*key)
                    p.drawImage(QRectF(x, y, w * ds, h * ds), img)

    def _paint_annotations(self, p: QPainter, t: Transform) -> None:
        """Only the annotations in view; a density raster when there are too many to tell apart."""
        items = self._annotations
        if not len(items):
            self.annotation_mode = "none"
            return
        rect0 = t.visible_level0()
        index = self._annotation_index
        selected_only = [i for i in (self._selected_row(),) if i >= 0]  # the selected one stays visible on top
        if index is not None and index.candidates(rect0, self._bounds()) > self.annotation_grid_above:
            # far out over very many: the index's per-cell counts, made once per change, stand for them
            self.annotation_mode = "density"
            self._paint_grid_density(p, t)
            idx = selected_only
        elif len(idx := self.annotations_in(rect0)) > self.annotation_density_above:
            self.annotation_mode = "density"
            b = self._bounds()[idx]
            paint_point_density(p, t, (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, ANNOTATION_DENSITY)
            idx = selected_only
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
            img = qimage_from_rgba(density_rgba(counts, ANNOTATION_DENSITY, slope=20.0))
            self._density_cache = (n, img, QRectF(x0, y0, gw * cell, gh * cell))
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

    def _paint_annotation(self, p: QPainter, t: Transform, a) -> None:
        col = QColor(*(a.color or ANNOTATION_DENSITY))
        selected = a.id == self.selected_id
        pen = QPen(QColor(255, 220, 0) if selected else col, 3.0 if selected else 2.0)
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
        px, label = scale_bar(t, self.meta.mpp)
        x, y = 16, t.height - 22
        p.fillRect(QRectF(x - 8, y - 22, px + 16, 34), QColor(255, 255, 255, 215))
        p.fillRect(QRectF(x, y, px, 5), QColor(0, 0, 0))
        p.setPen(QColor(0, 0, 0))
        mag = self.magnification()
        if mag:
            label += f"   ·   {mag:.1f}x"
        p.drawText(QRectF(x, y - 20, max(px, 200), 18), Qt.AlignLeft | Qt.AlignVCenter, label)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.viewport.resize(self.width(), self.height())
        self.view_changed.emit()
