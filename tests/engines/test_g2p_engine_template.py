"""The G2P engine on the engine template: its network sits on the device the engine reports, the shipped
weights reproduce the card's test sample through predict, and a non-word fires the OOD check."""
from __future__ import annotations

import pytest

from engines.core.results import TextAnswer
from engines.textvqa import evaluation as E
from engines.textvqa import g2p_data as G
from engines.textvqa.g2p_engine import G2pNsgdEngine


@pytest.fixture(scope="module")
def engine():
    e = G2pNsgdEngine()
    yield e
    e.unload()


def test_the_network_is_where_the_engine_says(engine):
    engine.load("cpu")
    assert engine.device == "cpu" and engine.network_device == "cpu"
    assert all(str(p.device) == engine.device for p in engine.model.parameters())


def test_the_shipped_model_reproduces_the_cards_test_sample_through_predict(engine):
    test = G.split_words()["test"][:200]
    res = E.g2p_metrics(engine, test, "nsgd")
    card = engine.card.metrics
    assert res["wer"] == pytest.approx(card["test_sample_nsgd_wer"], abs=1.0)
    assert res["per"] == pytest.approx(card["test_sample_nsgd_per"], abs=0.5)
    assert res["per"] < 15


def test_the_answer_is_typed_with_calibrated_confidences(engine):
    r = engine.predict({"words": ["knight", "read"]})
    assert isinstance(r, TextAnswer) and r.text.splitlines()[0] == "knight\tN AY T"
    assert r.scores["temperature"] == pytest.approx(engine.card.calibration["temperature"]) and r.scores["temperature"] > 1
    assert 0 < r["words"][0]["confidence"] <= 1 and r.checks[0].status == "passed"


def test_a_non_word_fires_the_ood_check(engine):
    r = engine.predict({"words": ["knight", "xqzjkvw"]})
    ood = r.checks[0]
    assert ood.name == "out-of-distribution" and ood.status == "warned" and "xqzjkvw" in ood.reason
