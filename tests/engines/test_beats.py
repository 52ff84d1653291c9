"""Beats, downbeats and meter (engines/music/beats.py) on rendered grooves with known bars and on a real recording
whose chord changes and charted bar lines are known."""
from __future__ import annotations

from pathlib import Path

import mir_eval
import numpy as np
import pytest

from engines.music.beats import estimate_beats

SR = 22050
REAL = Path(__file__).resolve().parents[2] / "resources/samples/music/sectoid-feelings-excerpt.ogg"


def _groove(beats_per_bar: int, bpm: float = 110.0, bars: int = 16, lead_in: float = 0.37) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A kick and a new chord on each downbeat, a hat on every beat: (samples, beat times, downbeat times)."""
    spb = 60.0 / bpm
    n_beats = bars * beats_per_bar
    y = np.zeros(int((lead_in + (n_beats + 2) * spb) * SR), dtype=np.float32)
    rng = np.random.default_rng(0)
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (164.8, 207.7, 246.9)]
    beats = lead_in + spb * np.arange(n_beats)
    for i, t in enumerate(beats):
        s = int(t * SR)
        hat = rng.normal(size=int(0.03 * SR)) * np.exp(-np.linspace(0, 8, int(0.03 * SR))) * 0.15
        y[s:s + hat.size] += hat
        if i % beats_per_bar == 0:
            k = np.arange(int(0.25 * SR)) / SR
            y[s:s + k.size] += 0.8 * np.sin(2 * np.pi * (50 + 60 * np.exp(-k * 30)) * k) * np.exp(-k * 12)
            chord = chords[(i // beats_per_bar) % len(chords)]
            d = np.arange(int(beats_per_bar * spb * SR)) / SR
            tone = sum(np.sin(2 * np.pi * f * d) for f in chord) * 0.08 * np.exp(-d * 0.7)
            end = min(len(y), s + tone.size)
            y[s:end] += tone[:end - s]
    return y, beats, beats[::beats_per_bar]


@pytest.mark.parametrize("meter", [3, 4])
def test_beats_bars_and_meter_of_a_groove(meter):
    y, beats, downbeats = _groove(meter)
    est = estimate_beats(y, SR)
    assert est.beats_per_bar == meter
    assert mir_eval.beat.f_measure(beats, est.beats) > 0.9
    assert mir_eval.beat.f_measure(downbeats, est.downbeats) > 0.9
    assert abs(est.bpm - 110) < 5 and est.confidence > 0.15 and not est.warnings
    assert est.bar_of(float(downbeats[5]) + 0.01) - est.bar_of(float(downbeats[2]) + 0.01) == 3
    assert est.nearest_beat(float(beats[5]) + 0.1) == pytest.approx(beats[5], abs=0.05)


#: chord changes in the excerpt (G at 0.47 s, Am at 3.06 s, D at 5.47 s: every ~2.5 s, a chord per bar of 4
#: beats at 95 bpm) and its chart's bar lines (Frets on Fire notes.mid of the same song: 95 bpm, bars from
#: 40.421 s of the song, i.e. 0.421 s into the excerpt, every 4 beats)
REAL_CHORD_CHANGES = (0.47, 3.06, 5.47)
REAL_CHART_BARS = 0.421 + np.arange(15) * 4 * 60 / 95


def test_a_real_recording_has_a_steady_pulse():
    from engines.music.audio import load_audio

    clip = load_audio(REAL, SR)
    est = estimate_beats(clip.samples, SR)
    intervals = np.diff(est.beats)
    assert len(est.beats) > 40 and 60 < est.bpm < 200
    assert np.std(intervals) / np.mean(intervals) < 0.1
    assert len(est.downbeats) >= len(est.beats) // est.beats_per_bar - 1


def test_the_real_recording_has_its_bar_lines_on_its_chord_changes():
    """Its 3+3+2 groove (no onsets on beats 2 and 4) made the plain tracker find 129 bpm in 3/4; the bar lines
    must fall where the chords change and where the song's chart puts them."""
    from engines.music.audio import load_audio

    est = estimate_beats(load_audio(REAL, SR).samples, SR)
    assert abs(est.bpm - 95) < 2 and est.beats_per_bar == 4 and not est.warnings
    for t in REAL_CHORD_CHANGES:
        assert np.min(np.abs(est.downbeats - t)) < 0.1, t
    off = np.array([np.min(np.abs(est.downbeats - t)) for t in REAL_CHART_BARS])
    assert (off < 0.07).all(), off.round(3)


def test_silence_and_a_click_free_drone_say_there_is_no_beat():
    silent = estimate_beats(np.zeros(SR * 10, dtype=np.float32), SR)
    assert len(silent.beats) == 0 and silent.confidence == 0 and "silent" in silent.warnings[0]
    t = np.arange(SR * 10) / SR
    drone = estimate_beats((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    assert "no steady pulse" in drone.warnings[0] and drone.confidence == 0 and len(drone.downbeats) == 0
    noise = estimate_beats(np.random.default_rng(0).normal(size=SR * 10).astype(np.float32) * 0.1, SR)
    assert noise.warnings and noise.confidence == 0
