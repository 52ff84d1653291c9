"""The Qt-free notification manager: bounded, thread-safe, with listeners; no Qt imported."""
from __future__ import annotations

import threading

import pytest

from engines.core.notifications import Notification, NotificationManager


def test_posts_keep_level_source_time_and_order():
    manager = NotificationManager()
    a = manager.post("error", "series.dcm: the file is truncated", "Traceback ...", source="radiology")
    b = manager.post("shout", "unknown levels count as info")
    assert manager.items == [a, b]
    assert (a.level, a.source, a.detail) == ("error", "radiology", "Traceback ...")
    assert b.level == "info" and b.source == ""
    assert 0 < a.when <= b.when
    assert manager.error_count() == 1 and manager.count("info") == 1 and len(manager) == 2


def test_bounded_the_oldest_fall_off_and_are_counted():
    manager = NotificationManager(maxlen=3)
    for i in range(5):
        manager.warning(f"message {i}")
    assert [n.message for n in manager.items] == ["message 2", "message 3", "message 4"]
    assert manager.dropped == 2
    manager.clear()
    assert manager.items == [] and manager.dropped == 0
    with pytest.raises(ValueError):
        NotificationManager(maxlen=0)


def test_listeners_hear_posts_and_clears_until_they_unsubscribe():
    manager = NotificationManager()
    heard: list[tuple[str, Notification | None]] = []
    unsubscribe = manager.subscribe(lambda event, note: heard.append((event, note)))
    note = manager.error("engine failed")
    manager.clear()
    unsubscribe()
    manager.info("nobody hears this")
    assert heard == [("posted", note), ("cleared", None)]
    unsubscribe()  # twice is harmless


def test_a_failing_listener_does_not_lose_the_message_for_the_others():
    manager = NotificationManager()
    heard = []

    def broken(event, note):
        raise RuntimeError("view gone")

    manager.subscribe(broken)
    manager.subscribe(lambda event, note: heard.append(note.message))
    manager.error("disk full")
    assert heard == ["disk full"] and manager.error_count() == 1


def test_concurrent_posts_from_many_threads_are_all_counted_and_bounded():
    manager = NotificationManager(maxlen=1000)
    heard = []
    lock = threading.Lock()

    def listener(event, note):
        with lock:
            heard.append(note)

    manager.subscribe(listener)
    start = threading.Barrier(8)

    def worker(k: int) -> None:
        start.wait()
        for i in range(250):
            manager.post("error" if i % 5 == 0 else "info", f"thread {k} message {i}", source=f"t{k}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(heard) == 2000  # every post reached the listener exactly once
    assert len(manager) == 1000 and manager.dropped == 1000
    kept = manager.items
    assert len({id(n) for n in kept}) == 1000
    for k in range(8):  # each thread's surviving messages are in its own posting order
        mine = [int(n.message.rsplit(" ", 1)[1]) for n in kept if n.source == f"t{k}"]
        assert mine == sorted(mine)


def test_messages_are_logged(caplog):
    manager = NotificationManager()
    with caplog.at_level("INFO", logger="csi.notifications"):
        manager.error("export failed", detail="Traceback: disk full")
    assert any(r.levelname == "ERROR" and "export failed" in r.getMessage() and "disk full" in r.getMessage()
               for r in caplog.records)
