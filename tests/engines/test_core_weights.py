"""The weights status checks tensor shapes (card or network), and damaged safetensors give one plain sentence."""
from __future__ import annotations

import json
import struct

import pytest
import torch

from engines.core.engine import Engine, EngineInfo
from engines.core.paths import user_models_dir
from engines.core.weights import ModelCard, WeightsError, WeightsStore, sha256_file


def _save(name: str, module: torch.nn.Module, arch_args: dict, *, record_shapes: bool = True):
    weights, card_path = WeightsStore.save(user_models_dir(), name, module.state_dict(),
                                           ModelCard(name=name, architecture="linear", arch_args=arch_args))
    if not record_shapes:  # a card written before cards recorded shapes
        raw = json.loads(card_path.read_text())
        raw.pop("tensor_shapes")
        card_path.write_text(json.dumps(raw))
    return weights, card_path


class LinearEngine(Engine):
    id = "linear-test"

    def info(self) -> EngineInfo:
        return EngineInfo(id=self.id, title="linear", task="test", workspace="none", inputs="", outputs="", weights="lin")

    def weights_network(self, card):
        return torch.nn.Linear(3, int(card.arch_args["out"]))

    def load(self, device):  # pragma: no cover - not used
        pass

    def predict(self, request, *, progress=None, cancel=None):  # pragma: no cover - not used
        return {}


def test_save_records_tensor_shapes_and_status_checks_them():
    weights, card_path = _save("lin", torch.nn.Linear(3, 4), {"out": 4})
    card = json.loads(card_path.read_text())
    assert card["tensor_shapes"] == {"weight": [4, 3], "bias": [4]}
    store = WeightsStore([user_models_dir()])
    assert store.status("lin") == "ok"
    card["tensor_shapes"]["weight"] = [5, 3]  # a card that describes other tensors
    card_path.write_text(json.dumps(card))
    status = store.status("lin")
    assert status.startswith("lin.safetensors does not fit its model card")
    assert "'weight' is 4x3" in status and "5x3" in status
    with pytest.raises(WeightsError, match="does not fit its model card"):
        store.load("lin")


def test_status_without_recorded_shapes_checks_the_network_the_engine_builds():
    _save("lin", torch.nn.Linear(3, 4), {"out": 5}, record_shapes=False)  # card's args say 5 outputs
    engine = LinearEngine()
    status = engine.weights_status()
    assert status != "ok"
    assert status.startswith("lin.safetensors does not fit the network its card describes")
    assert "2 tensors have another shape" in status
    _save("lin", torch.nn.Linear(3, 4), {"out": 4}, record_shapes=False)
    assert engine.weights_status() == "ok"
    _save("lin", torch.nn.Linear(3, 4), {}, record_shapes=False)  # args the engine cannot build from
    assert "does not describe a network this engine can build" in engine.weights_status()


def test_missing_and_unexpected_tensors_are_named():
    _save("lin", torch.nn.Linear(3, 4, bias=False), {"out": 4}, record_shapes=False)
    status = WeightsStore.default().status("lin", network=lambda card: torch.nn.Linear(3, 4))
    assert "1 tensor missing (e.g. 'bias')" in status
    status = WeightsStore.default().status(
        "lin", network=lambda card: {"weight": [4, 3], "bias": [4], "scale": []})
    assert "2 tensors missing (e.g. 'bias')" in status


def _rewrite_header(weights, card_path, change) -> None:
    blob = weights.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    weights.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + n:])
    card = json.loads(card_path.read_text())
    card["sha256"] = sha256_file(weights)  # the card vouches for the damaged file: the reader must still cope
    card.pop("tensor_shapes", None)
    card_path.write_text(json.dumps(card))


def test_a_header_safetensors_itself_refuses_becomes_a_plain_sentence():
    weights, card_path = _save("lin", torch.nn.Linear(3, 4), {"out": 4})
    _rewrite_header(weights, card_path, lambda h: h["weight"].__setitem__("shape", [5, 3]))
    with pytest.raises(WeightsError) as info:
        WeightsStore.default().load("lin")
    message = str(info.value)
    assert message.startswith("lin.safetensors is damaged") and "SafetensorError" not in message
    assert "\n" not in message


@pytest.mark.parametrize("change", [
    lambda h: h["weight"].pop("data_offsets"),
    lambda h: h["weight"].__setitem__("shape", "4x3"),
    lambda h: h.__setitem__("bias", [1, 2]),
    lambda h: h["bias"].__setitem__("data_offsets", [8, 4]),
])
def test_malformed_header_entries_are_plain_errors_not_tracebacks(change):
    weights, card_path = _save("lin", torch.nn.Linear(3, 4), {"out": 4})
    _rewrite_header(weights, card_path, change)
    status = WeightsStore.default().status("lin")
    assert status.startswith("lin.safetensors is damaged"), status
    with pytest.raises(WeightsError):
        WeightsStore.default().load("lin")


def test_a_card_with_fields_of_the_wrong_type_is_a_plain_error():
    weights, card_path = _save("lin", torch.nn.Linear(3, 4), {"out": 4})
    card = json.loads(card_path.read_text())
    card["tensor_shapes"] = {"weight": "4x3"}
    card_path.write_text(json.dumps(card))
    assert "is damaged" in WeightsStore.default().status("lin")
    card_path.write_bytes(b"\xff\xfe")
    assert "could not be read" in WeightsStore.default().status("lin")
