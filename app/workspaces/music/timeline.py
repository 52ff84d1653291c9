"""The music workspace's chord timeline: an overview strip over five linked lanes (waveform, constant-Q spectrum,
chromagram, the editable chord lane and the reference lane), with playheads, draggable chord boundaries and the
beat grid (beat_grid.py: beat and bar lines on the waveform and chord lanes, bar numbers on the chord lane).

It only draws what it is given (an opened recording, a chord track, the agreement scores) and reports what the
user did as signals; the session (engines/music/session.py) holds the state and makes the edits.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.workspaces.music.beat_grid import BeatGridOverlay
from app.workspaces.music.lanes import ChordLaneItem
from engines.music.audio import FMIN_MIDI
from engines.music.chords import PITCH_NAMES, ChordTrack, parse_label

LANES = (("wave_plot", "Waveform"), ("cqt_plot", "Constant-Q (log)"), ("chroma_plot", "Chroma"),
         ("chord_plot", "Chords"), ("ref_plot", "Reference"))
REF_ROW = 4


def display_arrays(opened) -> dict:
    """What ``show_recording`` draws besides the envelope, computed from the arrays (run it in the load job:
    percentiles of a 5-minute CQT took tens of ms in the GUI thread, and pyqtgraph's own float-to-colour-index
    conversion of it 100 ms and more): the waveform's peak and the CQT and chroma images as colour-map indices
    with their levels."""
    clip, feats = opened.clip, opened.features
    out = {"peak": max(float(np.abs(clip.samples).max()) if len(clip.samples) else 0.0, 1e-3)}
    if feats is not None and feats.n_frames:
        lo, hi = np.percentile(feats.logcqt, (5, 99.7))
        out["cqt"] = _colour_indices(feats.logcqt, (lo, max(hi, lo + 1e-3)))
        chroma = feats.chroma / np.maximum(feats.chroma.max(axis=1, keepdims=True), 1e-9)
        out["chroma"] = _colour_indices(chroma, (0.0, 1.0))
    return out


def _colour_indices(image: np.ndarray, levels: tuple[float, float], colours: int = 256) -> tuple[np.ndarray, tuple]:
    """(image, levels) for ImageItem.setImage: a finite float image becomes the uint8 indices into a
    ``colours``-entry colour map that pyqtgraph itself would compute when painting (same scale, offset and
    clipping), shown with levels (0, 255); an image with NaN or inf stays float (pyqtgraph masks those)."""
    if not np.isfinite(image).all():
        return image, levels
    from pyqtgraph.functions import rescaleData

    lo, hi = float(levels[0]), float(levels[1])
    scale = colours / ((hi - lo) or 1.0)
    return rescaleData(image, scale, lo, dtype=np.uint8, clip=(0, colours - 1)), (0, 255)


def waveform_envelope(samples: np.ndarray, sr: int, points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max pairs per bin for drawing a long waveform quickly (x in seconds)."""
    n = len(samples)
    if n == 0:
        return np.zeros(2), np.zeros(2)
    bins = max(1, min(points, n))
    edges = np.linspace(0, n, bins + 1).astype(int)
    lo = np.minimum.reduceat(samples, edges[:-1])
    hi = np.maximum.reduceat(samples, edges[:-1])
    x = np.repeat(edges[:-1] / sr, 2)
    y = np.empty(2 * bins, np.float32)
    y[0::2], y[1::2] = lo, hi
    return x, y


def _dark_plot_widget(height: int | None = None) -> pg.PlotWidget:
    plot = pg.PlotWidget()
    plot.setBackground((24, 24, 28))
    if height:
        plot.setFixedHeight(height)
    return plot


