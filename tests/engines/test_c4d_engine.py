"""The C4d engines on the engine template: the shipped CNN reproduces its card's held-out figure through
predict, its scores are calibrated without changing a mask, its OOD check fires on noise, H&E is refused,
and the ensemble runs its members on the engine's device."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.core.checks import InputRefused
from engines.core.engine import EngineError
from engines.core.results import DetectionResult
from engines.pathology import c4d_eval as E
from engines.pathology.c4d import C4dCnnEngine, C4dDeconvolutionEngine

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "openslide-fixtures"


@pytest.fixture(scope="module")
def cnn():
    engine = C4dCnnEngine()
    yield engine
    engine.unload()


def test_predict_before_load_loads_the_shipped_weights_and_reproduces_the_card(cnn):
    figures = E.test_sample_metrics(cnn)  # predict before any load: the template loads on the default device
    assert cnn.loaded and cnn.network_device == cnn.device == "cpu"
    card = cnn.card.metrics
    assert figures["test_sample_f1"] == pytest.approx(card["test_sample_f1"], abs=0.02)
    assert figures["test_sample_dice"] == pytest.approx(card["test_sample_dice"], abs=0.02)
    assert figures["test_sample_f1"] > 0.8  # well above chance: 15 true structures in the tile


def test_the_result_is_typed_with_checks_calibrated_scores_and_an_ood_score(cnn):
    hold, _ = E.held_out_tile()
    result = E.run_engine(cnn, hold)
    assert isinstance(result, DetectionResult) and result["summary"] is result.summary
    names = {c.name: c.status for c in result.checks}
    assert names == {"stain": "passed", "resolution": "passed", "out-of-distribution": "passed"}
    assert result.scores["temperature"] == pytest.approx(cnn.card.calibration["temperature"])
    assert result.scores["confidence"] == pytest.approx(result.summary["mean_score"], abs=1e-3)
    assert result.weights == "c4d-unet-tiny" and result.device == "cpu"


def test_temperature_changes_the_scores_but_no_mask(cnn):
    hold, _ = E.held_out_tile()
    calibrated = E.run_engine(cnn, hold)
    saved = cnn.card.calibration
    try:
        cnn.card.calibration = {}
        raw = E.run_engine(cnn, hold)
    finally:
        cnn.card.calibration = saved
    assert len(raw.detections) == len(calibrated.detections) > 0
    np.testing.assert_allclose(raw.detections.xy, calibrated.detections.xy)
    assert np.argsort(raw.detections.scores).tolist() == np.argsort(calibrated.detections.scores).tolist()
    assert raw.summary["positive_area_percent"] == calibrated.summary["positive_area_percent"]
    assert saved["temperature"] > 1 and raw.summary["mean_score"] > calibrated.summary["mean_score"]


def test_the_ood_check_fires_on_noise(cnn):
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3)).astype(np.uint8)
    result = E.run_engine(cnn, noise, name="noise.tiff")
    ood = next(c for c in result.checks if c.name == "out-of-distribution")
    assert ood.status == "warned" and "noise.tiff looks unlike the model's training data" in ood.reason
    assert result.scores["ood"]["score"] > cnn.card.calibration["ood"]["p99"]


@pytest.mark.parametrize("engine_cls", [C4dCnnEngine, C4dDeconvolutionEngine])
def test_real_he_is_refused_before_inference(engine_cls):
    with pytest.raises(InputRefused, match="H&E"):
        engine_cls().predict({"slide_path": FIXTURES / "small.svs"})


def test_the_deconvolution_engine_reproduces_its_card_figure():
    hold, truth_mask = E.held_out_tile()
    m = E.score(C4dDeconvolutionEngine(), hold, E.truth_structures(truth_mask), truth_mask)
    card = C4dCnnEngine()
    card.load("cpu")
    assert m["f1"] == pytest.approx(card.card.metrics["engine_eval"]["threshold"]["as_stained"]["f1"], abs=0.02)


def test_the_ensemble_runs_its_members_on_the_engine_device(tmp_path):
    import torch
    from torch import nn

    from engines.pathology.ensemble import FrozenSectionEnsembleEngine

    class Brown(nn.Module):
        def forward(self, x):
            b = (x[:, 0] - x[:, 2]).mean(dim=(1, 2)) * 20
            return torch.stack([torch.zeros_like(b), b], 1)

    engine = FrozenSectionEnsembleEngine([Brown(), Brown()])
    hold, _ = E.held_out_tile()
    path = E.write_tile(tmp_path / "tile.tiff", hold)
    result = engine.predict({"slide_path": path})
    assert engine.network_device is None or engine.device == "cpu"
    assert result.summary["slide_call"] in ("metastasis", "no metastasis found")
    with pytest.raises(EngineError, match="needs patch classifiers"):
        FrozenSectionEnsembleEngine().load("cpu")
