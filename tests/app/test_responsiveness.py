"""The GUI-responsiveness guard (tests/stall.py) sees a frozen event loop. Only the meter's detection is
asserted here, never how fast real work is (figures are in benchmarks/gui_stall/)."""
from __future__ import annotations

import time

import pytest

from app.worker import TaskManager
from tests.stall import StallMeter, measure_stall


def _sleep_on_gui_thread(seconds: float) -> tuple[float, float]:
    t0 = time.perf_counter()
    time.sleep(seconds)
    return t0, time.perf_counter()


def test_the_meter_sees_a_200_ms_freeze_of_the_gui_thread_and_where_it_was(qtbot):
    meter = StallMeter(interval_ms=5)
    with meter:
        meter.settle(30)
        meter.mark("freezing")
        window = _sleep_on_gui_thread(0.2)
        meter.mark("after")
        meter.settle(30)
    report = meter.report
    assert not meter.running  # no timer left behind
    spanning = report.gap_spanning(*window)
    assert spanning is not None and spanning >= 200.0  # no tick came while the GUI thread slept
    assert report.worst_ms >= 195.0 and report.over(150) >= 1
    assert report.ticks >= 2
    if report.gap_spanning(*window) == report.worst_gap_ms:  # (another process may have stalled us longer)
        assert report.worst_label == "freezing"


def test_the_meter_says_no_tick_spans_a_time_the_loop_was_free(qtbot):
    meter = StallMeter(interval_ms=5)
    with meter:
        meter.settle(20)
        t0 = time.perf_counter()
        before = meter.report.ticks
        assert meter.wait_until(lambda: meter.report.ticks >= before + 3, timeout_s=10)  # the loop answered
        t1 = time.perf_counter()
        meter.settle(20)
    assert meter.report.gap_spanning(t0, t1) is None


def test_a_slow_result_slot_stalls_the_loop_even_though_the_job_ran_in_a_worker(qtbot):
    """The bug the guard is for: a job off the GUI thread whose result handler computes in the GUI thread."""
    tasks = TaskManager()
    windows = []

    def slow_handler(value):
        windows.append(_sleep_on_gui_thread(0.2))

    report = measure_stall(lambda: tasks.submit(lambda p, c: 7, title="quick job", on_result=slow_handler),
                           until=lambda: bool(windows) and not tasks.tasks, timeout_s=10)
    spanning = report.gap_spanning(*windows[0])
    assert spanning is not None and spanning >= 200.0 and report.worst_ms >= 195.0
    assert tasks.shutdown(5000)


def test_measure_stall_says_when_the_action_never_finishes(qtbot):
    with pytest.raises(TimeoutError, match="did not finish"):
        measure_stall(lambda: None, until=lambda: False, timeout_s=0.05)
