"""Engine core without Qt: registry, device resolver, weights store, cancellation, atomic writes, runner."""
from __future__ import annotations

import json
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.core.atomic import atomic_path, atomic_write_text
from engines.core.device import is_out_of_memory, resolve_device
from engines.core.engine import Cancelled, CancelToken, Engine, EngineError, EngineInfo
from engines.core.registry import EngineRegistry
from engines.core.runner import run_engine
from engines.core.weights import ModelCard, WeightsError, WeightsStore


class _Echo(Engine):
    id = "test-echo"

    def info(self):
        return EngineInfo(self.id, "Echo", "test", "radiology", "anything", "the same")

    def predict(self, request, *, progress, cancel=None):
        for i in range(5):
            if cancel is not None:
                cancel.raise_if_cancelled()
            progress(i / 5, f"step {i}")
        return {"echo": request["x"], "device": self.device}


# -- registry ---------------------------------------------------------------------------------------
def test_registry_discovers_the_installed_engines_through_entry_points():
    registry = EngineRegistry.discover()
    assert "otsu-segmentation" in registry.ids()
    assert registry.errors == {}
    engine = registry.get("otsu-segmentation")
    assert engine is registry.get("otsu-segmentation")  # one shared instance keeps loaded weights
    assert engine.info().workspace == "radiology"


def test_registry_rejects_duplicates_and_non_engines():
    registry = EngineRegistry()
    registry.register(_Echo)
    registry.register(_Echo)  # the same class twice is harmless
    clone = type("Clone", (_Echo,), {})
    with pytest.raises(ValueError, match="share the id"):
        registry.register(clone)
    with pytest.raises(TypeError):
        registry.register(object)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no engine 'missing'"):
        registry.get("missing")


def test_registry_survives_a_broken_plugin(monkeypatch):
    class BrokenEP:
        name, value = "broken", "nowhere:THING"

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr("engines.core.registry.entry_points", lambda group: [BrokenEP()])
    registry = EngineRegistry.discover()
    assert registry.ids() == []
    assert "nowhere" in registry.errors["broken"]


# -- device resolver --------------------------------------------------------------------------------
def test_device_resolver_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    auto = resolve_device("auto")
    assert auto.device == "cpu" and auto.label.startswith("CPU, ") and auto.note == ""
    asked = resolve_device("cuda")
    assert asked.device == "cpu"
    assert "no CUDA device" in asked.note
    assert resolve_device("cpu").device == "cpu"
    with pytest.raises(EngineError, match="unknown device"):
        resolve_device("tpu")


def test_device_resolver_prefers_cuda_when_present(monkeypatch):
    monkeypatch.delenv("CSI_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100")
    assert resolve_device(None).label == "CUDA: NVIDIA H100"
    assert resolve_device("cpu").device == "cpu"  # an explicit choice wins
    assert "does not exist" in resolve_device("cuda:3").note


def test_out_of_memory_falls_back_to_cpu_with_a_visible_message():
    class Hungry(_Echo):
        id = "test-hungry"

        def predict(self, request, *, progress, cancel=None):
            if self.device.startswith("cuda"):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return super().predict(request, progress=progress, cancel=cancel)

    notices: list[str] = []
    result = run_engine(Hungry(), {"x": 3}, device="cuda", notice=notices.append)
    assert result == {"echo": 3, "device": "cpu"}
    assert len(notices) == 1 and "ran out of memory" in notices[0] and "CPU" in notices[0]
    assert is_out_of_memory(RuntimeError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_other_errors_are_not_swallowed_by_the_fallback():
    class Broken(_Echo):
        id = "test-broken"

        def predict(self, request, *, progress, cancel=None):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_engine(Broken(), {"x": 1}, device="cuda")


# -- cancellation and progress ----------------------------------------------------------------------
def test_cancellation_is_cooperative_and_progress_is_reported():
    seen: list[tuple] = []
    token = CancelToken()

    def progress(fraction, message):
        seen.append((fraction, message))
        if fraction is not None and fraction >= 0.4:
            token.cancel()

    with pytest.raises(Cancelled):
        run_engine(_Echo(), {"x": 1}, device="cpu", progress=progress, cancel=token)
    fractions = [f for f, _ in seen if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
    assert token.cancelled


# -- weights store ----------------------------------------------------------------------------------
def _save_model(tmp_path: Path) -> tuple[Path, Path, dict]:
    tensors = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.zeros(4)}
    card = ModelCard(name="tiny", architecture="TinyNet", arch_args={"channels": 4}, labels=["a", "b"],
                     training_command="python scripts/train_tiny.py", metrics={"dice": 0.5})
    weights, card_path = WeightsStore.save(tmp_path, "tiny", tensors, card)
    return weights, card_path, tensors


def test_weights_round_trip_with_card(tmp_path):
    weights, card_path, tensors = _save_model(tmp_path)
    store = WeightsStore([tmp_path])
    loaded, card = store.load("tiny", expect_architecture="TinyNet")
    assert torch.equal(loaded["conv.weight"], tensors["conv.weight"])
    assert card.arch_args == {"channels": 4} and card.sha256 and "Research use only" in card.intended_use
    assert store.status("tiny") == "ok"


def test_weights_are_found_in_a_domain_subfolder(tmp_path):
    _save_model(tmp_path / "radiology")
    assert WeightsStore([tmp_path]).status("tiny") == "ok"


def test_weights_store_refuses_a_pickle(tmp_path):
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"weights": np.zeros(3)}))
    card = ModelCard(name="evil", architecture="TinyNet", sha256="0" * 64)
    (tmp_path / "evil.card.json").write_text(card.to_json())
    with pytest.raises(WeightsError, match="not a safetensors file"):
        WeightsStore([tmp_path]).load("evil")