class ChordTimelineView(QWidget):
    """The overview and the lanes of one recording. Signals carry times in seconds and segment indices."""

    seek_requested = Signal(float)
    chord_clicked = Signal(float, int)  # time, segment index (-1 when none)
    chord_double_clicked = Signal(float, int)
    boundary_moved = Signal(int, float)  # boundary after segment index, new time

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.track: ChordTrack | None = None
        pg.setConfigOptions(antialias=False)
        self._build_overview()
        self._build_lanes()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.overview)
        lay.addWidget(self.plots, 1)

    # -- layout --------------------------------------------------------------------------------------
    def _build_overview(self) -> None:
        # the whole recording at a glance; the shaded window is what the lanes below show (drag it to scroll)
        self.overview = _dark_plot_widget(56)
        self.overview.setMouseEnabled(x=False, y=False)
        self.overview.setMenuEnabled(False)
        self.overview.hideButtons()
        self.overview.hideAxis("bottom")
        self.overview.getAxis("left").setWidth(62)
        self.overview.getAxis("left").setStyle(showValues=False)
        self.overview.setLabel("left", "Overview")
        self.overview_curve = self.overview.plot(pen=pg.mkPen((120, 190, 255), width=1))
        self.overview_region = pg.LinearRegionItem((0, 1), brush=pg.mkBrush(255, 215, 0, 50),
                                                   pen=pg.mkPen((255, 215, 0), width=1))
        self.overview_region.setToolTip("The part shown below: drag it to scroll, drag an edge to zoom")
        self.overview_region.setZValue(10)
        self.overview.addItem(self.overview_region)
        self.overview_region.sigRegionChanged.connect(self._overview_dragged)
        self.overview.setVisible(False)

    def _build_lanes(self) -> None:
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground((24, 24, 28))
        for row, (attr, _name) in enumerate(LANES):
            setattr(self, attr, self.plots.addPlot(row=row, col=0))
        layout = self.plots.ci.layout
        for row, stretch in enumerate((2, 5, 3, 2, 2)):
            layout.setRowStretchFactor(row, stretch)
        self.wave_curve = self.wave_plot.plot(pen=pg.mkPen((120, 190, 255), width=1))
        self.cqt_image = pg.ImageItem()
        self.cqt_plot.addItem(self.cqt_image)
        self.chroma_image = pg.ImageItem()
        self.chroma_plot.addItem(self.chroma_image)
        self.lane = ChordLaneItem(self._display_symbol)
        self.chord_plot.addItem(self.lane)
        self.ref_lane = ChordLaneItem()
        self.ref_plot.addItem(self.ref_lane)
        self.cqt_image.setColorMap(pg.colormap.get("viridis"))
        self.chroma_image.setColorMap(pg.colormap.get("inferno"))
        for attr, name in LANES:
            plot = getattr(self, attr)
            plot.setMouseEnabled(x=True, y=False)
            plot.setMenuEnabled(False)
            plot.getAxis("left").setWidth(62)
            plot.setLabel("left", name)
            plot.hideButtons()
            if plot is not self.wave_plot:
                plot.setXLink(self.wave_plot)
            if plot is not self.ref_plot:
                plot.getAxis("bottom").setStyle(showValues=False)
        self.ref_plot.setLabel("bottom", "time (s)")
        self.chroma_plot.getAxis("left").setTicks([[(i + 0.5, PITCH_NAMES[i]) for i in (0, 4, 7, 11)],
                                                   [(i + 0.5, "") for i in range(12)]])
        self.wave_plot.getAxis("left").setStyle(showValues=False)
        self.wave_plot.getAxis("left").enableAutoSIPrefix(False)
        self.cqt_plot.getAxis("left").setTicks([[(m + 0.5, f"C{m // 12 - 1}") for m in range(24, 97, 12)]])
        for lane_plot in (self.chord_plot, self.ref_plot):
            lane_plot.setYRange(0, 1, padding=0)
            lane_plot.getAxis("left").setTicks([[]])
        self.wave_plot.setYRange(-1, 1, padding=0.02)
        self._show_reference_row(False)
        self.playheads = []
        for attr, _name in LANES:
            line = pg.InfiniteLine(0, angle=90, pen=pg.mkPen((255, 80, 80), width=2))
            line.setZValue(50)
            getattr(self, attr).addItem(line)
            self.playheads.append(line)
        self.boundary_lines: list[pg.InfiniteLine] = []
        self.beat_grid = BeatGridOverlay((self.wave_plot, self.chord_plot), self.chord_plot)
        self.lane.clicked.connect(self.chord_clicked)
        self.lane.double_clicked.connect(self.chord_double_clicked)
        self.plots.scene().sigMouseClicked.connect(self._scene_clicked)
        self.wave_plot.sigXRangeChanged.connect(self._range_changed)

    def _show_reference_row(self, shown: bool) -> None:
        # the time axis is under the lowest lane shown: the reference's, else the chords'
        self.chord_plot.getAxis("bottom").setStyle(showValues=not shown)
        self.chord_plot.setLabel("bottom", "" if shown else "time (s)")
        self.chord_plot.showLabel("bottom", not shown)
        self.ref_plot.setVisible(shown)
        self.plots.ci.layout.setRowStretchFactor(REF_ROW, 2 if shown else 0)
        self.plots.ci.layout.setRowMaximumHeight(REF_ROW, 1e6 if shown else 0)

    # -- drawing -------------------------------------------------------------------------------------
    def show_recording(self, opened, envelope: tuple[np.ndarray, np.ndarray]) -> None:
        """Draw a freshly opened recording (engines.music.session.OpenedRecording) and its waveform envelope."""
        clip, feats = opened.clip, opened.features
        shown = opened.extra.get("display") or display_arrays(opened)  # the load job made them, off this thread
        self.track = None
        self.wave_curve.setData(*envelope)
        peak = shown["peak"]
        self.wave_plot.setYRange(-peak, peak, padding=0.05)
        dur = max(clip.duration, 1e-3)
        if feats is not None and feats.n_frames:
            span = feats.n_frames * feats.frame_s
            cqt = feats.logcqt
            image, levels = shown["cqt"]
            self.cqt_image.setImage(image, levels=levels, autoLevels=False)
            self.cqt_image.setRect(0, FMIN_MIDI, span, cqt.shape[1] / 2)
            image, levels = shown["chroma"]
            self.chroma_image.setImage(image, levels=levels, autoLevels=False)
            self.chroma_image.setRect(0, 0, span, 12)
        self.cqt_plot.setYRange(FMIN_MIDI, FMIN_MIDI + 72, padding=0)
        self.chroma_plot.setYRange(0, 12, padding=0)
        # open on the first 20 s so chord names are readable; the wheel zooms out to the whole recording
        self.wave_plot.setLimits(xMin=0, xMax=dur, minXRange=0.5)
        self.overview_curve.setData(*envelope)
        self.overview.setXRange(0, dur, padding=0)
        self.overview.setYRange(-peak, peak, padding=0.05)
        self.overview_region.setBounds((0, dur))
        self.overview.setVisible(True)
        self.wave_plot.setXRange(0, min(dur, 20.0) if dur > 30.0 else dur, padding=0)
        self._sync_overview()
        reference = opened.reference
        self._show_reference_row(reference is not None)
        self.ref_plot.setLabel("left", "Reference")
        self.ref_lane.set_segments(reference.segments if reference is not None else [])
        self.lane.set_segments([])
        self._clear_boundaries()
        self.beat_grid.show(None)  # the new recording's grid comes when its analysis does

    def show_beats(self, beats) -> None:
        """Draw the beat grid of an engines.music.beats.BeatEstimate (None: no grid)."""
        self.beat_grid.show(beats)

    def show_track(self, track: ChordTrack | None, selected: int | None) -> None:
        self.track = track
        self.lane.set_segments(track.segments if track is not None else [], selected)
        self._update_boundaries(selected)

    def show_scores(self, scores: dict[str, float] | None, reference: ChordTrack | None) -> None:
        """The agreement with the reference on the reference lane's label (and its tooltip)."""
        if scores is None or reference is None:
            self.ref_plot.setLabel("left", "Reference")
            return
        self.ref_plot.setLabel("left", f"Ref. {scores['majmin'] * 100:.0f}%")
        self.ref_plot.getAxis("left").setToolTip(
            f"Reference {reference.source}: agreement (mir_eval WCSR) root {scores['root']:.2f}, "
            f"majmin {scores['majmin']:.2f}, sevenths {scores['sevenths']:.2f}")

    def set_playhead(self, t: float) -> None:
        for line in self.playheads:
            line.setValue(t)

    def _display_symbol(self, seg) -> str:
        return self.track.display_symbol(seg) if self.track is not None else parse_label(seg.label).symbol()

    # -- scrolling -----------------------------------------------------------------------------------
    def _range_changed(self, *_) -> None:
        self.lane.update_label_visibility()
        self.ref_lane.update_label_visibility()
        self.beat_grid.update_label_visibility()
        self._sync_overview()

    def _sync_overview(self) -> None:
        """Move the overview's window to what the lanes show (without echoing back into the lanes)."""
        (x0, x1), _ = self.wave_plot.getViewBox().viewRange()
        self.overview_region.blockSignals(True)
        self.overview_region.setRegion((x0, x1))
        self.overview_region.blockSignals(False)

    def _overview_dragged(self) -> None:
        x0, x1 = self.overview_region.getRegion()
        if x1 - x0 >= 0.5:
            self.wave_plot.setXRange(x0, x1, padding=0)

    # -- chord boundaries and clicks -----------------------------------------------------------------
    def _clear_boundaries(self) -> None:
        for line in self.boundary_lines:
            self.chord_plot.removeItem(line)
        self.boundary_lines = []

    def _update_boundaries(self, selected: int | None) -> None:
        self._clear_boundaries()
        if self.track is None or selected is None:
            return
        segs = self.track.segments
        for index in (selected - 1, selected):
            if 0 <= index < len(segs) - 1:
                line = pg.InfiniteLine(segs[index].end, angle=90, movable=True,
                                       pen=pg.mkPen((255, 215, 0), width=2),
                                       hoverPen=pg.mkPen((255, 255, 255), width=3))
                line.setToolTip("Drag to move the chord boundary")
                line.sigPositionChangeFinished.connect(lambda ln, i=index: self.boundary_moved.emit(i, ln.value()))
                self.chord_plot.addItem(line)
                self.boundary_lines.append(line)

    def _scene_clicked(self, ev) -> None:
        if ev.button() != Qt.LeftButton or not self.overview.isVisible():
            return
        pos = ev.scenePos()
        for plot in (self.wave_plot, self.cqt_plot, self.chroma_plot):
            vb = plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                self.seek_requested.emit(float(vb.mapSceneToView(pos).x()))
                return
