"""The cover engines on the engine template: the networks and their inputs are on the engine's device
(the cover CNN used to stay on the CPU whatever device it was loaded for), predict before load loads on the
resolved device, the result says whether its probabilities are calibrated."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.core.paths import resources_dir
from engines.music_lab.cover_embed import CoverEmbeddingEngine
from engines.music_lab.covers import CoverIdEngine, cross_similarity, pooled_chroma

CLIPS = resources_dir() / "samples" / "music_lab" / "covers"


def _chroma(seed: int, n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return pooled_chroma(np.abs(rng.normal(size=(n * 4, 12))).astype(np.float32))


@pytest.mark.parametrize("engine_cls", [CoverIdEngine, CoverEmbeddingEngine])
def test_the_network_and_its_inputs_go_to_the_loaded_device(engine_cls, monkeypatch):
    engine = engine_cls()
    engine.load("meta")  # a device other than the CPU that every machine has: no data, only placement
    assert engine.network_device == "meta" and engine.device == "meta"
    seen = []

    def forward(x):
        seen.append(str(x.device))
        out = 1 if engine_cls is CoverIdEngine else int(engine.card.arch_args.get("dim", 256))
        return torch.zeros((x.shape[0], out) if out > 1 else (x.shape[0],))

    monkeypatch.setattr(engine, "forward", forward)
    if engine_cls is CoverIdEngine:
        engine.probability(cross_similarity(_chroma(0), _chroma(1)))
    else:
        engine.embed_pooled(_chroma(2))
    assert seen == ["meta"]


def test_cover_id_predict_before_load_runs_on_the_resolved_device_and_reports_its_scores():
    engine = CoverIdEngine()
    clips = sorted(CLIPS.glob("*.ogg"))
    result = engine.predict({"query": str(clips[0]), "references": [str(c) for c in clips[1:]]})
    assert engine.loaded and engine.network_device == engine.device
    assert result.scores["calibrated"] is False and result.scores["temperature"] == 1.0
    assert result.scores["best_probability"] == result.best.probability
    assert Path(result.best.reference).name == "bwv423-b-version.ogg"  # the version beats the other piece

