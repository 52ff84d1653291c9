"""The music view draws the session's beat grid: the analysis (beats, meter, tempo, key) arrives from a worker after
opening; a known BeatEstimate injected into the session puts faint beat lines, bar lines and bar numbers at its
times on the waveform and chord lanes (checked in the items and in the rendered pixels); the info line reads
"tempo 120 bpm · 4/4 · key A minor" and follows transpose; the "Snap to beats" box drives the session's snapping;
a recording without a steady pulse shows the estimator's warning and no grid."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from engines.music.beats import BeatEstimate
from engines.music.keys import KeyEstimate
from engines.music.session import RecordingAnalysis
from tests.music.test_trust_view import open_recording, render_wav

BEATS = np.arange(0.25, 16.0, 0.5)  # 120 bpm from 0.25 s
BARS = BEATS[::4]


def _open(qtbot, window, tmp_path, monkeypatch=None):
    view = open_recording(qtbot, window.switch_to("music"), render_wav(tmp_path / "cadence.wav",
                                                                      seconds_each=4.0))
    qtbot.waitUntil(lambda: view.session.analysis is not None, timeout=60_000)
    return view


def _inject(view, confidence=0.6, downbeats=BARS, warnings=()):
    analysis = RecordingAnalysis(BeatEstimate(BEATS, downbeats, 120.0, 4, confidence, warnings),
                                 KeyEstimate(9, "minor", 0.8, 0.1))
    view.session.set_analysis(analysis)
    return analysis


def test_the_analysis_arrives_from_a_worker_and_fills_the_info_line(qtbot, window, tmp_path, monkeypatch):
    import engines.music.session as session_module

    threads: list[str] = []
    real = session_module.analyse_recording

    def spy(*args, **kw):
        threads.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(session_module, "analyse_recording", spy)
    view = _open(qtbot, window, tmp_path)
    assert threads and threading.main_thread().name not in threads
    assert view.analysis_label.text() == view.session.info_line != ""
    assert "key" in view.analysis_label.text()
    assert view.snap_box.isChecked() == view.session.snap


def test_a_known_grid_is_drawn_at_its_beats_and_bars(qtbot, window, tmp_path):
    view = _open(qtbot, window, tmp_path)
    _inject(view)
    grid = view.beat_grid
    np.testing.assert_allclose(grid.bar_positions(), BARS)
    np.testing.assert_allclose(np.sort(np.concatenate([grid.beat_line_positions(), grid.bar_positions()])), BEATS)
    assert len(grid.beat_line_positions()) == len(BEATS) - len(BARS)
    # the same lines on the waveform lane, and one number per bar at its downbeat on the chord lane
    np.testing.assert_allclose(grid.bar_items[0].getData()[0][0::3], grid.bar_items[1].getData()[0][0::3])
    assert grid.bar_items[0] in view.wave_plot.items and grid.bar_items[1] in view.chord_plot.items
    assert [lab.toPlainText() for lab in grid.bar_labels] == [str(i + 1) for i in range(len(BARS))]
    np.testing.assert_allclose([lab.pos().x() for lab in grid.bar_labels], BARS)
    assert view.analysis_label.text() == "tempo 120 bpm · 4/4 · key A minor"
    view.transpose_spin.setValue(2)
    assert view.analysis_label.text() == "tempo 120 bpm · 4/4 · key B minor"


def test_the_bar_lines_are_where_the_pixels_are(qtbot, window, tmp_path):
    view = _open(qtbot, window, tmp_path)
    view.session.set_track(None)  # an empty chord lane: only the grid is drawn there
    _inject(view)
    view.wave_plot.setXRange(0.0, 8.0, padding=0)
    qtbot.wait(50)
    vb = view.chord_plot.getViewBox()
    image = view.plots.grab().toImage()
    from PySide6.QtCore import QPointF

    def brightness(t: float, dx: int = 0) -> float:
        scene = vb.mapViewToScene(QPointF(t, 0.3))
        pos = view.plots.mapFromScene(scene)
        return float(np.mean(image.pixelColor(pos.x() + dx, pos.y()).getRgb()[:3]))

    for bar in BARS[BARS < 7.5]:
        on = max(brightness(bar, d) for d in (-1, 0, 1))
        off = brightness(bar + 0.25)  # half-way to the next beat: background
        assert on > off + 20, (bar, on, off)
    beat = BEATS[1]
    assert brightness(beat) > brightness(beat + 0.25) or brightness(beat, 1) > brightness(beat + 0.25)


def test_the_snap_box_drives_the_sessions_snapping(qtbot, window, tmp_path):
    view = _open(qtbot, window, tmp_path)
    _inject(view)
    assert view.snap_box.isEnabled() and view.snap_box.isChecked() and view.session.snap
    track = view.track
    assert len(track.segments) >= 2
    end = track.segments[0].end
    view.move_boundary(0, end + 0.37)
    assert track.segments[0].end == pytest.approx(view.session.beats.nearest_beat(end + 0.37))
    view.snap_box.setChecked(False)
    assert not view.session.snap
    view.move_boundary(0, end + 0.37)
    assert track.segments[0].end == pytest.approx(end + 0.37)
    _inject(view, confidence=0.05)  # unsure bar lines: off by default, the user may turn it on
    assert view.snap_box.isEnabled() and not view.snap_box.isChecked()


def test_no_steady_pulse_shows_the_warning_and_no_grid(qtbot, window, tmp_path):
    view = _open(qtbot, window, tmp_path)
    _inject(view)
    warning = "no steady pulse: the recording has no rhythmic onsets to follow; the beat grid is not shown"
    _inject(view, confidence=0.0, downbeats=BEATS[:0], warnings=(warning,))
    grid = view.beat_grid
    assert len(grid.bar_positions()) == 0 and len(grid.beat_line_positions()) == 0 and grid.bar_labels == []
    assert view.analysis_label.text() == f"key A minor · {warning}"
    assert not view.snap_box.isEnabled() and not view.snap_box.isChecked()
