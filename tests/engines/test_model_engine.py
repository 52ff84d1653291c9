"""The engine template: weights life cycle, device cache, predict-before-load, batching, cancel; calibration;
the thread policy; the training harness's checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engines.core.calibration import calibrate, energy_score, fit_temperature, ood_check, reliability, softmax
from engines.core.engine import CancelToken, Cancelled, EngineError, EngineInfo
from engines.core.model_engine import ModelEngine, PipelineEngine
from engines.core.paths import user_models_dir
from engines.core.threads import choose_threads
from engines.core.training import TrainingRun
from engines.core.weights import ModelCard, WeightsError, WeightsStore


class _Net(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, width)

    def forward(self, x):
        return self.lin(x)


class _Engine(ModelEngine):
    id = "tiny-test"
    weights_name = "tiny-test"
    architecture = "tiny@1"
    cpu_batch = 3

    def info(self):
        return EngineInfo(self.id, "tiny", "test", "none", "rows", "logits", weights=self.weights_name)

    def build_network(self, card):
        return _Net(int(card.arch_args["width"]))

    def prepare(self, request, *, progress, cancel):
        return [np.asarray(r, dtype=np.float32) for r in request["rows"]]

    def finish(self, outputs, inputs, request):
        return np.stack(outputs)


def _save(width: int = 2, arch: str = "tiny@1", calibration=None) -> _Net:
    torch.manual_seed(0)
    net = _Net(width)
    card = ModelCard(name="tiny-test", architecture=arch, arch_args={"width": width},
                     calibration=calibration or {})
    WeightsStore.save(user_models_dir(), "tiny-test", net.state_dict(), card)
    return net


def test_predict_before_load_loads_on_the_default_device_and_batches_in_order():
    ref = _save()
    engine = _Engine()
    rows = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    seen = []
    out = engine.predict({"rows": list(rows)}, progress=lambda f, m: seen.append((f, m)))
    assert engine.device == "cpu" and engine.network_device == "cpu"
    with torch.no_grad():
        expect = ref(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-6)
    assert [m for _, m in seen][-1].endswith("(7/7)") and len(seen) == 3  # batches of 3: 3 + 3 + 1


def test_the_network_is_cached_per_device_and_unload_forgets_it():
    _save()
    engine = _Engine()
    engine.load("cpu")
    first = engine.network
    engine.load("cpu")
    assert engine.network is first
    engine.unload()
    assert not engine.loaded and engine.network_device is None


def test_cancel_between_batches_raises_cancelled():
    _save()
    engine = _Engine()
    token = CancelToken()

    def progress(fraction, message):
        token.cancel()

    with pytest.raises(Cancelled):
        engine.predict({"rows": [np.zeros(4)] * 9}, progress=progress, cancel=token)


def test_a_wrong_architecture_or_missing_weights_is_one_plain_engine_error():
    engine = _Engine()
    with pytest.raises(EngineError, match="cannot load its weights 'tiny-test'"):
        engine.load("cpu")
    _save(arch="other@1")
    with pytest.raises(WeightsError, match="'other@1' model"):
        _Engine().load("cpu")


def test_weights_that_do_not_fit_the_card_are_refused_with_the_reason():
    net = _Net(3)
    card = ModelCard(name="tiny-test", architecture="tiny@1", arch_args={"width": 2})
    WeightsStore.save(user_models_dir(), "tiny-test", net.state_dict(), card)
    with pytest.raises(EngineError, match="do not fit"):
        _Engine().load("cpu")


def test_pipeline_engine_runs_prepare_infer_finish_in_order():
    calls = []

    class Classical(PipelineEngine):
        id = "classical-test"

        def prepare(self, request, *, progress, cancel):
            calls.append("prepare")
            return request["x"]

        def infer(self, inputs, *, progress, cancel):
            calls.append("infer")
            return inputs * 2

        def finish(self, outputs, inputs, request):
            calls.append("finish")
            return outputs + 1

    assert Classical().predict({"x": 3}) == 7 and calls == ["prepare", "infer", "finish"]


# -- calibration ------------------------------------------------------------------------------------
def _overconfident(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, 5)) * 1.5
    p = softmax(true_logits)
    labels = np.array([rng.choice(5, p=row) for row in p])
    return true_logits * 3.0, labels  # a network three times too sure of itself


def test_temperature_scaling_recovers_the_overconfidence_and_lowers_the_ece():
    logits, labels = _overconfident()
    t = fit_temperature(logits, labels)
    assert 2.5 < t < 3.5
    cal = calibrate(logits, labels)
    assert cal["ece_after"] < cal["ece_before"] / 2 and cal["nll_after"] < cal["nll_before"]
    assert sum(b["count"] for b in cal["bins"]) == len(labels)


def test_reliability_of_a_perfectly_calibrated_predictor_has_small_ece():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0, 1, 20000)
    correct = rng.uniform(0, 1, 20000) < conf
    assert reliability(conf, correct)["ece"] < 0.02


def test_ood_check_warns_above_the_cards_99th_percentile():
    logits, labels = _overconfident()
    cal = calibrate(logits, labels)

    class Card:
        calibration = cal

    typical = float(np.median(energy_score(logits, cal["temperature"])))
    assert ood_check(typical, Card()).status == "passed"
    # every class weak: no evidence for anything (energy far above the validation range)
    far = float(energy_score(np.full((1, 5), -4.0), cal["temperature"])[0])
    check = ood_check(far, Card())
    assert check.status == "warned" and "unlike the model's training data" in check.reason
    assert ood_check(typical, object()) is None


def test_a_small_ood_reference_allows_its_own_spread_before_warning():
    class Card:
        calibration = {"ood": {"name": "energy", "p50": -4.2, "p95": -4.0, "p99": -3.96, "n_volumes": 12}}

    assert ood_check(-3.92, Card()).status == "passed"  # just past the max of 12 scans: sampling noise
    assert ood_check(-3.5, Card()).status == "warned"  # beyond one more p50 -> p99 spread (-3.72)
    Card.calibration["ood"]["n_volumes"] = 400
    assert ood_check(-3.92, Card()).status == "warned"


# -- threads ----------------------------------------------------------------------------------------
def test_thread_policy_uses_free_cores_and_respects_the_override(monkeypatch):
    monkeypatch.delenv("CSI_TORCH_THREADS", raising=False)
    assert choose_threads(cores=2, load=0.2) == 2
    assert choose_threads(cores=2, load=2.3) == 1  # another process busy on a core: one thread
    assert choose_threads(cores=8, load=3.0) == 6
    assert choose_threads(cores=1, load=9.0) == 1
    monkeypatch.setenv("CSI_TORCH_THREADS", "3")
    assert choose_threads(cores=2, load=5.0) == 3


# -- training harness -------------------------------------------------------------------------------
def test_training_checkpoint_resumes_model_optimizer_and_step(tmp_path):
    torch.manual_seed(0)
    net = _Net(2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    run = TrainingRun("tiny", max_minutes=1, threads=1, device="cpu", checkpoint_dir=tmp_path / "ck",
                      log_every=1)
    for step in range(1, 4):
        loss = net(torch.ones(1, 4)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    run.best_metric = 0.5
    run.checkpoint(3, net, opt)
    assert not list((tmp_path / "ck").glob("*.pkl"))
    json.loads((tmp_path / "ck" / "last.json").read_text())

    net2 = _Net(2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.1)
    run2 = TrainingRun("tiny", max_minutes=1, threads=1, device="cpu", checkpoint_dir=tmp_path / "ck")
    assert run2.resume(net2, opt2) == 3 and run2.best_metric == 0.5
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)
    assert TrainingRun("tiny", max_minutes=0, threads=1, device="cpu").keep_going(0) is False


def test_save_best_keeps_only_improvements(tmp_path):
    net = _Net(2)
    run = TrainingRun("tiny", max_minutes=1, threads=1, device="cpu", checkpoint_dir=tmp_path / "ck")

    def card():
        return ModelCard(name="tiny-best", architecture="tiny@1", arch_args={"width": 2})

    assert run.save_best(0.4, net, card, tmp_path)
    assert not run.save_best(0.3, net, card, tmp_path)
    assert run.save_best(0.6, net, card, tmp_path) and run.best_metric == 0.6
    WeightsStore.verify(tmp_path / "tiny-best.safetensors", tmp_path / "tiny-best.card.json")
