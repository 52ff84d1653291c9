"""Drawing the session's overlay layers with a QPainter: heatmap pictures, detections by level of detail and
density rasters. What is in view and which mode to draw in is decided by the layer models
(``engines.pathology.session``); this module keeps only the Qt objects made from them (pictures, rectangles,
polygons), cached per layer so a frame makes none of them again."""
from __future__ import annotations

import weakref

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPolygonF
from shiboken6 import Shiboken

from app.workspaces.pathology.tile_pool import qimage_from_rgba
from engines.pathology.session import DetectionLayer, HeatmapLayer
from engines.pathology.viewstate import ViewTransform, density_rgba, heatmap_rgba, point_density

CLASS_COLORS = [QColor(230, 40, 40), QColor(40, 120, 230), QColor(40, 180, 60), QColor(230, 160, 0),
                QColor(160, 60, 200)]
ANNOTATION_DENSITY = (0, 160, 160)

_LUTS: dict[str, np.ndarray] = {}
_HEATMAP_IMAGES: "weakref.WeakKeyDictionary[HeatmapLayer, tuple[tuple, QImage]]" = weakref.WeakKeyDictionary()


def colormap_lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 table of pyqtgraph's colour map ``name``, made from the map's file without importing
    pyqtgraph (which nothing else in this workspace needs; importing it in the GUI thread at the first heatmap
    froze the window for about half a second). Same numbers as ``pg.colormap.get(name).getLookupTable(0, 1,
    256, alpha=False)``: its file's colours, through QColor, as bytes, interpolated at 256 even steps."""
    if name not in _LUTS:
        path = _map_file(name)
        _LUTS[name] = _lut_from_map_file(path) if path is not None else _pyqtgraph_lut(name)
    return _LUTS[name]


def _map_file(name: str):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pyqtgraph")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "colors" / "maps" / f"{name}.csv"
        if path.is_file():
            return path
    return None


def _lut_from_map_file(path) -> np.ndarray:
    stops = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] == ";":
            continue
        parts = line.split(";", 1)[0].split(",")
        if len(parts) >= 3:
            stops.append(QColor(*[int(255 * float(c) + 0.5) for c in parts[:3]]).getRgbF())
    colour = (np.array(stops) * 255).astype(np.ubyte)
    pos, x = np.linspace(0.0, 1.0, len(stops)), np.linspace(0.0, 1.0, 256)
    table = np.empty((256, 4), np.ubyte)
    for channel in range(4):
        table[:, channel] = np.interp(x, pos, colour[:, channel])
    return table[:, :3].copy()


def _pyqtgraph_lut(name: str) -> np.ndarray:
    import pyqtgraph as pg

    return np.asarray(pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False), np.uint8)


def heatmap_image(values: np.ndarray, colormap: str, opacity: float, threshold: float) -> QImage:
    rgba = heatmap_rgba(values, colormap_lut(colormap), opacity, threshold)
    # premultiplied, so that smooth scaling does not bleed dark colour into transparent cells
    return qimage_from_rgba(rgba).convertToFormat(QImage.Format_ARGB32_Premultiplied)


def heatmap_qimage(layer: HeatmapLayer) -> QImage:
    """The layer's picture, made once per style (colours, opacity, threshold) and kept while the layer lives."""
    key = layer.style_key()
    found = _HEATMAP_IMAGES.get(layer)
    if found is None or found[0] != key:
        found = (key, heatmap_image(layer.values, layer.colormap, layer.opacity, layer.threshold))
        _HEATMAP_IMAGES[layer] = found
    return found[1]


def qtransform(t: ViewTransform):
    from PySide6.QtGui import QTransform

    dx, dy = t.offset()
    return QTransform(t.scale, 0, 0, t.scale, dx, dy)


def paint_heatmap(p: QPainter, layer: HeatmapLayer, rect0) -> None:
    """Only the cells in view (the painter is in level-0 coordinates)."""
    win = layer.window(rect0)
    if win is None:
        return
    c0, r0, c1, r1 = win
    cell, (ox, oy) = layer.cell, layer.origin
    target = QRectF(ox + c0 * cell, oy + r0 * cell, (c1 - c0) * cell, (r1 - r0) * cell)
    p.drawImage(target, heatmap_qimage(layer), QRectF(c0, r0, c1 - c0, r1 - r0))


