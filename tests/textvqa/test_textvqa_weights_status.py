"""The textvqa engines' weights status compares the file with the network their card describes."""
from __future__ import annotations

import json
import shutil

import pytest

from engines.core.paths import resources_dir, user_models_dir
from engines.textvqa.g2p_engine import G2pNsgdEngine
from engines.textvqa.vqa_engine import VqaMclKdEngine


@pytest.mark.parametrize("engine_cls, name, arg", [
    (G2pNsgdEngine, "g2p-canvas-nsgd", "channels"),
    (VqaMclKdEngine, "vqa-san-mclkd", "hidden"),
])
def test_a_card_whose_arguments_do_not_describe_its_tensors_is_not_ok(engine_cls, name, arg):
    engine = engine_cls()
    assert engine.info().weights == name
    assert engine.weights_status() == "ok"  # the bundled weights fit their network
    src = resources_dir() / "models" / "textvqa"
    shutil.copy(src / f"{name}.safetensors", user_models_dir() / f"{name}.safetensors")
    card = json.loads((src / f"{name}.card.json").read_text(encoding="utf-8"))
    assert not card.get("tensor_shapes")  # the bundled cards record no shapes: the network is the reference
    card["arch_args"][arg] = int(card["arch_args"][arg]) * 2
    (user_models_dir() / f"{name}.card.json").write_text(json.dumps(card), encoding="utf-8")
    status = engine.weights_status()
    assert status.startswith(f"{name}.safetensors does not fit the network its card describes"), status
