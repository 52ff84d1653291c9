"""The melody generator on the engine template: the shipped weights reproduce the card's small-sample chord fit
through predict; the progression is its only input, so its checks are an input contract on the chords (unknown
symbols refused with the reason, folded chords and crowded bars warned) and say that no OOD score applies."""
from __future__ import annotations

from pathlib import Path

import pytest

from engines.core.checks import InputRefused
from engines.core.engine import EngineError
from engines.core.weights import WeightsStore
from engines.music_lab.dataset import load_chorales
from engines.music_lab.generator import WEIGHTS, MelodyGeneratorEngine, held_out_sample

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
FIXTURE = Path(__file__).parent / "data" / "heldout_bars.npz"


@pytest.fixture(scope="module")
def engine():
    return MelodyGeneratorEngine()  # not loaded: predict loads it on the resolved device


def test_the_card_sample_chord_fit_is_reproduced_through_predict(engine):
    card = WeightsStore.default().card(WEIGHTS)
    sample = held_out_sample(engine, load_chorales(FIXTURE))
    want = card.metrics["test_sample_strong_beat_chord_tones"]
    assert sample["windows"] == want["windows"] == 12
    assert sample["real chorale sopranos"] == pytest.approx(want["real chorale sopranos"], abs=1e-4)
    assert sample["cvae distance 1.0"] == pytest.approx(want["cvae distance 1.0"], abs=0.01)
    # the 12-window figure agrees with the card's 200-window held-out figure and is far above chance (3/12)
    full = card.metrics["held_out_through_engine"]["cvae distance 1.0"]["strong_beat_chord_tones"]
    assert sample["cvae distance 1.0"] == pytest.approx(full, abs=0.08)
    assert sample["cvae distance 1.0"] > 0.25 + 0.15
    assert engine.loaded and engine.network_device == engine.device


def test_a_plain_progression_passes_and_says_no_ood_score_applies(engine):
    r = engine.predict({"chords": "C Am F G", "n": 2, "seed": 1})
    assert all(c.status == "passed" for c in r.checks) and r.warning_lines() == []
    ood = [c for c in r.checks if c.name == "out-of-distribution"]
    assert ood and "not applicable" in ood[0].reason and "chord progression" in ood[0].reason
    assert r.scores["chance_chord_tones"] == 0.25
    assert r.scores["strong_beat_chord_tones"] == pytest.approx(
        sum(s["strong_beat_chord_tones"] for s in r.stats) / len(r.stats), abs=1e-4)
    assert r.scores["diversity"] == pytest.approx(r.diversity, abs=1e-4)


def test_folded_chords_and_crowded_bars_warn_with_the_reason(engine):
    r = engine.predict({"chords": "C G7 | Bdim Am/E | F G Am C", "n": 1, "seed": 0})
    warned = {c.name: c.reason for c in r.checks if c.status == "warned"}
    assert "G7 as G" in warned["chord vocabulary"] and "Am/E as Am" in warned["chord vocabulary"]
    assert "Bdim as Bm" in warned["chord vocabulary"]
    assert "bar 3 has 4 chords" in warned["chord rhythm"]
    assert len(r.melodies) == 1  # warnings, not a refusal


@pytest.mark.parametrize("chords,needle", [("C G Qm7", "unknown chord symbol 'Qm7'"), ("C N G", "not a chord"),
                                           ("", "empty"), (None, "no chord progression")])
def test_a_progression_it_cannot_read_is_refused_with_the_reason(engine, chords, needle):
    with pytest.raises(InputRefused) as info:
        engine.predict({} if chords is None else {"chords": chords})
    assert needle in str(info.value)
    assert info.value.checks[-1].name == "progression" and info.value.checks[-1].status == "refused"
    assert isinstance(info.value, EngineError)
