"""The Qt-free task protocol: generator jobs, their channels, cancellation at a yield, one lock per engine."""
from __future__ import annotations

import threading
import time

import pytest

from engines.core.engine import Cancelled, CancelToken
from engines.core.jobs import JobChannels, Notice, Progress, engine_lock, hold_engine, run_job


def _recording():
    seen = {"progress": [], "partial": [], "notice": []}
    channels = JobChannels(lambda f, m: seen["progress"].append((f, m)), seen["partial"].append,
                           lambda m, level: seen["notice"].append((level, m)))
    return seen, channels


def test_a_generator_job_yields_progress_partials_and_notices_then_returns_its_result():
    def job(progress, cancel):
        yield Progress(0.25, "first slice")
        yield {"preview": 1}
        yield Notice("2 slices skipped")
        progress(0.9, "almost")  # the callable channel still works inside a generator
        yield [1, 2, 3]
        return "volume"

    seen, channels = _recording()
    assert run_job(job, channels, CancelToken()) == "volume"
    assert seen["progress"] == [(0.25, "first slice"), (0.9, "almost")]
    assert seen["partial"] == [{"preview": 1}, [1, 2, 3]]
    assert seen["notice"] == [("warning", "2 slices skipped")]


def test_a_plain_job_reaches_the_same_channels_through_progress():
    def job(progress, cancel):
        progress.partial("early pixels")
        progress.notice("fell back to the CPU", "info")
        return 42

    seen, channels = _recording()
    assert run_job(job, channels, CancelToken()) == 42
    assert seen["partial"] == ["early pixels"] and seen["notice"] == [("info", "fell back to the CPU")]


def test_cancel_stops_a_generator_at_its_next_yield_and_runs_its_finally():
    token = CancelToken()
    closed = []

    def job(progress, cancel):
        try:
            for i in range(100):
                if i == 3:
                    token.cancel()  # the user pressed Cancel while chunk 3 ran
                yield i
        finally:
            closed.append(True)

    seen, channels = _recording()
    with pytest.raises(Cancelled):
        run_job(job, channels, token)
    assert seen["partial"] == [0, 1, 2, 3] and closed == [True]


def test_an_error_inside_a_generator_propagates_and_closes_it():
    def job(progress, cancel):
        yield 1
        raise ValueError("bad slice 7")

    with pytest.raises(ValueError, match="bad slice 7"):
        run_job(job, JobChannels(), CancelToken())


def test_a_job_cancelled_before_it_starts_never_runs():
    token = CancelToken()
    token.cancel()
    ran = []
    with pytest.raises(Cancelled):
        run_job(lambda p, c: ran.append(1), JobChannels(), token)
    assert ran == []


class _Engine:
    id = "shared-engine"

    def __init__(self):
        self.active = 0
        self.max_active = 0
        self.inside = threading.Event()

    def predict(self):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.inside.set()
        time.sleep(0.2)  # long enough that a second caller without the lock would be inside too
        self.active -= 1


def test_one_engine_instance_runs_on_one_thread_at_a_time():
    engine = _Engine()
    waits: list[str] = []

    def call(progress=None):
        with hold_engine(engine, CancelToken(), progress):
            engine.predict()

    first = threading.Thread(target=call)
    first.start()
    assert engine.inside.wait(5)
    second = threading.Thread(target=call, kwargs={"progress": lambda f, m: waits.append(m)})
    second.start()
    first.join()
    second.join()
    assert engine.max_active == 1
    assert waits == ["waiting for shared-engine (busy with another task)"]
    assert engine_lock(engine) is engine_lock(engine) and engine_lock(engine) is not engine_lock(_Engine())


def test_a_job_waiting_for_a_busy_engine_gives_up_when_cancelled():
    engine = _Engine()
    lock = engine_lock(engine)
    lock.acquire()
    token = CancelToken()
    failed = []

    def waiting():
        try:
            with hold_engine(engine, token):
                pass
        except Cancelled:
            failed.append("cancelled")

    t = threading.Thread(target=waiting)
    t.start()
    token.cancel()
    t.join(5)
    lock.release()
    assert failed == ["cancelled"] and not t.is_alive()
