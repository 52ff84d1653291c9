"""The overview: the slide's thumbnail with the visible heatmaps and the view rectangle; click or drag to move."""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from app.workspaces.pathology.overlays import heatmap_qimage


class Navigator(QWidget):
    """The thumbnail with the view rectangle of a :class:`SlideCanvas`; click or drag to move the view."""

    def __init__(self, canvas, parent: QWidget | None = None) -> None:
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
                x, y, w, h = hm.extent()
                p.drawImage(QRectF(ox + x * s, oy + y * s, w * s, h * s), heatmap_qimage(hm))
        x0, y0, x1, y1 = self.canvas.transform().visible_level0()
        p.setPen(QPen(QColor(230, 30, 30), 2))
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
