"""The VQA ensemble on the engine template: the shipped weights reproduce the card's held-out sample through
predict, the answer is a typed TextAnswer with a calibrated confidence, and the checks speak for odd input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engines.core.results import TextAnswer
from engines.textvqa import evaluation as E
from engines.textvqa import scenes as S
from engines.textvqa.vqa_engine import VqaMclKdEngine


@pytest.fixture(scope="module")
def engine():
    e = VqaMclKdEngine()
    yield e
    e.unload()


def test_the_shipped_ensemble_reproduces_the_cards_test_sample_through_predict(engine):
    run = E.run_vqa(engine, "test", 20)  # predict before load: the template loads on the default device
    assert engine.network_device == engine.device == "cpu"
    top1 = E.vqa_metrics(run)["test_top1"]
    assert top1 == pytest.approx(engine.card.metrics["test_sample_top1"], abs=1.0)
    majority = float(np.bincount(run["truth"]).max() / len(run["truth"]) * 100)
    assert top1 > majority + 15


def test_the_answer_is_typed_and_its_confidence_calibrated(engine):
    _, image, questions = S.make_example("test", 4)
    r = engine.predict({"image": image, "question": questions[0].text})
    assert isinstance(r, TextAnswer) and r.text == r["answer"] and r.confidence == r["confidence"]
    assert r.confidence == pytest.approx(r["top"][0]["probability"])
    assert r.scores["temperature"] == pytest.approx(engine.card.calibration["temperature"])
    assert r.scores["ood"]["p99"] == engine.card.calibration["ood"]["p99"]
    assert [c.name for c in r.checks] == ["scene", "out-of-distribution"]


def test_a_question_in_words_the_model_never_saw_fires_the_ood_check(engine):
    _, image, _ = S.make_example("test", 1)
    r = engine.predict({"image": image, "question": "cat"})
    ood = next(c for c in r.checks if c.name == "out-of-distribution")
    assert ood.status == "warned" and r["reliable"] is False and r["headline"] == ood.reason
    assert r.scores["ood"]["score"] > engine.card.calibration["ood"]["p99"]


def test_a_photo_is_out_of_domain_as_the_headline(engine, tmp_path):
    from skimage import data

    path = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(path)
    r = engine.predict({"image_path": path, "question": "is there a red circle?"})
    assert r["reliable"] is False and r["headline"].startswith("This picture does not look like the scenes")
    assert r.checks[0].status == "warned"
