"""Compound meter and the tempo octave (engines/music/beats.py) on arranged songs rendered with FluidSynth: a 6/8
song is called 6/8 with its bar lines, a fast song is not tracked at half speed, a swung 4/4 is not taken for
6/8; and the info line names the compound meter."""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

import mir_eval
import numpy as np
import pytest

from engines.music.arranger import arrange
from engines.music.beats import BeatEstimate, estimate_beats

ROOT = Path(__file__).resolve().parents[2]
GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SR = 22050
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None or not GM.exists(),
                                      reason="FluidSynth with the GM soundfont renders the song")


def _render(seed: int, meter: str | None = None, style: str | None = None, seconds: float = 30.0):
    """(arranged song, dry mono samples at SR), rendered with scripts/music/render_arranged.py's FluidSynth call."""
    import soundfile as sf

    spec = importlib.util.spec_from_file_location("render_arranged", ROOT / "scripts/music/render_arranged.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    song = arrange(seed, style=style, meter=meter, max_seconds=seconds)
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "song.mid", Path(tmp) / "song.wav"
        song.midi.write(str(mid))
        mod.fluidsynth(mid, wav, GM, sr=SR)
        y, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    y = y.mean(axis=1)[:int(song.duration * SR)]
    return song, (y / (float(np.abs(y).max()) or 1.0) * 0.8).astype(np.float32)


@needs_fluidsynth
@pytest.mark.parametrize("seed", [204, 207])
def test_an_arranged_six_eight_song_is_called_six_eight(seed):
    """Two dotted-quarter beats a bar, each of three eighths: before, the bar was 4 (or 3) dotted quarters and
    half the bar lines were missing."""
    song, y = _render(seed, meter="6/8")
    est = estimate_beats(y, SR)
    assert song.meter == "6/8" and est.meter == "6/8"
    assert est.beats_per_bar == 2 and est.subdivision == 3
    assert abs(est.bpm / song.bpm - 1) < 0.04  # dotted quarters a minute, as the arranger counts them
    assert mir_eval.beat.f_measure(np.asarray(song.downbeats), est.downbeats) > 0.85


@needs_fluidsynth
def test_a_fast_song_is_not_tracked_at_half_speed():
    """A swung jazz song at 160 bpm: the plain choice took 80 bpm (its backbeat, hi-hat on 2 and 4, then falls
    between the beats)."""
    song, y = _render(123)
    assert song.bpm >= 150 and song.meter == "4/4"
    est = estimate_beats(y, SR)
    assert abs(est.bpm / song.bpm - 1) < 0.04, est.bpm
    assert mir_eval.beat.f_measure(np.asarray(song.beats), est.beats) > 0.85
    assert est.meter == "4/4"


@needs_fluidsynth
def test_a_swung_four_four_is_not_compound():
    """Swing puts the off-beat eighth on the second third of the beat, never on the first: still 4/4."""
    song, y = _render(222, meter="4/4", style="jazz")
    assert song.swing
    est = estimate_beats(y, SR)
    assert est.meter == "4/4" and est.subdivision == 2


def test_the_info_line_names_the_compound_meter():
    from engines.music.session import RecordingAnalysis, describe_analysis

    beats = np.arange(24) * 0.75
    six_eight = BeatEstimate(beats, beats[::2], 80.0, 2, 0.9, (), 3)
    assert six_eight.meter == "6/8" and BeatEstimate(beats, beats[::4], 120.0, 4, 0.9).meter == "4/4"
    assert describe_analysis(RecordingAnalysis(six_eight)) == "tempo 80 bpm · 6/8"
