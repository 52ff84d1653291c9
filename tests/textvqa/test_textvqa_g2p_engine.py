"""The shipped canvas G2P on real CMUdict test words, NSGD vs left-to-right, and bad words."""
from __future__ import annotations

import pytest

from engines.core.engine import EngineError
from engines.textvqa import g2p_data as G
from engines.textvqa.g2p_engine import G2pNsgdEngine, words_from_text
from tests.fixtures import loaded

PER_CEILING = 25.0  # percent, on held-out words


@pytest.fixture(scope="module")
def engine():
    yield from loaded(G2pNsgdEngine)


def test_split_is_85_5_10_by_word_and_disjoint():
    split = G.split_words()
    n = sum(len(v) for v in split.values())
    assert abs(len(split["train"]) / n - 0.85) < 0.001 and abs(len(split["test"]) / n - 0.10) < 0.001
    assert not set(split["train"]) & set(split["test"])
    assert G.load_dictionary()["knight"] == [("N", "AY", "T")]  # stress removed


def test_held_out_phoneme_error_rate_is_below_the_ceiling(engine):
    import torch

    torch.set_num_threads(1)
    words = G.split_words()["test"][:150]
    r = engine.predict({"words": words, "alternatives": 0, "compare": False})
    preds = {w["word"]: w["phonemes"] for w in r["words"]}
    s = G.score(preds, {w: G.load_dictionary()[w] for w in words})
    assert s["per"] < PER_CEILING, s


def test_result_shows_fill_order_alternatives_and_dictionary(engine, tmp_path):
    r = engine.predict({"words": "knight zorblaxify"})
    knight, made_up = r["words"]
    assert knight["dictionary"] == [["N", "AY", "T"]] and made_up["dictionary"] is None
    positions = [s["position"] for s in knight["fill_order"]]
    assert sorted(positions) == list(range(1, G.MAX_LEN + 1))  # every canvas position filled exactly once
    assert knight["other_order"]["order"] == "l2r"
    assert all(a["phonemes"] != knight["phonemes"] for a in knight["alternatives"])
    out = engine.write_result(r, tmp_path / "p.txt")[0]
    assert out.read_text().startswith("KNIGHT\t")


def test_bad_words_are_skipped_or_refused_with_a_reason(engine):
    words, skipped = words_from_text("hello w0rld ñandú 42 it's")
    assert words == ["hello", "it's"]
    assert {s["token"] for s in skipped} == {"w0rld", "ñandú", "42"}
    with pytest.raises(EngineError, match="a-z"):
        engine.predict({"words": ["abc1"]})
    with pytest.raises(EngineError, match="no word"):
        engine.predict({"words": "123 456"})


def test_a_word_the_dictionary_knows_is_pronounced_from_the_dictionary_first(engine):
    r = engine.predict({"words": "colonel zorblaxify", "alternatives": 0, "compare": False})
    colonel, made_up = r["words"]
    assert colonel["pronunciation"] == ["K", "ER", "N", "AH", "L"] and colonel["pronunciation_source"] == "dictionary"
    assert made_up["pronunciation"] == made_up["phonemes"] and made_up["pronunciation_source"] == "model"
