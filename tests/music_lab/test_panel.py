"""MusicLabPanel with pytest-qt (offscreen): harmonize the sample melody, lock a chord and regenerate around it,
autosave/restore of locks, bad typed chords as notifications, melody generation and export, playback without a
sound card, covers on the bundled clips."""
from __future__ import annotations

import json
from pathlib import Path

import pretty_midi
import pytest

from app.worker import TaskManager
from app.workspaces.base import ShellContext
from app.workspaces.music.lab import MusicLabPanel

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture
def panel(qtbot):
    from engines.core.registry import EngineRegistry

    notes: list[tuple[str, str, str]] = []
    tasks = TaskManager()
    registry = EngineRegistry.discover()
    ctx = ShellContext(tasks=tasks, notify=lambda level, msg, detail: notes.append((level, msg, detail)),
                       add_recent=lambda p: None, registry=lambda: registry, device=lambda: "cpu")
    p = MusicLabPanel(ctx)
    p.notes = notes
    qtbot.addWidget(p)
    p.resize(1300, 800)
    p.show()
    yield p
    p.shutdown()
    tasks.shutdown(20000)


def errors(panel):
    return [n[1] for n in panel.notes if n[0] == "error"]


def _harmonize_sample(qtbot, panel):
    tab = panel.harmonizer
    with qtbot.waitSignal(tab.result_ready, timeout=120_000):
        tab.open_sample()
    return tab


def test_harmonizer_tab_locks_regenerates_and_restores(qtbot, panel):
    tab = _harmonize_sample(qtbot, panel)
    assert len(tab.result.chords) == 11 and tab.table.columnCount() == 11
    assert "A minor" in tab.info.text()
    # type a chord into bar 3: it is locked and the rest is re-harmonized around it
    with qtbot.waitSignal(tab.result_ready, timeout=60_000):
        assert tab.set_chord(2, "Dm")
    assert tab.result.symbols[2] == "Dm" and tab.locks == {2: "Dm"}
    assert tab.table.item(1, 2).checkState().name == "Checked"
    # alternatives keep the lock
    for _ in range(3):
        with qtbot.waitSignal(tab.result_ready, timeout=60_000):
            tab.harmonize(sample=True)
        assert tab.result.symbols[2] == "Dm"
    # the lock survives a restart (autosave in the user data folder)
    source = tab.melody_source
    tab.locks = {}
    with qtbot.waitSignal(tab.result_ready, timeout=60_000):
        tab.open_melody(Path(source))
    assert tab.locks == {2: "Dm"} and tab.result.symbols[2] == "Dm"
    # an unknown chord symbol is a notification, not a crash
    assert not tab.set_chord(4, "H#9sus7")
    assert any("unknown chord symbol" in e for e in errors(panel))


def test_harmonizer_export_and_playback_message(qtbot, panel, tmp_path):
    tab = _harmonize_sample(qtbot, panel)
    out = tmp_path / "h.mid"
    tab.export(out)
    qtbot.waitUntil(lambda: out.exists(), timeout=30_000)
    assert len(pretty_midi.PrettyMIDI(str(out)).instruments) == 2
    tab.play()  # no sound card here: a clear message, or a started stream on a null device
    qtbot.waitUntil(lambda: panel.status.text() != "" or panel.player.player is not None, timeout=30_000)
    assert errors(panel) == []


def test_generator_tab(qtbot, panel, tmp_path):
    gen = panel.generator
    gen.chords_edit.setText("C G Am F")
    gen.distance.setValue(15)
    gen.n_box.setValue(3)
    with qtbot.waitSignal(gen.result_ready, timeout=60_000):
        gen.generate()
    assert gen.list.count() == 3 and gen.result.distance == 1.5
    gen.list.setCurrentRow(1)
    assert gen.result.chosen == 1
    assert panel.autosaver.flush()
    saved = json.loads(gen._autosave_file.read_text())["data"]
    assert saved["chords"] == "C G Am F" and len(saved["notes"]) == len(gen.result.melodies[1])
    out = tmp_path / "m.musicxml"
    gen.export(out)
    qtbot.waitUntil(lambda: out.exists(), timeout=30_000)
    gen.chords_edit.setText("C G Xq")
    gen.generate()
    qtbot.waitUntil(lambda: bool(errors(panel)), timeout=30_000)
    assert "unknown chord symbol" in errors(panel)[-1]


def test_covers_tab_on_bundled_clips(qtbot, panel):
    cov = panel.covers
    with qtbot.waitSignal(cov.result_ready, timeout=180_000):
        cov.use_sample()
    ranking = cov.result.ranking
    assert len(ranking) == 2
    assert "version" in Path(ranking[0].reference).name
    assert cov.table.rowCount() == 2 and cov.image.image is not None
    assert "is probably a version of" in cov.verdict.text()
    assert errors(panel) == []


def test_progression_from_the_chord_lane(panel):
    panel.set_progression(["C:maj", "C:maj", "A:min", "N", "F:maj/3", "G:7"])
    assert panel.generator.chords_edit.text() == "C Am F/A G7"
    assert panel.tabs.currentWidget() is panel.generator
