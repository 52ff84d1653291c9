"""Trust: what the user does on one slide stays with that slide (undo history, autosave)."""
from __future__ import annotations

import json

import pytest

from engines.pathology.annotations import autosave_path
from engines.pathology.geojson import Annotation, rectangle_points


@pytest.fixture(scope="module")
def second_slide(tmp_path_factory):
    from engines.pathology.samples import synth_ihc_canvas, write_pyramid_tiff

    canvas, _ = synth_ihc_canvas(768, 512, seed=11)
    return write_pyramid_tiff(tmp_path_factory.mktemp("slide-b") / "slide-b.tiff", canvas, 0.5, levels=2)


def _open(view, qtbot, path):
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(path)


def test_undo_after_opening_another_slide_does_not_bring_the_first_slides_annotations(
        window, qtbot, small_pyramid, second_slide):
    view = window.switch_to("pathology")
    _open(view, qtbot, small_pyramid)
    view.store.add(Annotation("rectangle", rectangle_points(10, 10, 100, 100), name="A one"))
    view.store.add(Annotation("rectangle", rectangle_points(200, 200, 300, 300), name="A two"))
    assert view.store.can_undo
    _open(view, qtbot, second_slide)  # B has no saved annotations
    assert view.store.items == [] and not view.store.can_undo and not view.store.can_redo
    assert not view.undo_button.isEnabled()
    view.store.undo()
    view.store.redo()
    assert view.store.items == []
    view.autosave()
    assert window.tasks.wait_idle(20)
    saved_b = autosave_path(second_slide)
    names = [f["properties"].get("name") for f in json.loads(saved_b.read_text())["data"]["features"]] \
        if saved_b.exists() else []
    assert "A one" not in names and "A two" not in names
    # A's own edits were saved to A's file when B opened
    view._autosaver.flush()
    saved_a = json.loads(autosave_path(small_pyramid).read_text())["data"]
    assert [f["properties"]["name"] for f in saved_a["features"]] == ["A one", "A two"]
