"""The Qt worker adapter: lossless signals, generator jobs with partial results, notices and errors routed
to the notification manager, one engine on one thread."""
from __future__ import annotations

import threading
import time

import pytest

from app.worker import Notice, Progress, Task, TaskManager
from engines.core.engine import Engine, EngineError, EngineInfo
from engines.core.notifications import NotificationManager


@pytest.fixture
def manager(qtbot):
    tasks = TaskManager(max_threads=4, notifications=NotificationManager())
    yield tasks
    assert tasks.shutdown(5000)


def test_a_result_is_not_lost_when_the_caller_connects_after_the_job_has_finished(manager, qtbot):
    done = threading.Event()

    def quick(progress, cancel):
        progress.partial("preview")
        try:
            return 42
        finally:
            done.set()

    task = manager.submit(quick, title="quick")
    assert done.wait(5)  # the worker has returned before anyone connected (no events processed yet)
    time.sleep(0.05)
    got, partials = [], []
    task.result.connect(got.append)
    task.partial.connect(partials.append)
    qtbot.waitUntil(lambda: task.state == Task.DONE and not manager.tasks, timeout=5000)
    assert got == [42] and partials == ["preview"]


def test_create_connect_start_delivers_every_yield_in_order(manager, qtbot):
    def job(progress, cancel):
        for i in range(5):
            yield Progress((i + 1) / 5, f"slice {i}")
            yield {"slice": i}
        yield Notice("slice 3 was repaired")
        return "volume"

    task = manager.create(job, title="Opening CT", owner="radiology:open")
    assert task.state == Task.PENDING and manager.tasks == []  # nothing runs before start
    events = []
    task.started.connect(lambda: events.append("started"))
    task.partial.connect(lambda v: events.append(v["slice"]))
    task.notice.connect(lambda m: events.append(m))
    task.result.connect(lambda v: events.append(v))
    task.finished.connect(lambda: events.append("finished"))
    task.start()
    qtbot.waitUntil(lambda: "finished" in events, timeout=5000)
    assert events == ["started", 0, 1, 2, 3, 4, "slice 3 was repaired", "volume", "finished"]
    assert task.fraction == 1.0 and task.message == "slice 4"
    with pytest.raises(RuntimeError):
        task.start()  # a task runs once
    assert manager.notifications.items == []  # the notice had a listener: not posted twice


def test_cancelling_a_generator_stops_it_and_drops_its_late_partials(manager, qtbot):
    gate = threading.Event()
    closed = threading.Event()

    def job(progress, cancel):
        try:
            yield "first"
            gate.wait(5)
            yield "stale"  # produced after the user cancelled: must not reach the view
            yield "never"
        finally:
            closed.set()

    partials = []
    task = manager.submit(job, title="preview", owner="view", on_partial=partials.append)
    qtbot.waitUntil(lambda: partials == ["first"], timeout=5000)
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        task.cancel()
        gate.set()
    assert closed.wait(5) and task.state == Task.CANCELLED
    qtbot.wait(50)
    assert partials == ["first"]


def test_a_new_task_of_the_same_owner_cancels_the_old_one_and_only_the_new_preview_shows(manager, qtbot):
    release = threading.Event()

    def slow(progress, cancel):
        yield "old"
        release.wait(5)
        yield "old-late"
        return "old-result"

    shown = []
    first = manager.submit(slow, title="open a", owner="radiology:open", on_partial=shown.append)
    qtbot.waitUntil(lambda: shown == ["old"], timeout=5000)
    second = manager.submit(lambda p, c: (yield "new") or "new-result", title="open b", owner="radiology:open",
                            on_partial=shown.append)
    release.set()
    qtbot.waitUntil(lambda: not manager.tasks, timeout=5000)
    assert first.state == Task.CANCELLED and second.state == Task.DONE
    assert shown == ["old", "new"]


def test_unhandled_errors_and_notices_go_to_the_notification_manager_handled_ones_do_not(manager, qtbot):
    def noisy(progress, cancel):
        progress.notice("GPU out of memory: running on the CPU")
        raise EngineError("series.dcm: the file is truncated")

    manager.submit(noisy, title="Loading series")
    qtbot.waitUntil(lambda: manager.notifications.error_count() == 1 and not manager.tasks, timeout=5000)
    warning, error = manager.notifications.items
    assert (warning.level, warning.message, warning.source) == ("warning", "GPU out of memory: running on the CPU",
                                                                 "Loading series")
    assert error.message == "Loading series: series.dcm: the file is truncated" and "EngineError" in error.detail
    handled = []
    manager.submit(noisy, title="Again", on_error=lambda m, d: handled.append(m), on_notice=handled.append)
    qtbot.waitUntil(lambda: len(handled) == 2 and not manager.tasks, timeout=5000)
    assert len(manager.notifications.items) == 2  # the caller handled both: nothing posted twice


class _SharedEngine(Engine):
    id = "test-shared"

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.max_active = 0
        self.entered = threading.Event()

    def info(self) -> EngineInfo:
        return EngineInfo(self.id, "Shared", "test", "test", "nothing", "a number")

    def predict(self, request, *, progress, cancel):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.entered.set()
        time.sleep(0.3)  # a second caller without the engine lock would be inside by now
        self.active -= 1
        return request["n"]


def test_two_tasks_on_one_engine_instance_never_run_it_at_the_same_time(manager, qtbot):
    engine = _SharedEngine()
    results, messages = [], []
    manager.submit_engine(engine, {"n": 1}, title="first", owner="a", device="cpu", on_result=results.append)
    qtbot.waitUntil(engine.entered.is_set, timeout=60_000)  # the runner imports the device module first
    second = manager.submit_engine(engine, {"n": 2}, title="second", owner="b", device="cpu",
                                   on_result=results.append)
    second.progress.connect(lambda f, m: messages.append(m))
    qtbot.waitUntil(lambda: len(results) == 2, timeout=30_000)
    assert engine.max_active == 1 and results == [1, 2]
    assert "waiting for test-shared (busy with another task)" in messages
