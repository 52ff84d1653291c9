"""The chord engines on the engine template: calibrated segment confidences, the OOD score and its check, the
card metric reproduced on the bundled held-out chorale, the numpy Viterbi against librosa's."""
from __future__ import annotations

import numpy as np
import pytest

from engines.core.calibration import softmax
from engines.core.weights import WeightsStore
from engines.music.audio import AudioClip, load_audio
from engines.music.evaluate import held_out_sample_wcsr
from engines.music.recognize import (BTCChordEngine, BTCLargeChordEngine, RecognizedChords, TemplateChordEngine,
                                     viterbi_smooth)

SR = 22050
BTC_ENGINES = [BTCChordEngine, BTCLargeChordEngine]


@pytest.fixture(scope="module", params=BTC_ENGINES, ids=lambda c: c.id)
def btc(request):
    engine = request.param()
    yield engine  # no load: predict before load loads on the resolved device
    engine.unload()


def test_cards_carry_the_calibration_fitted_on_validation_chorales(btc):
    _, card = WeightsStore.default().load(btc.weights_name, "cpu", expect_architecture="btc")
    cal = card.calibration
    assert 0.5 < cal["temperature"] < 2.0 and cal["n"] > 5000
    assert cal["ece_after"] <= cal["ece_before"] + 1e-3
    assert cal["ood"]["p50"] < cal["ood"]["p95"] <= cal["ood"]["p99"]
    assert card.metrics["calibration"]["ece_after"] == cal["ece_after"]


def test_held_out_chorale_reproduces_the_card_metric(btc):
    card_figure = WeightsStore.default().load(btc.weights_name, "cpu")[1].metrics["test_sample_wcsr"]
    measured = held_out_sample_wcsr(btc)
    assert btc.network_device == "cpu"
    for metric in ("majmin", "sevenths"):
        assert measured[metric] == pytest.approx(card_figure[metric], abs=0.02)
    assert measured["majmin"] > 0.85


def test_segment_confidence_is_the_mean_calibrated_probability_of_its_frames(btc):
    clip = load_audio("resources/samples/music/bwv153.1-piano.ogg")
    track = btc.predict({"clip": clip})
    assert isinstance(track, RecognizedChords) and track.source == btc.id
    inputs, logits = btc.frame_logits({"clip": clip})
    probs = softmax(logits, btc.temperature)
    labels = list(btc.card.labels)
    frame_s = inputs.feats.frame_s
    checked = 0
    for seg in track.segments:
        a, b = int(round(seg.start / frame_s)), int(round(seg.end / frame_s))
        frames = np.arange(a, min(b, len(probs)))
        if seg.label == "N" or len(frames) < 3 or inputs.silent[frames].any():
            continue
        assert seg.confidence == pytest.approx(probs[frames, labels.index(seg.label)].mean(), abs=1e-4)
        checked += 1
    assert checked >= 5
    assert 0.5 < track.scores["confidence"] <= 1.0 and track.scores["temperature"] == pytest.approx(btc.temperature)
    ood = next(c for c in track.checks if c.name == "out-of-distribution")
    assert ood.status == "passed" and track.scores["ood"]["score"] < track.scores["ood"]["p99"]
    copy = track.snapshot()
    assert isinstance(copy, RecognizedChords) and copy.scores == track.scores


def test_a_sine_sweep_is_out_of_distribution_with_the_reason(btc):
    t = np.arange(SR * 20) / SR
    sweep = AudioClip((0.3 * np.sin(2 * np.pi * (100 * t + 200 * t ** 2))).astype(np.float32), SR, "sweep.wav")
    track = btc.predict({"clip": sweep})
    check = next(c for c in track.checks if c.name == "out-of-distribution")
    assert check.status == "warned" and "unlike the model's training data" in check.reason
    from engines.core.checks import warning_lines

    assert any("sweep.wav" in line for line in warning_lines(track))


def test_silence_has_no_ood_score_and_says_why(btc):
    track = btc.predict({"clip": AudioClip(np.zeros(SR * 5, np.float32), SR, "silence.wav")})
    assert "ood" not in track.scores and all(s.label == "N" for s in track.segments)
    assert any(c.name == "level" and c.status == "warned" for c in track.checks)


def test_templates_say_their_scores_are_not_calibrated():
    track = TemplateChordEngine().predict({"audio_path": "resources/samples/music/bwv153.1-piano.ogg"})
    assert track.scores["calibrated"] is False and 0 < track.scores["confidence"] <= 1


@pytest.mark.parametrize("states", [25, 170])
def test_numpy_viterbi_finds_librosas_path(states):
    import librosa

    rng = np.random.default_rng(states)
    probs = np.clip(rng.dirichlet(np.full(states, 0.3), size=600), 1e-6, 1.0)
    expect = librosa.sequence.viterbi(np.ascontiguousarray(probs.T), librosa.sequence.transition_loop(states, 0.9))
    np.testing.assert_array_equal(viterbi_smooth(probs, 0.9), expect)
