"""The Text & VQA workspace with qtbot: ask about the sample scene, pronounce words, bad input."""
from __future__ import annotations

import pytest

from app.worker import TaskManager
from app.workspaces.base import ShellContext
from app.workspaces.textvqa import MANIFEST
from engines.textvqa import scenes as S


@pytest.fixture
def view(qtbot):
    from engines.core.registry import EngineRegistry

    from app.workspaces.textvqa.view import TextVqaWorkspace

    notes: list[tuple[str, str]] = []
    registry = EngineRegistry.discover()
    tasks = TaskManager()
    ctx = ShellContext(tasks=tasks, notify=lambda level, msg, detail="": notes.append((level, msg)),
                       add_recent=lambda p: None, registry=lambda: registry, device=lambda: "cpu")
    v = TextVqaWorkspace(MANIFEST, ctx)
    v.notes = notes
    qtbot.addWidget(v)
    v.resize(1200, 800)
    yield v
    v.shutdown()
    tasks.cancel_all()
    tasks.wait_idle(30)


def test_sample_scene_is_answered_with_members_truth_and_history(view, qtbot):
    with qtbot.waitSignal(view.vqa.answered, timeout=120_000) as blocker:
        view.open_sample()
    r = blocker.args[0]
    assert view.vqa.members.rowCount() == 5
    assert r["truth"] is not None and view.vqa.history_list.count() == 1
    assert view.vqa.suggested.count() >= 6
    assert view.vqa.canvas.attention is not None  # the ensemble's attention is drawn over the image
    # a second question about the same image joins its history
    with qtbot.waitSignal(view.vqa.answered, timeout=60_000):
        view.vqa._ask_text(view.vqa.suggested.item(1).text())
    assert view.vqa.history_list.count() == 2
    view.vqa.members.selectRow(2)
    assert view.vqa.att_model.currentText() == "model 3"


def test_bad_inputs_are_messages_not_crashes(view, qtbot, tmp_path):
    view.vqa.ask()  # no image yet
    assert view.notes[-1][0] == "warning"
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"not a png at all")
    view.open_path(fake)
    qtbot.waitUntil(lambda: any(level == "error" and "not an image" in m for level, m in view.notes), timeout=30_000)
    png = S.write_scene(tmp_path, "test", 2)
    view.open_path(png)
    qtbot.waitUntil(lambda: view.vqa.path == png, timeout=30_000)
    view.vqa.question.setText("")
    view.vqa.ask()
    assert "question" in view.notes[-1][1].lower()
    view.g2p.set_text("12345")
    view.g2p.pronounce()
    qtbot.waitUntil(lambda: any("no word" in m for _, m in view.notes), timeout=60_000)


