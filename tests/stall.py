"""How long the GUI thread's event loop stops answering while something runs (a responsiveness guard).

``StallMeter`` arms a precise 5 ms ``QTimer`` in the GUI thread and records the time between its ticks: while
the loop is free, ticks come every ~5 ms; while the GUI thread is busy (a resample, a synchronous write, a
paint of 100,000 items), no tick comes, and the gap says how long the user saw a frozen window. The worst
stall is the longest gap minus the interval. Used by tests (that the meter itself sees an injected stall:
no timing asserts on real work) and by benchmarks/gui_stall/bench_stall.py (the figures)::

    meter = StallMeter()
    with meter:
        view.open_path(folder)
        meter.wait_until(lambda: view.volume is not None, timeout_s=60)
    print(meter.report.worst_ms, meter.report.worst_at)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, QTimer


@dataclass
class StallReport:
    """The gaps between ticks of one measurement, in milliseconds."""

    interval_ms: float
    duration_ms: float = 0.0
    gaps_ms: list[float] = field(default_factory=list)
    #: time.perf_counter() of each tick (the gap ``gaps_ms[i]`` ends at ``tick_times[i]``)
    tick_times: list[float] = field(default_factory=list)
    started_at: float = 0.0
    #: (start, end) of the worst gap, in seconds of time.perf_counter()
    worst_window: tuple[float, float] = (0.0, 0.0)
    #: (label, number of ticks before it) of each mark set during the measurement
    labels: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ticks(self) -> int:
        return len(self.gaps_ms)

    @property
    def worst_gap_ms(self) -> float:
        return max(self.gaps_ms, default=0.0)

    @property
    def worst_ms(self) -> float:
        """The longest time the loop did not answer, beyond the timer's own interval."""
        return max(0.0, self.worst_gap_ms - self.interval_ms)

    def over(self, threshold_ms: float) -> int:
        """How many stalls were longer than ``threshold_ms``."""
        return sum(1 for g in self.gaps_ms if g - self.interval_ms > threshold_ms)

    def percentile_ms(self, q: float) -> float:
        if not self.gaps_ms:
            return 0.0
        ordered = sorted(self.gaps_ms)
        k = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
        return max(0.0, ordered[k] - self.interval_ms)

    def gap_spanning(self, start: float, end: float) -> float | None:
        """The gap (ms) during which the loop did not tick from ``start`` to ``end`` (perf_counter seconds), or
        None if a tick came in between (the loop answered during that time)."""
        previous = self.started_at
        for when, gap in zip(self.tick_times, self.gaps_ms):
            if previous <= start and when >= end:
                return gap
            previous = when
        return None

    @property
    def worst_label(self) -> str:
        """The step that was running when the loop froze worst: the first mark set during that stall (a step
        marks itself, then blocks), else the last mark set before it."""
        if not self.gaps_ms:
            return ""
        worst = self.gaps_ms.index(self.worst_gap_ms)  # the gap that ended with tick number ``worst``
        before = [label for label, ticks in self.labels if ticks < worst]
        during = [label for label, ticks in self.labels if ticks == worst]
        return during[0] if during else (before[-1] if before else "")

    def summary(self) -> str:
        return (f"worst {self.worst_ms:.1f} ms, p99 {self.percentile_ms(99):.1f} ms, {self.over(50)} over 50 ms, "
                f"{self.ticks} ticks in {self.duration_ms / 1000:.2f} s")


class StallMeter(QObject):
    """Measures event-loop stalls of the GUI thread between ``start()`` and ``stop()`` (or a ``with`` block).

    The meter must be made and used in the GUI thread; the code it measures must let the event loop run
    (``wait_until`` does, as a user's idle time would) for queued results to arrive at all.
    """

    def __init__(self, interval_ms: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self._t0 = 0.0
        self.report = StallReport(float(interval_ms))

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> "StallMeter":
        self.report = StallReport(float(self.interval_ms))
        self._t0 = self._last = self.report.started_at = time.perf_counter()
        self._timer.start()
        return self

    def mark(self, label: str) -> None:
        """Name the step that starts now (the report says which step its worst stall happened in)."""
        self.report.labels.append((label, len(self.report.gaps_ms)))

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = (now - self._last) * 1000.0
        if gap > self.report.worst_gap_ms:
            self.report.worst_window = (self._last, now)
        self.report.gaps_ms.append(gap)
        self.report.tick_times.append(now)
        self._last = now

    def settle(self, ms: float | None = None) -> None:
        """Let the loop run for a few intervals so a stall that just ended is closed by a tick."""
        end = time.perf_counter() + (ms if ms is not None else 4 * self.interval_ms) / 1000.0
        while time.perf_counter() < end:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 5)
            time.sleep(0.0005)

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
        """Run the event loop (as an idle user would) until ``condition()`` holds; False on timeout."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 5)
            if condition():
                return True
            time.sleep(0.0005)
        return False

    def stop(self) -> StallReport:
        if self._timer.isActive():
            self.settle()
            self._timer.stop()
        self.report.duration_ms = (time.perf_counter() - self._t0) * 1000.0
        return self.report

    def __enter__(self) -> "StallMeter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def measure_stall(action: Callable[[], object], until: Callable[[], bool] | None = None,
                  timeout_s: float = 60.0, interval_ms: int = 5) -> StallReport:
    """Run ``action()`` in the GUI thread, then the loop until ``until()`` holds; the stalls on the way."""
    meter = StallMeter(interval_ms)
    with meter:
        meter.settle()
        action()
        if until is not None and not meter.wait_until(until, timeout_s):
            meter.stop()
            raise TimeoutError(f"the action did not finish within {timeout_s:.0f} s ({meter.report.summary()})")
    meter.deleteLater()
    return meter.report
