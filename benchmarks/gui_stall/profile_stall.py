"""Which code the GUI thread was running during each stall of the stall benchmark (a sampling profiler).

    QT_QPA_PLATFORM=offscreen OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gui_stall/profile_stall.py \
        [--only radiology,music,pathology] [--slices 300] [--over 50] [--top 4] [bench_stall.py's options]

It runs the steps of ``bench_stall.py`` unchanged while a sampler thread reads every thread's Python stack
(``sys._current_frames``) about once a millisecond. For each stall over ``--over`` ms it prints the GUI thread's
most frequent stacks inside that gap (the workstation's own frames, innermost last) and how many samples the
sampler got: a stall with far fewer samples than milliseconds is one where some thread held the GIL in C code
(then the other threads' stacks in the gap show which), not one of Python work in the GUI thread. The time spent
in the garbage collector (any thread: it holds the GIL) inside each stall is printed too.
No dependency beyond the standard library; the profiler's own cost adds a few per cent to the figures.
"""
from __future__ import annotations

import bisect
import collections
import gc
import importlib.util
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_stall", Path(__file__).with_name("bench_stall.py"))
bench_stall = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_stall)

_OWN = (str(ROOT / "app"), str(ROOT / "engines"))


def _stack(frame, depth: int = 6) -> tuple:
    """The innermost ``depth`` frames of the workstation's own code (app/, engines/), outermost first; the
    innermost foreign frame (numpy, Qt, SimpleITK) is kept after them as the place the time went."""
    own, leaf = [], None
    while frame is not None:
        code = frame.f_code
        where = f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}"
        if code.co_filename.startswith(_OWN):
            own.append(where)
            if len(own) >= depth:
                break
        elif not own and leaf is None:
            leaf = where
        frame = frame.f_back
    return tuple(reversed(own)) + ((f"[{leaf}]",) if leaf else ())


class Sampler(threading.Thread):
    """Samples every thread's stack about every ``period_s`` into (time, thread id, stack) rows."""

    def __init__(self, period_s: float = 0.001) -> None:
        super().__init__(daemon=True, name="stall-sampler")
        self.period_s, self.main_id = period_s, threading.main_thread().ident
        self.times: list[float] = []
        self.rows: list[tuple[tuple, list[tuple]]] = []
        self._halt = threading.Event()
        self.collections: list[tuple[float, float, int]] = []  # (start, end, generation) of each GC pass
        self._gc_start = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        else:
            self.collections.append((self._gc_start, now, info.get("generation", -1)))

    def gc_in(self, start: float, end: float) -> tuple[float, int]:
        """Milliseconds of garbage collection inside (start, end), and the oldest generation collected."""
        spent, oldest = 0.0, -1
        for a, b, generation in self.collections:
            overlap = min(b, end) - max(a, start)
            if overlap > 0:
                spent, oldest = spent + overlap, max(oldest, generation)
        return spent * 1000.0, oldest

    def run(self) -> None:
        me = threading.get_ident()
        while not self._halt.is_set():
            now = time.perf_counter()
            frames = sys._current_frames()
            main = _stack(frames.get(self.main_id))
            others = [_stack(f) for ident, f in frames.items() if ident not in (me, self.main_id)]
            self.times.append(now)
            self.rows.append((main, [o for o in others if o]))
            time.sleep(self.period_s)

    def stop(self) -> None:
        gc.callbacks.remove(self._gc)
        self._halt.set()
        self.join()

    def between(self, start: float, end: float) -> list[tuple[tuple, list[tuple]]]:
        return self.rows[bisect.bisect_left(self.times, start):bisect.bisect_right(self.times, end)]


def explain(report, sampler: Sampler, over_ms: float, top: int) -> None:
    previous = report.started_at
    for when, gap in zip(report.tick_times, report.gaps_ms):
        stall = gap - report.interval_ms
        if stall > over_ms:
            rows = sampler.between(previous, when)
            spent, generation = sampler.gc_in(previous, when)
            collected = f", {spent:.0f} ms in garbage collection (generation {generation})" if spent >= 1 else ""
            print(f"    stall {stall:7.1f} ms, {len(rows)} samples{collected}", flush=True)
            mains = collections.Counter(main for main, _ in rows if main)
            for stack, n in mains.most_common(top):
                print(f"      {n:4d}x GUI  " + " > ".join(stack))
            places = collections.Counter(main[-1] for main, _ in rows if main)
            print("            GUI innermost: " + ", ".join(f"{n}x {where}" for where, n in places.most_common(top)))
            others = collections.Counter(o for _, os_ in rows for o in os_ if o)
            for stack, n in others.most_common(2):
                print(f"      {n:4d}x work " + " > ".join(stack))
        previous = when


def main() -> int:
    parser = bench_stall.make_parser()
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--over", type=float, default=50.0, help="explain stalls longer than this (ms)")
    parser.add_argument("--top", type=int, default=4, help="stacks shown per stall")
    args = parser.parse_args()
    bench = bench_stall.start(args)
    step = bench.step
    sampler = Sampler()
    sampler.start()

    def profiled_step(name, action, **kw):
        from tests.stall import StallMeter

        reports = []
        original = StallMeter.stop

        def stop(meter):  # keep the step's report for the explanation
            reports.append(original(meter))
            return reports[-1]

        StallMeter.stop = stop
        try:
            row = step(name, action, **kw)
        finally:
            StallMeter.stop = original
        explain(reports[-1], sampler, args.over, args.top)
        return row

    bench.step = profiled_step
    bench_stall.run_steps(bench, args)
    sampler.stop()
    bench.window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
