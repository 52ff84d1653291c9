"""The beat grid over the music timeline: faint lines on every beat, stronger lines on every bar with its number.

It draws an engines.music.beats.BeatEstimate that the session holds (found in a worker after opening) and
computes nothing. One line item per kind and lane (a few hundred beats are one path, not hundreds of items); the
bar numbers thin out when the bars get too close to read.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QFont

BEAT_PEN = (255, 255, 255, 38)
BAR_PEN = (255, 255, 255, 120)
LABEL_COLOR = (225, 225, 235)
MIN_LABEL_PX = 26  # bar numbers closer than this on screen are thinned (every 2nd, 4th, ... bar)
SPAN = 1e4  # the lines reach far past any lane's y range (they are added with ignoreBounds)


def vertical_lines(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays that draw one vertical line per x as one path (NaN-separated)."""
    xs = np.asarray(xs, dtype=np.float64)
    x = np.repeat(xs, 3)
    y = np.tile(np.array([-SPAN, SPAN, np.nan]), len(xs))
    x[2::3] = np.nan
    return x, y


class BeatGridOverlay:
    """Beat and bar lines on ``plots`` (the lanes that show time), bar numbers along the top of ``label_plot``."""

    def __init__(self, plots, label_plot) -> None:
        self.plots = list(plots)
        self.label_plot = label_plot
        self.beats = None
        self.beat_items, self.bar_items = [], []
        for plot in self.plots:
            beat = pg.PlotDataItem(pen=pg.mkPen(BEAT_PEN, width=1), connect="finite")
            bar = pg.PlotDataItem(pen=pg.mkPen(BAR_PEN, width=1), connect="finite")
            for item, z in ((beat, 4), (bar, 5)):
                item.setZValue(z)
                plot.addItem(item, ignoreBounds=True)
            self.beat_items.append(beat)
            self.bar_items.append(bar)
        self.bar_labels: list[pg.TextItem] = []
        self._font = QFont()
        self._font.setPointSize(7)

    def show(self, beats) -> None:
        """Draw ``beats`` (a BeatEstimate with a grid) or clear the grid (None)."""
        if beats is self.beats:
            return
        self.beats = beats
        beat_x = beats.beats if beats is not None else np.zeros(0)
        bar_x = beats.downbeats if beats is not None else np.zeros(0)
        on_bar = np.isin(np.round(beat_x, 4), np.round(bar_x, 4))
        for item, xs in [(i, beat_x[~on_bar]) for i in self.beat_items] + [(i, bar_x) for i in self.bar_items]:
            if len(xs):
                item.setData(*vertical_lines(xs))
            else:
                item.setData([], [])
        for label in self.bar_labels:
            self.label_plot.removeItem(label)
        self.bar_labels = []
        for number, x in enumerate(bar_x, start=1):
            label = pg.TextItem(str(number), color=LABEL_COLOR, anchor=(0, 0))
            label.setFont(self._font)
            label.setPos(float(x), 1.0)
            label.setZValue(6)
            self.label_plot.addItem(label, ignoreBounds=True)
            self.bar_labels.append(label)
        self.update_label_visibility()

    def beat_line_positions(self) -> np.ndarray:
        """The x of the faint lines drawn on the first lane (the beats that are not the first of a bar)."""
        return _line_xs(self.beat_items[0])

    def bar_positions(self) -> np.ndarray:
        """The x of the bar lines drawn on the first lane."""
        return _line_xs(self.bar_items[0])

    def update_label_visibility(self) -> None:
        """Show every bar number when there is room, else every 2nd, 4th, 8th ... (always the first)."""
        if not self.bar_labels or self.beats is None:
            return
        vb = self.label_plot.getViewBox()
        (x0, x1), _ = vb.viewRange()
        px_per_s = max(1.0, vb.width()) / max(1e-9, x1 - x0)
        bars = self.beats.downbeats
        bar_s = float(np.median(np.diff(bars))) if len(bars) > 1 else 1.0
        every = 1
        while bar_s * every * px_per_s < MIN_LABEL_PX and every < 1024:
            every *= 2
        for number, label in enumerate(self.bar_labels):
            label.setVisible(number % every == 0)


def _line_xs(item: pg.PlotDataItem) -> np.ndarray:
    x, _ = item.getData()
    if x is None or not len(x):
        return np.zeros(0)
    return np.asarray(x[0::3], dtype=np.float64)
