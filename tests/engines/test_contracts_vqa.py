"""The VQA engine's input contract: generated scenes pass; a natural photo's answer is headed by the warning."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from engines.core.checks import Checks, checks_of, warning_lines
from engines.textvqa import scenes as S
from engines.textvqa.vqa_engine import SCENE_LIMITS, VqaMclKdEngine, check_scene, scene_statistics
from tests.fixtures import loaded

HEADLINE = "This picture does not look like the scenes the VQA model was trained on"


@pytest.fixture(scope="module")
def engine():
    yield from loaded(VqaMclKdEngine)


def test_every_generated_scene_lies_inside_the_limits():
    for split, n in (("train", 150), ("test", 50)):
        for i in range(n):
            stats = scene_statistics(S.make_example(split, i, 1)[1])
            for key, (low, high) in SCENE_LIMITS.items():
                assert low <= stats[key] <= high, (split, i, key, stats[key])


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea", "camera"])
def test_natural_photos_are_out_of_domain(photo):
    from skimage import data

    rgb = getattr(data, photo)()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, -1)
    small = np.asarray(Image.fromarray(rgb).resize((S.IMAGE_SIZE, S.IMAGE_SIZE), Image.BILINEAR))
    checks = Checks()
    check_scene(small, checks, f"{photo}.png")
    assert checks.items[0].status == "warned"
    assert checks.items[0].reason.startswith(HEADLINE) and f"{photo}.png" in checks.items[0].reason


def test_a_natural_photo_gets_the_warning_as_headline_and_an_unreliable_answer(engine, tmp_path):
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    r = engine.predict({"image_path": path, "question": "how many things are there?"})
    assert r["headline"].startswith(HEADLINE)
    assert r["reliable"] is False
    assert r["answer_text"].startswith(HEADLINE)
    assert r["answer_text"].endswith(f"Model's answer (unreliable): {r['answer']}")
    assert warning_lines(r) and warning_lines(r)[0].startswith("scene: " + HEADLINE)
    out = engine.write_result(r, tmp_path / "answer.json")[0]
    saved = json.loads(out.read_text())
    assert list(saved)[0] == "headline"  # the written answer leads with the warning
    assert saved["headline"] == r["headline"] and saved["checks"][0]["status"] == "warned"


def test_a_generated_scene_is_answered_plainly(engine, tmp_path):
    png = S.write_scene(tmp_path, "test", 7)
    r = engine.predict({"image_path": png, "question": "how many things are there?"})
    assert r["headline"] is None and r["reliable"] is True and r["answer_text"] == r["answer"]
    assert [(c.name, c.status) for c in checks_of(r)][0] == ("scene", "passed")
    assert all(c.status == "passed" for c in checks_of(r))


def test_an_enlarged_jpeg_of_a_scene_stays_in_domain(engine, tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(np.kron(S.make_example("test", 6)[1], np.ones((3, 3, 1), np.uint8))).save(big)
    r = engine.predict({"image_path": big, "question": "how many things are there?"})
    assert r["reliable"] is True and warning_lines(r) == []