def test_weights_store_refuses_torch_save_checkpoints(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "old.pt")
    with pytest.raises(WeightsError, match="pickle-based checkpoint"):
        WeightsStore([tmp_path]).load("old")
    renamed = tmp_path / "zip.safetensors"
    renamed.write_bytes((tmp_path / "old.pt").read_bytes())
    with pytest.raises(WeightsError, match="not a safetensors file"):
        WeightsStore.load_file(renamed, tmp_path / "old.card.json")


def test_weights_store_refuses_a_tampered_card_or_weights(tmp_path):
    weights, card_path, _ = _save_model(tmp_path)
    raw = json.loads(card_path.read_text())
    raw["sha256"] = "f" * 64
    card_path.write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="does not match its model card"):
        WeightsStore([tmp_path]).load("tiny")

    weights, card_path, _ = _save_model(tmp_path)  # fresh, then flip one byte of the tensor data
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its model card"):
        WeightsStore([tmp_path]).load("tiny")


def test_weights_store_refuses_missing_card_foreign_card_wrong_architecture_and_truncation(tmp_path):
    weights, card_path, _ = _save_model(tmp_path)
    with pytest.raises(WeightsError, match="not 'OtherNet'"):
        WeightsStore([tmp_path]).load("tiny", expect_architecture="OtherNet")
    card_text = card_path.read_text()
    card_path.write_text(json.dumps({"name": "tiny", "framework": "someone else's"}))
    with pytest.raises(WeightsError, match="not a CSI Workstation model card"):
        WeightsStore([tmp_path]).load("tiny")
    card_path.unlink()
    with pytest.raises(WeightsError, match="has no model card"):
        WeightsStore([tmp_path]).load("tiny")
    card_path.write_text(card_text)
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="truncated"):
        WeightsStore([tmp_path]).load("tiny")
    with pytest.raises(WeightsError, match="no weights named"):
        WeightsStore([tmp_path]).load("absent")


def test_safetensors_header_length_is_checked(tmp_path):
    bogus = tmp_path / "huge.safetensors"
    bogus.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    (tmp_path / "huge.card.json").write_text(ModelCard(name="huge", architecture="X", sha256="0").to_json())
    with pytest.raises(WeightsError, match="not a safetensors file"):
        WeightsStore([tmp_path]).load("huge")


def test_no_module_in_the_app_or_engines_unpickles():
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in list((root / "engines").rglob("*.py")) + list((root / "app").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "pickle.load" in text or ("torch.load(" in text and "weights_only=True" not in text):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


# -- atomic writes ----------------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "labels.lab"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert target.stat().st_mode & 0o044  # readable by others like any file the user saves, not 0600
    assert [p.name for p in tmp_path.iterdir()] == ["labels.lab"]


def test_engines_package_does_not_import_qt_or_torch_at_import_time():
    import subprocess

    code = ("import sys, engines.core, engines.core.registry, engines.core.weights, engines.core.device, "
            "engines.core.inspect, engines.classical; "
            "bad = [m for m in ('torch', 'PySide6', 'pyqtgraph') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_registry_resolves_aliases():
    registry = EngineRegistry.discover()
    assert "g2p" in registry and registry.get("g2p") is registry.get("g2p-nsgd")
    assert registry.resolve("harmonize") == "melody-harmonizer"

    class Taken(_Echo):
        id = "test-taken"
        aliases = ("g2p",)

    with pytest.raises(ValueError, match="already taken"):
        registry.register(Taken)


def test_tensors_that_do_not_fit_the_network_give_a_plain_weights_error():
    from engines.core.weights import load_state_checked

    layer = torch.nn.Linear(4, 2)
    with pytest.raises(WeightsError, match="do not fit the network") as info:
        load_state_checked(layer, {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)}, "the weights")
    assert isinstance(info.value, EngineError)  # shown as written, in the window and on the CLI
    load_state_checked(layer, {"weight": torch.ones(2, 4), "bias": torch.zeros(2)})
    assert float(layer.weight.detach().sum()) == 8.0


def test_an_engine_refuses_a_foreign_checkpoint_saved_under_its_name(isolated_home):
    from engines.core.registry import EngineRegistry
    from engines.core.paths import user_models_dir

    engine = EngineRegistry.discover().get("g2p-nsgd")
    WeightsStore.save(user_models_dir(), engine.info().weights, {"other.weight": torch.zeros(3, 3)},
                      ModelCard(name="x", architecture="someone-elses-net"))
    with pytest.raises(EngineError, match="do not fit the network|holds a 'someone-elses-net' model"):
        engine.load("cpu")
