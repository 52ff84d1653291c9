"""The task protocol without Qt: what a long job may yield, and the lock that keeps one engine on one thread.

A job is called as ``job(progress, cancel)``. It either returns its result (a plain callable) or is a generator
that yields as it goes and returns its result (napari's ``thread_worker`` idea)::

    def job(progress, cancel):
        volume = start_reading(...)
        yield Progress(0.1, "first slice")
        yield preview_of(volume)          # anything that is not Progress/Notice is a partial result
        yield Notice("3 slices skipped")  # a warning for the notification area
        return finish(volume)

The runner checks ``cancel`` at every yield and closes the generator when the user cancelled (its ``finally``
blocks run). A plain callable reaches the same channels through ``progress``: ``progress(fraction, message)``,
``progress.partial(value)`` and ``progress.notice(message)``; see ``JobChannels``.

Engines are not thread-safe objects (a loaded model, a cached feature table): ``engine_lock(engine)`` gives one
re-entrant lock per engine instance, and the adapters hold it for the whole engine call.
"""
from __future__ import annotations

import inspect
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from engines.core.engine import CancelToken

__all__ = ["Progress", "Notice", "JobChannels", "run_job", "engine_lock", "hold_engine"]


@dataclass(frozen=True)
class Progress:
    """Yielded by a generator job: ``fraction`` in [0, 1] or None when unknown, and a short message."""

    fraction: float | None
    message: str = ""


@dataclass(frozen=True)
class Notice:
    """Yielded by a generator job: a message for the notification area ("warning" or "info")."""

    message: str
    level: str = "warning"


class JobChannels:
    """What a job talks through. Callable as ``progress(fraction, message)`` so every existing job and engine
    keeps working; ``partial`` and ``notice`` are the two other channels. The sinks are supplied by the
    adapter (Qt signals in the app, lists in a test or a script) and are called in the job's thread."""

    def __init__(self, progress: Callable[[float | None, str], None] | None = None,
                 partial: Callable[[Any], None] | None = None,
                 notice: Callable[[str, str], None] | None = None) -> None:
        self._progress = progress or (lambda fraction, message: None)
        self._partial = partial or (lambda value: None)
        self._notice = notice or (lambda message, level: None)

    def __call__(self, fraction: float | None, message: str = "") -> None:
        self._progress(fraction, message)

    def partial(self, value: Any) -> None:
        """Hand an early result (a preview slice, a first batch of detections) to whoever listens."""
        self._partial(value)

    def notice(self, message: str, level: str = "warning") -> None:
        """Say something the user should read (a fallback taken, input repaired) without failing the job."""
        self._notice(message, level)


def run_job(job: Callable[..., Any], channels: JobChannels, cancel: CancelToken) -> Any:
    """Run one job to its result on the calling thread, dispatching what a generator yields.

    Raises ``Cancelled`` when ``cancel`` is set before the start, at a yield, or after the end; any error of
    the job propagates unchanged.
    """
    cancel.raise_if_cancelled()
    value = job(channels, cancel)
    if inspect.isgenerator(value):
        value = _drain(value, channels, cancel)
    cancel.raise_if_cancelled()
    return value


def _drain(gen: Iterator[Any], channels: JobChannels, cancel: CancelToken) -> Any:
    try:
        while True:
            cancel.raise_if_cancelled()
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            if isinstance(item, Progress):
                channels(item.fraction, item.message)
            elif isinstance(item, Notice):
                channels.notice(item.message, item.level)
            else:
                channels.partial(item)
    finally:
        gen.close()  # a cancelled or failed job's finally blocks run here, in its own thread


# ---------------------------------------------------------------------------------------------- engine locks
_locks_guard = threading.Lock()
_locks: "weakref.WeakKeyDictionary[Any, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_by_id: dict[int, threading.RLock] = {}  # objects that cannot be weakly referenced (rare)


def engine_lock(engine: Any) -> threading.RLock:
    """The one re-entrant lock of this engine instance (created on first use, dropped with the engine)."""
    with _locks_guard:
        try:
            lock = _locks.get(engine)
            if lock is None:
                lock = _locks[engine] = threading.RLock()
        except TypeError:  # not weak-referenceable or not hashable: keyed by identity for the process' life
            lock = _locks_by_id.setdefault(id(engine), threading.RLock())
        return lock


class hold_engine:  # noqa: N801 - used as a context manager, reads like one
    """``with hold_engine(engine, cancel, progress):`` waits for the engine's lock, giving up when cancelled
    and saying once that it waits, so a second job on a busy engine queues instead of sharing it."""

    POLL_S = 0.05

    def __init__(self, engine: Any, cancel: CancelToken | None = None,
                 progress: Callable[[float | None, str], None] | None = None) -> None:
        self.engine, self.cancel, self.progress = engine, cancel, progress
        self.lock = engine_lock(engine)
        self.waited_s = 0.0

    def __enter__(self) -> Any:
        if self.lock.acquire(blocking=False):
            return self.engine
        name = getattr(self.engine, "id", "") or type(self.engine).__name__
        if self.progress is not None:
            self.progress(None, f"waiting for {name} (busy with another task)")
        start = time.monotonic()
        while not self.lock.acquire(timeout=self.POLL_S):
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
        self.waited_s = time.monotonic() - start
        return self.engine

    def __exit__(self, *exc) -> None:
        self.lock.release()
