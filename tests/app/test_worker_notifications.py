"""The Messages dock is a view of the NotificationManager: posts from any thread show up, in the GUI thread."""
from __future__ import annotations

import threading

from PySide6.QtCore import Qt

from app.widgets.notifications import NotificationArea
from engines.core.notifications import NotificationManager


def test_posts_from_a_worker_thread_reach_the_list_in_the_gui_thread(qtbot):
    manager = NotificationManager(maxlen=3)
    manager.info("before the view existed")
    area = NotificationArea(manager)
    qtbot.addWidget(area)
    assert area.list.count() == 1 and not area.empty.isVisible()
    seen_threads = []
    area.posted.connect(lambda note: seen_threads.append(threading.get_ident()))
    counts = []
    area.count_changed.connect(lambda errors, total: counts.append((errors, total)))

    def worker():
        manager.error("export failed: disk full", "Traceback ...", source="pathology")
        for i in range(3):
            manager.warning(f"tile {i} unreadable")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(seen_threads) == 4, timeout=5000)
    assert set(seen_threads) == {threading.get_ident()}  # the view changed only in the GUI thread
    assert area.list.count() == 3  # as many rows as the model keeps
    assert [area.list.item(i).text().split("  ", 1)[1] for i in range(3)] == [
        "tile 2 unreadable", "tile 1 unreadable", "tile 0 unreadable"]
    assert area.list.item(2).data(Qt.UserRole) == "warning"
    assert counts[-1] == (0, 3)  # the error fell off the bounded model


def test_a_post_from_the_gui_thread_is_shown_at_once_and_clear_empties_model_and_view(qtbot):
    area = NotificationArea()
    qtbot.addWidget(area)
    area.show()
    note = area.post("error", "Loading series: the file is truncated", "Traceback: ...", source="radiology")
    assert area.list.count() == 1 and area.error_count() == 1 and area.items == [note]
    assert "[radiology] Loading series: the file is truncated" in area.list.item(0).text()
    assert area.list.item(0).toolTip() == "Traceback: ..."
    area.clear()
    assert area.list.count() == 0 and area.manager.items == [] and area.empty.isVisible()


def test_the_shell_routes_an_unhandled_worker_error_into_messages(window, qtbot):
    window.tasks.submit(lambda p, c: 1 / 0, title="Computing statistics")
    qtbot.waitUntil(lambda: window.notifications.error_count() == 1, timeout=5000)
    note = window.notifications.items[-1]
    assert note.message == "Computing statistics failed: division by zero" and note.source == "Computing statistics"
    assert window.messages_dock.windowTitle() == "Messages (1 error)"
