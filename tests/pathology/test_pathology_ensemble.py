"""The frozen-section ensemble machinery (seed 5.2) without shipped weights: a clear message, and the
pipeline with stand-in classifiers gives a per-tile heatmap and a slide call."""
from __future__ import annotations

import numpy as np
import pytest

from engines.core.engine import EngineError
from engines.pathology.ensemble import FrozenSectionEnsembleEngine


def test_without_weights_the_message_says_what_is_needed():
    engine = FrozenSectionEnsembleEngine()
    with pytest.raises(EngineError, match="needs patch classifiers trained on lymph-node sections"):
        engine.load("cpu")


def test_ensemble_of_stand_in_classifiers_over_the_pipeline(small_pyramid):
    import torch
    from torch import nn

    class DabScore(nn.Module):
        """A stand-in 'classifier': mean brownness of the patch as the tumour logit (not a model)."""

        def __init__(self, gain: float) -> None:
            super().__init__()
            self.gain = gain

        def forward(self, x):
            brown = (x[:, 0] - x[:, 2]).mean(dim=(1, 2)) * self.gain
            return torch.stack([torch.zeros_like(brown), brown], dim=1)

    engine = FrozenSectionEnsembleEngine([DabScore(20.0), DabScore(40.0)])
    engine.load("cpu")
    result = engine.predict({"slide_path": small_pyramid})
    values = result.heatmap.values
    analysed = values[~np.isnan(values)]
    assert analysed.size > 0 and 0.0 <= analysed.min() and analysed.max() <= 1.0
    assert len(result.detections) == 0
    assert result.summary["slide_call"] in ("metastasis", "no metastasis found")
    assert result.summary["max_tumour_probability"] == pytest.approx(float(analysed.max()), abs=1e-4)
    # per-tile values: constant inside each tile's cells
    cell = result.heatmap.cell
    per_tile = int(round(256 / cell))
    block = values[:per_tile, :per_tile]
    if not np.isnan(block).all():
        assert np.nanmax(block) == pytest.approx(np.nanmin(block))
