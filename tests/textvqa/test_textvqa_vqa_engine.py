"""The shipped MCL-KD ensemble on held-out generated scenes, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engines.core.engine import EngineError
from engines.textvqa import scenes as S
from engines.textvqa.vqa_engine import VqaMclKdEngine
from tests.fixtures import loaded

# majority answer ("yes") is ~22% of questions; uniform chance is 1/22
ACCURACY_FLOOR = 0.45


@pytest.fixture(scope="module")
def engine():
    yield from loaded(VqaMclKdEngine)


def test_held_out_accuracy_is_well_above_chance(engine):
    import torch

    torch.set_num_threads(1)
    data = S.build_dataset("test", 40)  # the test split's first 40 scenes: never seen in training
    images = torch.from_numpy(data["images"].astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = engine.model(images, torch.from_numpy(data["q_tokens"]), torch.from_numpy(data["q_scene"]))
    pred = torch.softmax(logits, -1).mean(0).argmax(-1).numpy()
    acc = float((pred == data["q_answer"]).mean())
    majority = float(np.bincount(data["q_answer"]).max() / len(data["q_answer"]))
    assert acc > ACCURACY_FLOOR and acc > majority + 0.15, (acc, majority)


def test_answer_on_a_generated_scene_reports_members_truth_and_attention(engine, tmp_path):
    png = S.write_scene(tmp_path, "test", 3)
    side = S.read_sidecar(png)
    q = side["questions"][0]
    r = engine.predict({"image_path": png, "question": q["text"]})
    assert r["answer"] in S.ANSWERS and len(r["members"]) == 5
    assert r["truth"] == q["answer"] and r["correct"] == (r["answer"] == q["answer"])
    assert r["family"] == q["family"] and len(r["specialists"]) == r["k"]
    att = np.asarray(r["members"][0]["attention"])
    assert att.shape[-2:] == (8, 8) and np.allclose(att.sum((-1, -2)), 1, atol=1e-2)
    out = engine.write_result(r, tmp_path / "a.json")[0]
    assert json.loads(out.read_text())["answer"] == r["answer"]


def test_bad_input_gives_plain_messages(engine, tmp_path):
    png = S.write_scene(tmp_path, "test", 4)
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is text, not a picture")
    with pytest.raises(EngineError, match="not an image"):
        engine.predict({"image_path": not_image, "question": "how many things are there?"})
    with pytest.raises(EngineError, match="empty"):
        engine.predict({"image_path": png, "question": "   "})
    with pytest.raises(EngineError, match="2000 characters"):
        engine.predict({"image_path": png, "question": "a" * 2000})
    r = engine.predict({"image_path": png, "question": "how many zebras are there?"})
    assert any("zebras" in n for n in r["notes"]) and r["truth"] is None


def test_a_users_larger_image_is_resized_with_a_note(engine, tmp_path):
    from PIL import Image

    big = tmp_path / "big.jpg"
    Image.fromarray(np.kron(S.make_example("test", 6)[1], np.ones((3, 3, 1), np.uint8))).save(big)
    r = engine.predict({"image_path": big, "question": "how many things are there?"})
    assert any("resized" in n for n in r["notes"])
