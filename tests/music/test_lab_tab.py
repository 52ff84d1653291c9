"""The Lab tab (harmonizer, melody generator, covers) is mounted in the music workspace and takes the chord lane."""
from __future__ import annotations






def test_recognized_chords_seed_the_melody_generator(qtbot, window):
    view = window.switch_to("music")
    assert view.tabs.count() == 2 and view.tabs.widget(1) is view.lab
    view.send_chords_to_lab()  # nothing recognized yet: a message, no change
    assert view.tabs.currentWidget() is view.analysis
    with qtbot.waitSignal(view.opened, timeout=120_000):
        view.open_sample()
    qtbot.waitUntil(lambda: view.track is not None, timeout=120_000)
    qtbot.mouseClick(view.melody_button, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.LeftButton)
    assert view.tabs.currentWidget() is view.lab
    assert view.lab.tabs.currentWidget() is view.lab.generator
    symbols = view.lab.generator.chords_edit.text().split()
    first = view.track.display_symbol(view.track.segments[0]) if view.track.segments else ""
    assert len(symbols) >= 4 and symbols != "C Am F G C F G C".split()
    assert all(s[0] in "ABCDEFG" for s in symbols), symbols
    assert first == "" or symbols[0][0] == first[0]
