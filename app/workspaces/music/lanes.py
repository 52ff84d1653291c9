"""pyqtgraph items for the music workspace: the chord lane (blocks with confidence shading) and helpers.

The chord lane only draws a ChordTrack and reports clicks; edits happen in the track (engines/music/chords.py)
and the view redraws. Reusable by the harmonizer and melody tools (any list of ChordSegment).
"""
from __future__ import annotations

import colorsys

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPicture

from engines.music.chords import ChordSegment, parse_label


def chord_color(label: str, confidence: float = 1.0) -> QColor:
    """Hue by root around the circle of fifths (neighbouring keys look alike); minor darker; N grey.
    Low confidence fades the block, so doubtful chords stand out to the eye."""
    chord = parse_label(label)
    alpha = int(70 + 185 * max(0.0, min(1.0, confidence)))
    if chord.is_none:
        return QColor(120, 120, 120, alpha)
    fifths = (chord.root * 7) % 12
    minor = chord.quality in ("min", "min7", "min6", "minmaj7", "dim", "dim7", "hdim7")
    r, g, b = colorsys.hsv_to_rgb(fifths / 12.0, 0.55, 0.62 if minor else 0.88)
    return QColor(int(r * 255), int(g * 255), int(b * 255), alpha)


class ChordLaneItem(pg.GraphicsObject):
    """Chord blocks on a time axis (x in seconds, y in [0, 1]); emits clicks with time and segment index."""

    clicked = Signal(float, int)  # time, segment index (-1 when none)
    double_clicked = Signal(float, int)

    def __init__(self, display_symbol=None) -> None:
        super().__init__()
        self.segments: list[ChordSegment] = []
        self.selected: int | None = None
        self.display_symbol = display_symbol or (lambda seg: parse_label(seg.label).symbol())
        self._picture = QPicture()
        self._symbols: list[str] = []  # each segment's name, computed once per set_segments
        self._labels: list[pg.TextItem] = []  # a pool: only the segments in view get one (see _relabel)
        self._bounds = QRectF(0, 0, 1, 1)

    def set_segments(self, segments: list[ChordSegment], selected: int | None = None) -> None:
        self.prepareGeometryChange()
        self.segments = list(segments)
        self.selected = selected
        end = self.segments[-1].end if self.segments else 1.0
        self._bounds = QRectF(0, 0, max(end, 1e-3), 1)
        self._redraw()
        self._relabel()
        self.update()

    def _redraw(self) -> None:
        self._picture = QPicture()
        p = QPainter(self._picture)
        border = pg.mkPen(QColor(30, 30, 30), width=0)
        for i, seg in enumerate(self.segments):
            p.setPen(border)
            p.setBrush(QBrush(chord_color(seg.label, seg.confidence)))
            p.drawRect(QRectF(seg.start, 0.08, seg.end - seg.start, 0.84))
        if self.selected is not None and 0 <= self.selected < len(self.segments):
            seg = self.segments[self.selected]
            pen = QPen(QColor(255, 215, 0))
            pen.setWidth(3)
            pen.setCosmetic(True)
            p.setPen(pen)
            p.setBrush(Qt.NoBrush)
            p.drawRect(QRectF(seg.start, 0.04, seg.end - seg.start, 0.92))
        p.end()

    def _relabel(self) -> None:
        """Name the segments anew (after an edit, a selection or a transpose) and show those in view."""
        self._symbols = [self.display_symbol(seg) for seg in self.segments]
        self.update_label_visibility()

    def update_label_visibility(self) -> None:
        """Label the segments in view that are wide enough for their name. TextItems are pooled and only
        the visible ones are placed: a 5-minute track has hundreds of chords, and making a TextItem per
        chord on every edit or selection stalled the GUI thread for 100-1,000 ms."""
        vb = self.getViewBox()
        if vb is None:
            return
        (x0, x1), _ = vb.viewRange()
        width_px = max(1.0, vb.width())
        s_per_px = max(1e-9, (x1 - x0) / width_px)
        shown = 0
        for seg, text in zip(self.segments, self._symbols):
            if not (seg.end > x0 and seg.start < x1 and (seg.end - seg.start) / s_per_px >= 8 * len(text) + 8):
                continue
            if shown == len(self._labels):
                item = pg.TextItem(text, color=(255, 255, 255), anchor=(0, 0.5))
                item.setParentItem(self)
                self._labels.append(item)
            item = self._labels[shown]
            if item.toPlainText() != text:
                item.setPlainText(text)
            item.setPos(QPointF(seg.start, 0.5))
            item.setVisible(True)
            shown += 1
        for item in self._labels[shown:]:
            item.setVisible(False)

    def label_items(self) -> list[pg.TextItem]:
        """The chord names on screen now (one per segment in view that is wide enough for it)."""
        return [item for item in self._labels if item.isVisible()]

    def itemChange(self, change, value):  # labels need the view box, which exists only once added
        result = super().itemChange(change, value)
        if change == self.GraphicsItemChange.ItemSceneHasChanged and self.segments:
            self.update_label_visibility()
        return result

    def paint(self, painter, *args) -> None:
        painter.drawPicture(0, 0, self._picture)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def index_at(self, t: float) -> int:
        for i, seg in enumerate(self.segments):
            if seg.start <= t < seg.end:
                return i
        return -1

    def mouseClickEvent(self, ev) -> None:
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        t = float(ev.pos().x())
        ev.accept()
        if ev.double():
            self.double_clicked.emit(t, self.index_at(t))
        else:
            self.clicked.emit(t, self.index_at(t))
