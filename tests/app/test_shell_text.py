"""Shell text: menu labels show '&' literally, hints name the actions as labelled, no internal tokens."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel

from app.main_window import shown_label


def _menu(window, title: str):
    for action in window.menuBar().actions():
        if shown_label(action.text()) == title:
            return action.menu()
    raise AssertionError(f"no {title} menu")


def test_view_menu_shows_text_and_vqa_with_its_ampersand(window):
    shown = [shown_label(a.text()) for a in _menu(window, "View").actions() if a.text()]
    assert "Text & VQA" in shown
    assert all(m.title in shown for m in window.manifests)
    samples = next(a.menu() for a in _menu(window, "File").actions() if a.menu() and shown_label(a.text()) == "Open Sample")
    assert any(shown_label(a.text()).startswith("Text & VQA: ") for a in samples.actions())


def test_first_start_hints_name_the_open_action_as_it_is_labelled(window):
    file_labels = {shown_label(a.text()) for a in _menu(window, "File").actions() if a.text()}
    hint = window.statusBar().currentMessage()
    named = hint.split("File ▸ ", 1)[1].rstrip(".")
    assert named in file_labels, (named, file_labels)
    intro = next(w.text() for w in window.home.findChildren(QLabel) if "File ▸" in w.text())
    for piece in intro.split("File ▸ ")[1:]:
        assert piece.split("</b>", 1)[0] in file_labels


def test_recent_files_with_an_ampersand_show_it(window, tmp_path):
    odd = tmp_path / "scans & notes.dcm"
    window.add_recent(odd)
    window.recent_menu.aboutToShow.emit()
    shown = [shown_label(a.text()) for a in window.recent_menu.actions()]
    assert str(odd.resolve()) in shown


def test_an_unknown_kind_is_named_in_words_not_by_its_internal_token(window, qtbot, tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")
    window.open_path(weights)
    qtbot.waitUntil(lambda: any("no workspace opens" in n.message for n in window.notifications.items),
                    timeout=10_000)
    note = [n for n in window.notifications.items if "no workspace opens" in n.message][-1]
    assert "(weights)" not in note.message and "weights" in note.detail
