"""Mouse and keys on the slide canvas: pan by dragging, zoom with the wheel, draw rectangles, ellipses,
polygons and freehand outlines (emitted in level-0 pixels as ``annotation_drawn``), click to select."""
from __future__ import annotations

import math

from PySide6.QtCore import QPointF, Qt

from engines.pathology.viewstate import point_in_polygon


class CanvasInteraction:
    """Mixed into :class:`~app.workspaces.pathology.canvas.SlideCanvas` (which holds the state it uses)."""

    TOOLS = ("pan", "rectangle", "ellipse", "polygon", "freehand")

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
        if self.meta is None:
            return
        x, y = self.transform().to_level0(pos.x(), pos.y())
        w0, h0 = self.meta.dimensions
        self.cursor_moved.emit(x, y) if 0 <= x < w0 and 0 <= y < h0 else self.cursor_moved.emit(math.nan, math.nan)
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

    _KEY_PANS = {Qt.Key_Left: (80, 0), Qt.Key_Right: (-80, 0), Qt.Key_Up: (0, 80), Qt.Key_Down: (0, -80)}

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key_Escape:
            self._drawing = []
            self.update()
        elif key in (Qt.Key_Return, Qt.Key_Enter) and self.tool == "polygon":
            if len(self._drawing) >= 3:
                self._drawing.append(self._drawing[-1])
                self.finish_polygon()
        elif key in self._KEY_PANS:
            self.pan_by(*self._KEY_PANS[key])
        elif key in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom_by(1.5)
        elif key == Qt.Key_Minus:
            self.zoom_by(1 / 1.5)
        else:
            super().keyPressEvent(event)

    def _click_select(self, pos: QPointF) -> None:
        x, y = self.transform().to_level0(pos.x(), pos.y())
        for i in self.annotations_in((x, y, x, y))[::-1]:  # only those whose box holds the point; topmost first
            a = self._annotations[i]
            if len(a.points) >= 3 and point_in_polygon(x, y, a.points):
                self.selected_id = a.id
                self.annotation_clicked.emit(a.id)
                self.update()
                return
        if self.selected_id:
            self.selected_id = ""
            self.annotation_clicked.emit("")
            self.update()
