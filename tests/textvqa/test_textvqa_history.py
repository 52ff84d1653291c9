"""The VQA question history through the shared autosave service (Qt-free)."""
from __future__ import annotations

import json

from engines.core.autosave import AutosaveWriter
from engines.textvqa.history import (HISTORY_SCHEMA, history_autosave_path, history_payload, legacy_history_file,
                                     load_history)

ENTRY = {"question": "how many circles?", "answer": "2", "truth": "2", "correct": True}


def test_history_round_trips_per_image(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    writer = AutosaveWriter()
    try:
        writer.save(history_autosave_path(a), history_payload([ENTRY]), schema=HISTORY_SCHEMA, delay=0)
        assert writer.flush()
    finally:
        writer.close()
    path, entries, notice = load_history(a)
    assert path == history_autosave_path(a) and entries == [ENTRY] and notice is None
    assert load_history(b)[1:] == ([], None)


def test_malformed_entries_set_the_history_aside(tmp_path):
    a = tmp_path / "a.png"
    path = history_autosave_path(a)
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = {"schema": 1, "data": {"questions": [{"question": "q", "answer": 5}]}}
    path.write_text(json.dumps(bad), encoding="utf-8")
    _, entries, notice = load_history(a)
    assert entries == [] and "a.png" in notice and "set aside" in notice and not path.exists()


def test_old_single_file_history_is_still_read(tmp_path):
    a = tmp_path / "a.png"
    legacy = legacy_history_file()
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps({str(a.resolve()): [ENTRY]}), encoding="utf-8")
    assert load_history(a)[1:] == ([ENTRY], None)
    assert load_history(tmp_path / "other.png")[1:] == ([], None)
    legacy.write_text("{damaged", encoding="utf-8")
    assert load_history(a)[1:] == ([], None)  # an old, damaged history is quietly not used
