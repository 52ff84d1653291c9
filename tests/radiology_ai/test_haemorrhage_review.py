"""FindingsReview (engines/radiology/findings.py): the Qt-free model the findings panel binds to."""
from __future__ import annotations

import pytest

from engines.radiology.findings import Finding, FindingsReview


def _f(fid, score, state="unreviewed"):
    return Finding(id=fid, type="subdural haemorrhage", score=score, lo_mm=(0, 0, 0), hi_mm=(1, 2, 3), state=state)


def test_threshold_filters_and_cursor_walks_in_score_order():
    review = FindingsReview([_f("a", 0.3), _f("b", 0.9), _f("c", 0.6)], threshold=0.5)
    assert [f.id for f in review.visible] == ["b", "c"]
    assert review.current.id == "b"
    assert review.next().id == "c"
    assert review.next().id == "c"  # stays on the last one
    assert review.previous().id == "b"
    review.set_threshold(0.2)
    assert [f.id for f in review.visible] == ["b", "c", "a"]
    review.select("a")
    review.set_threshold(0.7)  # the current finding is hidden: the cursor moves to a visible one
    assert review.current.id == "b"
    review.set_threshold(0.95)
    assert review.current is None and review.next() is None


def test_accept_reject_undo_redo_and_listeners():
    review = FindingsReview([_f("a", 0.8), _f("b", 0.7)], threshold=0.0)
    events = []
    review.subscribe(lambda what, detail: events.append((what, detail)))
    review.accept()
    review.next()
    review.reject()
    assert [f.state for f in review.findings] == ["accepted", "rejected"]
    assert review.counts() == {"unreviewed": 0, "accepted": 1, "rejected": 1}
    review.undo()
    assert review.get("b").state == "unreviewed" and review.can_redo
    review.redo()
    assert review.get("b").state == "rejected"
    review.reject()  # no change: not an undo step
    review.undo()
    review.undo()
    assert [f.state for f in review.findings] == ["unreviewed", "unreviewed"] and not review.can_undo
    assert ("states", ["a"]) in events and ("current", "b") in events


def test_next_unreviewed_skips_reviewed_and_bad_input_is_refused():
    review = FindingsReview([_f("a", 0.9, "accepted"), _f("b", 0.8), _f("c", 0.7, "rejected")], threshold=0.0)
    assert review.next_unreviewed().id == "b"
    review.accept()
    assert review.next_unreviewed() is None
    with pytest.raises(ValueError):
        FindingsReview([_f("a", 0.9), _f("a", 0.8)])
    with pytest.raises(ValueError):
        review.set_state("maybe")
    with pytest.raises(KeyError):
        review.select("zzz")
