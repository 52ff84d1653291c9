"""One plane of the volume (axial, coronal or sagittal) drawn with pyqtgraph, in millimetres.

Scene coordinates are millimetres from the volume's first voxel edge, so the aspect ratio follows the
spacing. The view draws and forwards input to its ``RadiologyWorkspace``; it computes nothing but what is
drawn (the slice it shows, the outline of a label slice).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainterPath
from PySide6.QtWidgets import (QGraphicsLineItem, QGraphicsPathItem, QGraphicsRectItem, QHBoxLayout, QLabel,
                               QSlider, QWidget)

# plane -> (array axis held fixed, (horizontal voxel axis, vertical voxel axis), labels L R T B, invertY)
PLANES = {
    "axial": (0, ("i", "j"), ("R", "L", "A", "P"), True),
    "coronal": (1, ("i", "k"), ("R", "L", "S", "I"), False),
    "sagittal": (2, ("j", "k"), ("A", "P", "S", "I"), False),
}
AXIS_INDEX = {"i": 0, "j": 1, "k": 2}


class _SliceBox(pg.ViewBox):
    """ViewBox with radiology mouse bindings: wheel scrolls slices (Ctrl+wheel zooms), left click/drag moves
    the crosshair (or draws with the active tool), middle or Shift+left drag pans, right drag sets W/L."""

    def __init__(self, view: "SliceView") -> None:
        super().__init__(lockAspect=True, invertY=PLANES[view.plane][3], enableMenu=False)
        self.view = view

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & Qt.ControlModifier:
            self.view.user_moved = True
            super().wheelEvent(ev, axis)
        else:
            self.view.scroll_requested.emit(1 if ev.delta() > 0 else -1)
            ev.accept()

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.LeftButton:
            pos = self.mapSceneToView(ev.scenePos())
            if self.view.tool in ("brush", "eraser"):
                self.view.paint_requested.emit(self.view.plane, float(pos.x()), float(pos.y()), True, True)
            else:
                self.view.point_selected(pos)
            ev.accept()
        else:
            ev.ignore()

    def mouseDragEvent(self, ev, axis=None):
        button = ev.button()
        if button == Qt.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.buttonDownScreenPos(button)
            self.view.window_drag.emit(float(delta.x()), float(delta.y()), bool(ev.isStart()), bool(ev.isFinish()))
            return
        if button == Qt.LeftButton and not (ev.modifiers() & Qt.ShiftModifier):
            ev.accept()
            start = self.mapSceneToView(ev.buttonDownScenePos(button))
            pos = self.mapSceneToView(ev.scenePos())
            if self.view.tool in ("ruler", "roi"):
                self.view.tool_drag(start, pos, ev.isFinish())
            elif self.view.tool in ("brush", "eraser"):
                self.view.paint_requested.emit(self.view.plane, float(pos.x()), float(pos.y()),
                                               bool(ev.isStart()), bool(ev.isFinish()))
            else:
                self.view.point_selected(pos)
            return
        self.view.user_moved = True
        super().mouseDragEvent(ev, axis)  # middle / shift+left: pan


class SliceView(QWidget):
    """A plane of the current volume with overlays, crosshair, orientation labels and measurements."""

    scroll_requested = Signal(int)
    cursor_requested = Signal(str, float, float)  # plane, horizontal mm, vertical mm
    window_drag = Signal(float, float, bool, bool)
    hover = Signal(str, float, float)  # plane, horizontal mm, vertical mm
    measure_drag = Signal(str, str, float, float, float, float, bool)  # plane, kind, a h/v mm, b h/v mm, done
    paint_requested = Signal(str, float, float, bool, bool)  # plane, h mm, v mm, stroke start, stroke end
    slice_requested = Signal(str, int)  # plane, slice index (from the slider)

    def __init__(self, plane: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plane = plane
        self.tool = "navigate"
        self.fixed_axis, (self.h_axis, self.v_axis), self.edge_labels, _ = PLANES[plane]
        self.graphics = pg.GraphicsView(background="k")
        self.box = _SliceBox(self)
        self.graphics.setCentralItem(self.box)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.compare_image = pg.ImageItem(axisOrder="row-major")
        self.compare_image.setZValue(5)
        self.compare_image.hide()
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(10)
        self.box.addItem(self.image)
        self.box.addItem(self.compare_image)
        self.box.addItem(self.overlay)
        self.overlays = [self.overlay]  # one ImageItem per visible label layer
        pen = pg.mkPen(QColor(255, 220, 0, 150), width=1)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self.vline, self.hline):
            line.setZValue(20)
            self.box.addItem(line, ignoreBounds=True)
        self.boxes_item = QGraphicsPathItem()
        self.boxes_item.setPen(pg.mkPen(QColor(0, 255, 255), width=2, cosmetic=True))
        self.boxes_item.setZValue(15)
        self.box.addItem(self.boxes_item, ignoreBounds=True)
        self._live_line: QGraphicsLineItem | None = None  # the ruler or ROI being dragged
        self._live_rect: QGraphicsRectItem | None = None
        self._drawn_items: list = []  # the shown slice's measurements, as drawn
        self.drawn: list[tuple] = []
        self.measure_text = pg.TextItem(color=(255, 255, 0), anchor=(0, 1))
        self.measure_text.setZValue(30)
        self.box.addItem(self.measure_text, ignoreBounds=True)
        self.measure_text.hide()
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.slider = QSlider(Qt.Vertical)
        self.slider.setToolTip("Slice")
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(lambda v: self.slice_requested.emit(self.plane, int(v)))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.slider)
        font = QFont()
        font.setBold(True)
        font.setPointSize(11)
        self.edge: dict[str, QLabel] = {}
        for name, text in zip(("left", "right", "top", "bottom"), self.edge_labels):
            label = QLabel(text, self.graphics)
            label.setFont(font)
            label.setStyleSheet("color: #ffb000; background: transparent;")
            label.setAttribute(Qt.WA_TransparentForMouseEvents)
            self.edge[name] = label
        self.corner = QLabel(self.graphics)
        self.corner.setStyleSheet("color: #e0e0e0; background: transparent;")
        self.corner.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.title = QLabel(plane.capitalize(), self.graphics)
        self.title.setStyleSheet("color: #8fd0ff; background: transparent; font-weight: bold;")
        self.title.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.extent = (1.0, 1.0)  # mm of the image rect
        self.pixel_mm = (1.0, 1.0)  # horizontal, vertical
        self._shapes: dict[int, tuple] = {}
        self.user_moved = False  # after a zoom or pan, resizing keeps the user's view

    # -- geometry ---------------------------------------------------------------------------------------
    def set_grid(self, shape_kji: tuple[int, int, int], spacing_ijk: tuple[float, float, float]) -> None:
        sizes = {"i": shape_kji[2], "j": shape_kji[1], "k": shape_kji[0]}
        self.pixel_mm = (spacing_ijk[AXIS_INDEX[self.h_axis]], spacing_ijk[AXIS_INDEX[self.v_axis]])
        self.extent = (sizes[self.h_axis] * self.pixel_mm[0], sizes[self.v_axis] * self.pixel_mm[1])
        self._shapes: dict[int, tuple] = {}
        self.reset_view()

    def _place(self, item, data: np.ndarray, rect: QRectF | None = None) -> None:
        """ImageItem.setRect only holds for the image size it was computed with: redo it on a new shape."""
        key = (data.shape, None if rect is None else (rect.x(), rect.width()))
        if self._shapes.get(id(item)) != key:
            item.setRect(rect or QRectF(0, 0, *self.extent))
            self._shapes[id(item)] = key

    def reset_view(self) -> None:
        self.user_moved = False
        self.box.setRange(QRectF(0, 0, *self.extent), padding=0.02)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if not self.user_moved:
            self.box.setRange(QRectF(0, 0, *self.extent), padding=0.02)
        w, h = self.graphics.width(), self.graphics.height()
        for label in self.edge.values():
            label.adjustSize()
        self.edge["left"].move(6, h // 2 - 10)
        self.edge["right"].move(w - self.edge["right"].width() - 6, h // 2 - 10)
        self.edge["top"].move(w // 2 - 5, 4)
        self.edge["bottom"].move(w // 2 - 5, h - self.edge["bottom"].height() - 4)
        self.title.move(6, 4)
        self.title.adjustSize()
        self.corner.move(6, h - self.corner.height() - 4)

    def set_slice(self, index: int, count: int) -> None:
        """Show the slice position on the slider without echoing it back as a request."""
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, count - 1))
        self.slider.setValue(index)
        self.slider.blockSignals(False)

    def set_corner_text(self, text: str) -> None:
        self.corner.setText(text)
        self.corner.adjustSize()
        self.corner.move(6, self.graphics.height() - self.corner.height() - 4)

    # -- drawing ------------------------------------------------------------------------------------------
    def show_image(self, data: np.ndarray, levels: tuple[float, float], lut: np.ndarray | None) -> None:
        self.image.setImage(data, autoLevels=False, levels=levels, lut=lut)
        self._place(self.image, data)

    def show_overlay(self, labels: np.ndarray | None, lut: np.ndarray | None, opacity: float) -> None:
        self.show_overlays([] if labels is None or lut is None else [(labels, lut, opacity)])

    def show_overlays(self, layers: list[tuple[np.ndarray, np.ndarray, float]]) -> None:
        """Draw label slices bottom to top, one ImageItem each (made on demand), each with its opacity."""
        while len(self.overlays) < len(layers):
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(10 + len(self.overlays))
            self.box.addItem(item)
            self.overlays.append(item)
        for n, item in enumerate(self.overlays):
            if n < len(layers):
                labels, lut, opacity = layers[n]
                item.setImage(labels, autoLevels=False, levels=(0, len(lut) - 1), lut=lut)
                self._place(item, labels)
                item.setOpacity(opacity)
                item.show()
            else:
                if item.image is not None:
                    item.clear()
                    # pyqtgraph's Indexed8 fast path wraps the label slice itself in the QImage it keeps:
                    # drop it too, or one slice view keeps the whole old label volume alive
                    item.qimage = None
                item.hide()

    def show_compare(self, data: np.ndarray | None, levels=None, lut=None, swipe: float | None = None) -> None:
        if data is None:
            if self.compare_image.image is not None:
                self.compare_image.clear()
                self.compare_image.qimage = None
            self.compare_image.hide()
            return
        rect = None
        if swipe is not None:
            cols = data.shape[1]
            c0 = int(round(cols * swipe))
            data = data[:, c0:]
            rect = QRectF(c0 * self.pixel_mm[0], 0, (cols - c0) * self.pixel_mm[0], self.extent[1])
        if data.size == 0:
            self.compare_image.hide()
            return
        self.compare_image.setImage(data, autoLevels=False, levels=levels, lut=lut)
        self._place(self.compare_image, data, rect)
        self.compare_image.show()

    def set_crosshair(self, h_mm: float, v_mm: float, visible: bool = True) -> None:
        self.vline.setPos(h_mm)
        self.hline.setPos(v_mm)
        self.vline.setVisible(visible)
        self.hline.setVisible(visible)

    def set_boxes(self, rects_mm: list[tuple[float, float, float, float]]) -> None:
        path = QPainterPath()
        for x0, y0, x1, y1 in rects_mm:
            path.addRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)))
        self.boxes_item.setPath(path)

    # -- input ----------------------------------------------------------------------------------------------
    def point_selected(self, pos) -> None:
        self.cursor_requested.emit(self.plane, float(pos.x()), float(pos.y()))

    def _mouse_moved(self, scene_pos) -> None:
        if self.box.sceneBoundingRect().contains(scene_pos):
            p = self.box.mapSceneToView(scene_pos)
            self.hover.emit(self.plane, float(p.x()), float(p.y()))

    def tool_drag(self, start, pos, finished: bool) -> None:
        """A ruler or ROI being dragged (view mm): drawn live here, measured and kept by the workspace."""
        kind = self.tool if self.tool in ("ruler", "roi") else None
        if kind is None:
            return
        line = QLineF(QPointF(start), QPointF(pos))
        if kind == "ruler":
            if self._live_line is None:
                self._live_line = self._line_item(QColor(255, 255, 0))
            self._live_line.setLine(line)
        else:
            if self._live_rect is None:
                self._live_rect = self._rect_item(QColor(0, 255, 120))
            self._live_rect.setRect(QRectF(QPointF(start), QPointF(pos)).normalized())
        if finished:
            self._drop_live()
        self.measure_drag.emit(self.plane, kind, float(start.x()), float(start.y()), float(pos.x()),
                               float(pos.y()), bool(finished))

    def _line_item(self, colour: QColor) -> QGraphicsLineItem:
        item = QGraphicsLineItem()
        item.setPen(pg.mkPen(colour, width=2, cosmetic=True))
        item.setZValue(25)
        self.box.addItem(item, ignoreBounds=True)
        return item

    def _rect_item(self, colour: QColor) -> QGraphicsRectItem:
        item = QGraphicsRectItem()
        item.setPen(pg.mkPen(colour, width=2, cosmetic=True))
        item.setZValue(25)
        self.box.addItem(item, ignoreBounds=True)
        return item

    def _drop_live(self) -> None:
        for item in (self._live_line, self._live_rect):
            if item is not None:
                self.box.removeItem(item)
        self._live_line = self._live_rect = None

    def show_measurements(self, items: list[tuple[str, tuple[float, float], tuple[float, float], str]]) -> None:
        """Draw the measurements of the shown slice: (kind, point a mm, point b mm, label text) each."""
        for graphic in self._drawn_items:
            self.box.removeItem(graphic)
        self._drawn_items = []
        self.drawn = list(items)
        for kind, a, b, text in items:
            if kind == "ruler":
                shape = self._line_item(QColor(255, 255, 0))
                shape.setLine(QLineF(QPointF(*a), QPointF(*b)))
                at = QPointF(*b)
            else:
                shape = self._rect_item(QColor(0, 255, 120))
                shape.setRect(QRectF(QPointF(*a), QPointF(*b)).normalized())
                at = QPointF(min(a[0], b[0]), min(a[1], b[1]))
            label = pg.TextItem(text, color=(255, 255, 0) if kind == "ruler" else (0, 255, 120), anchor=(0, 1))
            label.setZValue(30)
            label.setPos(at)
            self.box.addItem(label, ignoreBounds=True)
            self._drawn_items += [shape, label]

    def ruler_points_mm(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """End points (view mm) of the last ruler drawn on the shown slice, read back from what is drawn."""
        lines = [g for g in self._drawn_items if isinstance(g, QGraphicsLineItem)]
        if not lines:
            return None
        line = lines[-1].line()
        a, b = lines[-1].mapToParent(line.p1()), lines[-1].mapToParent(line.p2())
        return (float(a.x()), float(a.y())), (float(b.x()), float(b.y()))

    def show_measure_text(self, text: str, at) -> None:
        if not text or at is None:
            self.measure_text.hide()
            return
        self.measure_text.setText(text)
        self.measure_text.setPos(at)
        self.measure_text.show()

    def clear_measurements(self) -> None:
        self._drop_live()
        self.show_measurements([])
        self.measure_text.hide()
