"""The Text & VQA workspace's workflow driven headless through engines/textvqa/session.py: open a generated
scene, ask the five-model ensemble, keep the history per image, autosave it, reopen it after a restart, open
another image, and read a damaged history as a message. No Qt is imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.textvqa import scenes as S
from engines.textvqa.history import history_autosave_path
from engines.textvqa.session import TextVqaSession, read_image_for_session
from tests.engines.test_music_session import save_and_flush
from tests.fixtures import loaded

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine():
    from engines.textvqa.vqa_engine import VqaMclKdEngine

    yield from loaded(VqaMclKdEngine)


def ask(session: TextVqaSession, engine, question: str) -> dict:
    result = engine.predict(session.request(question))
    session.record_answer(result)
    return result


def test_ask_keep_history_autosave_and_reopen(tmp_path, engine):
    png = S.write_scene(tmp_path, "test", 3)
    session = TextVqaSession()
    histories = []
    session.events.history_changed.connect(histories.append)
    session.open(read_image_for_session(png))
    assert session.path == png and session.image.shape[:2] == (64, 64) and session.entries() == []
    scene_questions = session.suggestions()
    assert len(scene_questions) >= 6 and scene_questions == [q["text"] for q in S.read_sidecar(png)["questions"]]

    first = ask(session, engine, scene_questions[0])
    assert first["truth"] is not None and first["correct"] == (first["answer"] == first["truth"])
    assert session.last is first and session.reliable and session.checks[0].status == "passed"
    ask(session, engine, scene_questions[1])
    ask(session, engine, scene_questions[0])  # asked again: moves to the end, not listed twice
    assert [e["question"] for e in session.entries()] == [scene_questions[1], scene_questions[0]]
    assert histories[-1] == session.entries() and session.dirty

    save_and_flush(session)
    stored = json.loads(history_autosave_path(png).read_text(encoding="utf-8"))
    assert stored["schema"] == 1 and [q["question"] for q in stored["data"]["questions"]] == \
        [scene_questions[1], scene_questions[0]]

    again = TextVqaSession()  # as after a restart
    again.open(read_image_for_session(png))
    assert again.entries() == session.entries() and again.last is None and not again.dirty


def test_each_image_keeps_its_own_questions(tmp_path, engine):
    a, b = S.write_scene(tmp_path, "test", 7), S.write_scene(tmp_path, "test", 8)
    session = TextVqaSession()
    session.open(read_image_for_session(a))
    ask(session, engine, "how many things are there?")
    session.open(read_image_for_session(b))
    assert session.entries() == [] and session.last is None
    assert session.request("is there a cube?")["image_path"] == b
    session.open(read_image_for_session(a))  # this session's questions come back without a disk read
    assert [e["question"] for e in session.entries()] == ["how many things are there?"]


def test_questions_need_an_image_and_text(tmp_path):
    session = TextVqaSession()
    assert "Open an image" in session.question_problem("how many?")
    with pytest.raises(ValueError, match="Open an image"):
        session.request("how many?")
    session.open(read_image_for_session(S.write_scene(tmp_path, "test", 2)))
    assert session.question_problem("   ") == "Type a question first."
    assert session.question_problem("how many?") is None


def test_a_damaged_history_is_a_notice_and_an_empty_history(tmp_path):
    png = S.write_scene(tmp_path, "test", 10)
    saved = history_autosave_path(png)
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text('{"schema": 1, "data": {"questions": [{"question": 3', encoding="utf-8")
    opened = read_image_for_session(png)
    assert opened.entries == [] and png.name in opened.notice and "set aside" in opened.notice
    assert not saved.exists()


NO_QT = r"""
import json, sys
from pathlib import Path
from engines.core.autosave import AutosaveWriter
from engines.textvqa import scenes as S
from engines.textvqa.session import TextVqaSession, read_image_for_session
from tests.engines.test_music_session import save_and_flush
from engines.textvqa.vqa_engine import VqaMclKdEngine
png = S.write_scene(Path(sys.argv[1]), "test", 4)
session = TextVqaSession(); session.open(read_image_for_session(png))
engine = VqaMclKdEngine(); engine.load("cpu")
session.record_answer(engine.predict(session.request(session.suggestions()[0])))
writer = AutosaveWriter(); session.save_autosave(writer); writer.close()
print("JSON" + json.dumps({"qt": sorted(m for m in sys.modules if m.startswith(("PySide", "PyQt", "pyqtgraph"))),
                           "saved": session.history_file.exists(), "entries": len(session.entries())}))
"""


def test_the_workflow_imports_no_qt(tmp_path):
    env = dict(os.environ, CSI_WORKSTATION_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", NO_QT, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=240)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("JSON")), None)
    assert line is not None, proc.stderr[-3000:]
    assert json.loads(line[4:]) == {"qt": [], "saved": True, "entries": 1}