def paint_point_density(p: QPainter, t: ViewTransform, x: np.ndarray, y: np.ndarray, rgb: tuple[int, int, int],
                        slope: float = 35.0) -> None:
    """Objects per 4x4 screen-pixel cell as one translucent image, whatever their number (screen coordinates)."""
    sx, sy = t.to_screen(x, y)
    counts = point_density(sx, sy, t.width, t.height)
    gh, gw = counts.shape
    p.drawImage(QRectF(0, 0, gw * 4, gh * 4), qimage_from_rgba(density_rgba(counts, rgb, slope)))


class _DetectionShapes:
    """Level-0 QRectF and QPolygonF of a layer's objects, made once per object when first drawn."""

    def __init__(self, n: int) -> None:
        self.rects: list[QRectF | None] = [None] * n
        self.polys: dict[int, QPolygonF] = {}


_SHAPES: "weakref.WeakKeyDictionary[DetectionLayer, _DetectionShapes]" = weakref.WeakKeyDictionary()


def _shapes(layer: DetectionLayer) -> _DetectionShapes:
    s = _SHAPES.get(layer)
    if s is None or len(s.rects) != len(layer):
        s = _SHAPES[layer] = _DetectionShapes(len(layer))
    return s


def detection_rects(layer: DetectionLayer, idx: np.ndarray) -> list[QRectF]:
    cache, b, out = _shapes(layer).rects, layer.boxes, []
    for i in idx.tolist():
        r = cache[i]
        if r is None:
            x0, y0, x1, y1 = b[i].tolist()
            r = cache[i] = QRectF(x0, y0, x1 - x0, y1 - y0)
        out.append(r)
    return out


def detection_polygon(layer: DetectionLayer, i: int) -> QPolygonF:
    polys = _shapes(layer).polys
    poly = polys.get(i)
    if poly is None:
        poly = polys[i] = polygon_from_array(layer.polygons[i])
    return poly


def polygon_from_array(points) -> QPolygonF:
    """A QPolygonF of (k, 2) points, written through the polygon's own memory (pairs of doubles) instead of
    one QPointF per vertex (6x faster): the first frame at 40x makes hundreds of outlines."""
    if not isinstance(points, np.ndarray):
        points = np.asarray(points, np.float64)
    points = points.reshape(-1, 2)
    poly = QPolygonF()
    poly.resize(len(points))
    if len(points):
        np.frombuffer(Shiboken.VoidPtr(poly.data(), 16 * len(points), True), np.float64).reshape(-1, 2)[:] = points
    return poly


def paint_detections(p: QPainter, t: ViewTransform, layer: DetectionLayer, rect0) -> None:
    """The layer's objects in view, as a density raster, outlines or boxes (``layer.last_mode`` says which)."""
    idx = layer.rows_in(rect0)
    mode = layer.last_mode = layer.mode_for(len(idx), t.scale)
    if mode == "none":
        return
    if mode == "density":
        c = CLASS_COLORS[layer.main_class(idx) % len(CLASS_COLORS)]
        paint_point_density(p, t, layer.xy[idx, 0], layer.xy[idx, 1], (c.red(), c.green(), c.blue()))
        return
    cls_of = layer.classes[idx]
    p.save()
    p.setTransform(qtransform(t))
    p.setBrush(Qt.NoBrush)
    for c in np.unique(cls_of):
        pen = QPen(CLASS_COLORS[int(c) % len(CLASS_COLORS)], 1)  # width 1: Qt's fast line path
        pen.setCosmetic(True)
        p.setPen(pen)
        rows = idx[cls_of == c]
        if mode == "outlines":
            for i in rows:
                if len(layer.polygons[i]) >= 3:
                    p.drawPolygon(detection_polygon(layer, int(i)))
        else:
            p.drawRects(detection_rects(layer, rows))
    p.restore()
