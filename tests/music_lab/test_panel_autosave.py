"""The Lab panel's autosaves: written by the background writer from a key computed once in a worker (the GUI
thread never reads or hashes the melody file again), validated when read back; a damaged one is set aside with
a message and the melody / progression opens without it."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.music_lab.test_panel import errors, panel  # noqa: F401 - the panel fixture

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def _melody_copy(tmp_path: Path) -> Path:
    from engines.core.samples import sample_path

    src = Path(sample_path("music_lab-melody"))
    return Path(shutil.copy(src, tmp_path / f"tune{src.suffix}"))


def _locks_file(melody: Path) -> Path:
    from app.workspaces.music.lab.panel import HARMONIZER_KIND
    from engines.core.autosave import autosave_path

    return autosave_path(HARMONIZER_KIND, melody, content_key=hashlib.sha256(melody.read_bytes()).hexdigest())


def _warnings(panel):  # noqa: F811
    return [n[1] for n in panel.notes if n[0] == "warning"]


def test_locks_are_autosaved_without_touching_the_melody_file_again(qtbot, panel, tmp_path):  # noqa: F811
    melody = _melody_copy(tmp_path)
    target = _locks_file(melody)
    tab = panel.harmonizer
    with qtbot.waitSignal(tab.result_ready, timeout=120_000):
        tab.open_melody(melody)
    melody.unlink()  # the key was computed once, in the worker: autosaving needs the file no more
    tab.toggle_lock(1, True)
    assert panel.autosaver.flush()
    stored = json.loads(target.read_text(encoding="utf-8"))
    assert stored["schema"] == 1 and stored["data"]["locks"] == {"1": tab.result.symbols[1]}
    assert errors(panel) == []


@pytest.mark.parametrize("content", ['[]', '{"schema": 1, "data": {"locks": {"2": "H#9sus7"}}}',
                                     '{"schema": 1, "data": {"locks": ["Dm"]}}', '{"schema": 1, "data": {'])
def test_damaged_locks_are_set_aside_and_the_melody_is_harmonized(qtbot, panel, tmp_path, content):  # noqa: F811
    melody = _melody_copy(tmp_path)
    target = _locks_file(melody)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    tab = panel.harmonizer
    with qtbot.waitSignal(tab.result_ready, timeout=120_000):
        tab.open_melody(melody)
    assert tab.locks == {} and len(tab.result.chords) == 11
    assert any("tune" in m and "set aside" in m for m in _warnings(panel)), panel.notes
    assert list(target.parent.glob(target.name + ".damaged-*"))


def test_a_damaged_chosen_melody_is_set_aside_and_melodies_are_generated(qtbot, panel):  # noqa: F811
    from app.workspaces.music.lab.panel import GENERATOR_KIND
    from engines.core.autosave import autosave_path

    chords = "C G Am F"
    target = autosave_path(GENERATOR_KIND, chords, content_key=f"progression:{chords}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"schema": 1, "data": {"chords": chords, "distance": "far", "notes": [[0, 1, 60]]}}),
                      encoding="utf-8")
    gen = panel.generator
    gen.chords_edit.setText(chords)
    gen.n_box.setValue(2)
    with qtbot.waitSignal(gen.result_ready, timeout=60_000):
        gen.generate()
    assert gen.list.count() == 2 and "restored" not in gen.list.item(0).text()
    assert any("set aside" in m for m in _warnings(panel))
    # a good one comes back as the first, restored melody
    gen.list.setCurrentRow(1)
    chosen = [(n.start, n.pitch) for n in gen.result.melodies[1]]
    with qtbot.waitSignal(gen.result_ready, timeout=60_000):
        gen.generate()
    assert "restored" in gen.list.item(0).text()
    assert [(n.start, n.pitch) for n in gen.result.melodies[0]] == chosen


@pytest.mark.parametrize("data, problem", [
    ([], "object"), ({"chords": 3, "distance": 1, "notes": []}, "text"),
    ({"chords": "C", "distance": 9, "notes": []}, "distance"),
    ({"chords": "C", "distance": 1, "notes": [[0, -1, 60]]}, "note 1"),
    ({"chords": "C", "distance": 1, "notes": [[0, 1, 200]]}, "note 1"),
])
def test_chosen_melody_validation_names_the_problem(data, problem):
    from engines.music_lab.generator import chosen_melody_from_autosave

    with pytest.raises((ValueError, TypeError), match=problem):
        chosen_melody_from_autosave(data)
