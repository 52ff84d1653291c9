"""One CPU thread policy for every network (engines and training scripts).

Measured on the 2-core workstation (benchmarks/engines/bench_cpu.py, 2026-12-02, the kernel-conversion
network on one 512² slice, float32 channels-last): with the machine shared (load average 3.8) one thread took
0.90 s and two 1.32 s; with one core kept busy by a spinning process as well, 2.35 s against 2.69 s. The lesion
U-Net showed the same (0.19 s on one thread, 1.56 s on two, load 3-3.5). Two threads are *slower* than one
when another process holds a core, because the second thread waits for a core and every parallel region waits
for it. (The other half, two threads faster than one on two free cores, could not be measured: the machine was
never idle.) So the rule is: as many threads as there are cores not already busy (load average), at least one,
at most the cores this process may use. ``CSI_TORCH_THREADS`` overrides it (a number), for a batch worker that
owns a machine or for benchmarks.

torch is imported only when the policy is applied, never at module import.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

ENV = "CSI_TORCH_THREADS"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def choose_threads(cores: int | None = None, load: float | None = None) -> int:
    """The thread count the policy gives for ``cores`` usable cores and a 1-minute ``load`` average.

    The load includes this process when it is already running; one busy core is counted as ours.
    """
    override = os.environ.get(ENV, "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            log.warning("%s=%r is not a number; using the automatic thread count", ENV, override)
    cores = available_cores() if cores is None else max(1, int(cores))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    busy_by_others = max(0.0, float(load) - 1.0)
    return int(max(1, min(cores, round(cores - busy_by_others))))


def apply_thread_policy() -> int:
    """Set torch's intra-op thread count by the policy; returns the count. Cheap: call before each inference."""
    import torch

    n = choose_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
