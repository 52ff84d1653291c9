"""Settings are checked per field: a mistyped value falls back to its default with a message; the file heals."""
from __future__ import annotations

import json

import pytest

from app.main_window import MainWindow
from app.settings import Settings
from engines.core.device import resolve_device
from engines.core.engine import EngineError


def _write(data) -> None:
    Settings.path().write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("field, bad", [
    ("show_tasks", None), ("show_messages", "yes"), ("device", 7), ("device", "gpu"), ("device", "cuda:x"),
    ("last_workspace", ["music"]), ("version", "one"),
])
def test_a_mistyped_field_gets_its_default_and_a_sentence(field, bad):
    _write({"show_tasks": False, "device": "cpu", "recent_files": ["/data/a.dcm"], field: bad})
    settings, problems = Settings.load_with_problems()
    default = getattr(Settings(), field)
    assert getattr(settings, field) == default
    assert len(problems) == 1
    assert f'"{field}"' in problems[0] and str(Settings.path()) in problems[0] and "default" in problems[0]
    assert "object has no attribute" not in problems[0]
    # the good fields survive, and the file is rewritten valid
    assert settings.recent_files == ["/data/a.dcm"]
    if field != "show_tasks":
        assert settings.show_tasks is False
    stored = json.loads(Settings.path().read_text(encoding="utf-8"))
    assert stored[field] == default
    assert Settings.load_with_problems()[1] == []


def test_recent_files_entries_that_are_not_file_names_are_dropped():
    _write({"recent_files": ["/a.svs", None, 3, "/a.svs", "/b.mid"]})
    settings, problems = Settings.load_with_problems()
    assert settings.recent_files == ["/a.svs", "/b.mid"]
    assert len(problems) == 1 and "2 entries" in problems[0]
    _write({"recent_files": "oops"})
    settings, problems = Settings.load_with_problems()
    assert settings.recent_files == [] and "recent_files" in problems[0]


def test_unknown_keys_of_a_newer_version_are_kept():
    _write({"version": 3, "theme": "dark", "show_tasks": False})
    settings, problems = Settings.load_with_problems()
    assert problems == [] and settings.show_tasks is False
    settings.save()
    stored = json.loads(Settings.path().read_text(encoding="utf-8"))
    assert stored["theme"] == "dark" and stored["version"] == 3


def test_an_unreadable_file_is_kept_aside_and_replaced_by_defaults():
    Settings.path().write_bytes(b"\xff{ not json")
    settings, problems = Settings.load_with_problems()
    assert settings == Settings()
    assert len(problems) == 1 and "unreadable" in problems[0] and "not valid JSON" in problems[0]
    assert list(Settings.path().parent.glob("settings.json.damaged-*"))
    assert Settings.load_with_problems() == (Settings(), [])
    _write([1, 2])
    assert "no settings object" in Settings.load_with_problems()[1][0]


def test_non_utf8_recent_file_names_still_save():
    settings = Settings()
    settings.recent_files = ["/tmp/\udcffscan.dcm"]
    settings.save()
    assert Settings.load_with_problems()[0].recent_files == ["/tmp/\udcffscan.dcm"]


def test_the_window_opens_with_mistyped_settings_and_says_so(qtbot, caplog):
    _write({"show_tasks": None, "device": 7})
    win = MainWindow(detect_device=False)
    qtbot.addWidget(win)
    try:
        messages = [n.message for n in win.notifications.items]
        assert any('"show_tasks"' in m for m in messages) and any('"device"' in m for m in messages)
        assert win.settings.show_tasks is True and win.settings.device == "auto"
        assert any('"device"' in r.getMessage() for r in caplog.records)
    finally:
        win.close()


@pytest.mark.parametrize("bad", [7, "gpu", "cuda:x", "cudax"])
def test_device_resolver_refuses_bad_values_in_plain_words(bad):
    with pytest.raises(EngineError, match="use auto, cpu, cuda, cuda:N or mps"):
        resolve_device(bad)


def test_the_window_removes_temporaries_left_by_killed_writes_on_start(qtbot):
    import os
    import time

    from engines.core.atomic import TEMP_MARKER
    from engines.core.autosave import autosave_root
    from engines.core.paths import config_dir

    folder = autosave_root() / "radiology"
    folder.mkdir(parents=True)
    stale = [folder / f".abc.json{TEMP_MARKER}k3j4h5g6.json", config_dir() / f".settings.json{TEMP_MARKER}a1b2c3d4.json"]
    keep = folder / "abc.json"
    for p in [*stale, keep]:
        p.write_text("{}")
    old = time.time() - 3600
    for p in stale:
        os.utime(p, (old, old))
    win = MainWindow(detect_device=False)
    qtbot.addWidget(win)
    try:
        qtbot.waitUntil(lambda: not any(p.exists() for p in stale), timeout=10_000)
        assert keep.exists()
    finally:
        win.close()
