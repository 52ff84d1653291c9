"""Trust: a damaged annotation autosave never stops its slide from opening. It is set aside as
``<name>.damaged-<time>``, the user is told in one sentence, and the slide opens without it."""
from __future__ import annotations

import json

import pytest

from engines.pathology.annotations import autosave_path, legacy_autosave_path
from engines.pathology.geojson import Annotation, rectangle_points


def _open(window, qtbot, path):
    view = window.switch_to("pathology")
    before = len(window.notifications.items)
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(path)
    return view, window.notifications.items[before:]


@pytest.mark.parametrize("content, reason", [
    (b"\x00\xff{ not json", "the file is damaged"),
    (json.dumps({"schema": 99, "data": {"type": "FeatureCollection", "features": []}}).encode(), "newer version"),
    (json.dumps({"schema": 1, "data": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[]]}}]}}).encode(), "contents are damaged"),
    (json.dumps({"type": "FeatureCollection", "features": []}).encode(), "not an autosave"),
])
def test_a_damaged_autosave_is_set_aside_and_the_slide_opens(window, qtbot, small_pyramid, content, reason):
    target = autosave_path(small_pyramid)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    view, notes = _open(window, qtbot, small_pyramid)
    assert view.slide_path == small_pyramid and view.store.items == []
    aside = list(target.parent.glob(target.name + (".newer-*" if "newer" in reason else ".damaged-*")))
    assert len(aside) == 1 and aside[0].read_bytes() == content and not target.exists()
    warnings = [n for n in notes if n.level == "warning"]
    assert len(warnings) == 1 and reason in warnings[0].message
    assert small_pyramid.name in warnings[0].message and aside[0].name in warnings[0].message
    # and the next edit autosaves normally, in the service's format
    view.store.add(Annotation("rectangle", rectangle_points(5, 5, 50, 50), name="after"))
    view.autosave()
    assert window.tasks.wait_idle(20) and view._autosaver.flush()
    saved = json.loads(target.read_text())
    assert saved["schema"] == 1 and [f["properties"]["name"] for f in saved["data"]["features"]] == ["after"]


def test_a_damaged_autosave_from_an_earlier_version_is_set_aside_too(window, qtbot, small_pyramid):
    legacy = legacy_autosave_path(small_pyramid)
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text("{broken")
    view, notes = _open(window, qtbot, small_pyramid)  # before: every open failed on this file
    assert view.slide_path == small_pyramid
    assert not legacy.exists() and len(list(legacy.parent.glob(legacy.name + ".damaged-*"))) == 1
    assert any("set aside" in n.message and small_pyramid.name in n.message for n in notes)


def test_annotations_survive_closing_the_window(qtbot, small_pyramid):
    from app.main_window import MainWindow

    win = MainWindow(detect_device=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    view, _ = _open(win, qtbot, small_pyramid)
    view.store.add(Annotation("rectangle", rectangle_points(5, 5, 50, 50), name="closing"))
    win.close()  # no autosave timer has fired yet: shutdown queues and writes the last snapshot
    saved = json.loads(autosave_path(small_pyramid).read_text())
    assert [f["properties"]["name"] for f in saved["data"]["features"]] == ["closing"]
