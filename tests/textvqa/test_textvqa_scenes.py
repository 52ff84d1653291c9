"""The scene generator: deterministic, split by scene, answers consistent with the scene graph."""
from __future__ import annotations

import numpy as np

from engines.textvqa import scenes as S


def test_scenes_are_deterministic_and_splits_differ():
    o1, img1, q1 = S.make_example("test", 5)
    o2, img2, q2 = S.make_example("test", 5)
    assert np.array_equal(img1, img2) and q1 == q2 and o1 == o2
    _, img3, _ = S.make_example("train", 5)
    assert not np.array_equal(img1, img3)
    assert img1.shape == (S.IMAGE_SIZE, S.IMAGE_SIZE, 3) and img1.dtype == np.uint8


def test_answers_follow_the_scene_graph():
    for i in range(30):
        objects, _, qs = S.make_example("val", i)
        for q in qs:
            assert q.answer in S.ANSWERS and q.family in S.FAMILIES
            assert S.question_family(q.text) == q.family, q.text
            tokens, unknown = S.encode_question(q.text)
            assert not unknown
            if q.text == "how many things are there?":
                assert q.answer == str(min(len(objects), S.MAX_COUNT))
            if q.text.startswith("how many ") and q.text.endswith(" circles are there?") and q.text.count(" ") == 5:
                value = q.text.split()[2]
                attr = next(a for a, vals in S.ATTR_VALUES.items() if value in vals)
                assert q.answer == str(sum(o.shape == "circle" and o.attr(attr) == value for o in objects))


def test_every_family_is_asked_in_a_dataset():
    data = S.build_dataset("val", 20)
    assert set(np.unique(data["q_family"])) == set(range(len(S.FAMILIES)))
    assert data["q_tokens"].shape[1] == S.MAX_TOKENS
    assert (data["q_scene"] < 20).all()


def test_written_scene_has_a_sidecar_with_questions(tmp_path):
    png = S.write_scene(tmp_path, "sample", 0)
    side = S.read_sidecar(png)
    assert side and len(side["questions"]) >= 6 and side["objects"]