def test_g2p_tab_shows_pronunciations_and_fill_order(view, qtbot, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("knight colonel x1y zorblefrump", encoding="utf-8")
    with qtbot.waitSignal(view.g2p.pronounced, timeout=120_000):
        view.open_path(words)
    assert view.tabs.currentWidget() is view.g2p
    assert view.g2p.table.rowCount() == 3
    assert view.g2p.table.item(0, 0).text() == "knight"
    # a word the dictionary knows: its pronunciation first, the model's guess beside it, labelled
    assert view.g2p.table.item(0, 1).text() == "N AY T   (CMUdict)"
    colonel = view.g2p.result["words"][1]
    assert view.g2p.table.item(1, 1).text() == "K ER N AH L   (CMUdict)"
    assert view.g2p.table.item(1, 2).text() == f"{' '.join(colonel['phonemes'])}   (model, nsgd)"
    # a made-up word: only the model's guess, and it says so
    made_up = view.g2p.result["words"][2]
    assert made_up["dictionary"] is None
    assert view.g2p.table.item(2, 1).text() == f"{' '.join(made_up['phonemes'])}   (model's guess: not in CMUdict)"
    knight = view.g2p.result["words"][0]
    assert view.g2p.steps.rowCount() == len(knight["phonemes"]) + 1  # phonemes + end mark, padding hidden
    assert "x1y" in view.g2p.skipped.text()


def test_history_is_kept_per_image_and_drops_open_images(view, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    a, b = S.write_scene(tmp_path, "test", 7), S.write_scene(tmp_path, "test", 8)
    view.open_path(a)
    qtbot.waitUntil(lambda: view.vqa.path == a, timeout=30_000)
    with qtbot.waitSignal(view.vqa.answered, timeout=60_000):
        view.vqa._ask_text("how many things are there?")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(b))])
    view.dropEvent(QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    qtbot.waitUntil(lambda: view.vqa.path == b, timeout=30_000)
    assert view.vqa.history_list.count() == 0
    view.open_path(a)
    qtbot.waitUntil(lambda: view.vqa.path == a, timeout=30_000)
    assert view.vqa.history_list.count() == 1
    assert "how many things" in view.vqa.history_list.item(0).text()


def test_question_history_is_autosaved_and_restored(view, qtbot, tmp_path):
    import json

    from app.workspaces.textvqa.view import TextVqaWorkspace
    from engines.textvqa.history import history_autosave_path

    png = S.write_scene(tmp_path, "test", 9)
    view.open_path(png)
    qtbot.waitUntil(lambda: view.vqa.path == png, timeout=30_000)
    with qtbot.waitSignal(view.vqa.answered, timeout=60_000):
        view.vqa._ask_text("is there a red circle?")
    view.shutdown()  # as when the window closes: the pending autosave is written now
    saved = json.loads(history_autosave_path(png).read_text(encoding="utf-8"))
    assert saved["schema"] == 1 and saved["data"]["questions"][0]["question"] == "is there a red circle?"
    again = TextVqaWorkspace(MANIFEST, view.context)  # as after a restart
    qtbot.addWidget(again)
    try:
        again.open_path(png)
        qtbot.waitUntil(lambda: again.vqa.history_list.count() == 1, timeout=30_000)
        assert "red circle" in again.vqa.history_list.item(0).text()
    finally:
        again.shutdown()


def test_damaged_question_history_is_set_aside_with_a_message(view, qtbot, tmp_path):
    from engines.textvqa.history import history_autosave_path

    png = S.write_scene(tmp_path, "test", 10)
    saved = history_autosave_path(png)
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text('{"schema": 1, "data": {"questions": [{"question": 3', encoding="utf-8")
    view.open_path(png)
    qtbot.waitUntil(lambda: view.vqa.path == png, timeout=30_000)
    assert view.vqa.history_list.count() == 0
    warnings = [m for level, m in view.notes if level == "warning"]
    assert len(warnings) == 1 and png.name in warnings[0] and "set aside" in warnings[0]
    assert not saved.exists() and len(list(saved.parent.glob(saved.name + ".damaged-*"))) == 1
    # the next question starts a fresh, valid history for the image
    with qtbot.waitSignal(view.vqa.answered, timeout=60_000):
        view.vqa._ask_text("how many things are there?")
    assert view.vqa.writer.flush()
    assert saved.exists()



def test_a_photo_gets_the_out_of_domain_warning_as_the_headline(view, qtbot, tmp_path):
    from PIL import Image
    from skimage import data

    photo = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(photo)
    view.open_path(photo)
    qtbot.waitUntil(lambda: view.vqa.path == photo, timeout=30_000)
    with qtbot.waitSignal(view.vqa.answered, timeout=60_000) as blocker:
        view.vqa._ask_text("is there a cat in the picture?")
    assert blocker.args[0]["reliable"] is False
    text = view.vqa.answer.text()
    assert text.index("does not look like") < text.index("unreliable")  # the warning comes first
    assert not text.startswith("Answer:")
    assert any(level == "warning" and "does not look like" in m for level, m in view.notes)
