"""The one Qt worker adapter: runs any job (an engine call above all) off the GUI thread.

A job is ``fn(progress, cancel)``. It returns its result, or it is a generator that yields ``Progress``,
``Notice`` or partial results (a preview slice, a first batch of tiles) and returns its result; the protocol
itself is Qt-free (engines/core/jobs.py). ``progress`` is also the job's other channels: ``progress.partial(v)``
and ``progress.notice(msg)``.

The adapter relays progress, partial results, notices, the result, errors and cancellation as signals of a
``Task`` that lives in the GUI thread; the worker never touches a widget. Every public signal of a Task is
emitted in the GUI thread from a queued relay, so nothing is lost between ``submit`` returning and the caller
connecting to the task; ``create`` + connect + ``start`` is the explicit form. One active task per owner:
starting a new one for the same owner cancels the old one, and a cancelled task's late partial results are
dropped (napari's thread_worker idea). Errors and notices that no caller listens to go to the notification
manager, when the manager has one.

Two older channels fold into this protocol. The radiology open's preview relay (a QObject with one
``preview`` signal, emitted from the reader's ``on_first_slice``) becomes ``progress.partial(preview)`` in the
job with ``on_partial=`` the view's preview slot: same thread crossing, and a preview of an open that a newer
open superseded is dropped. The pathology tile pool keeps its own pool (many small prioritised reads that
do not belong in the task panel), but its parts map one to one: a viewport's generation number is that
viewport's CancelToken, a tile read is one yield of a generator job, and the tile bridge's ``loaded`` signal
is ``Task.partial``; a private ``TaskManager(max_threads=4)`` that no TaskPanel shows can run them.
"""
from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import SIGNAL, QObject, QRunnable, Qt, QThreadPool, Signal

from engines.core.engine import CancelToken, Cancelled, EngineError
from engines.core.jobs import JobChannels, Notice, Progress, hold_engine, run_job

__all__ = ["Job", "Notice", "Progress", "Task", "TaskManager", "plain_message"]

log = logging.getLogger(__name__)
Job = Callable[[Callable[[float | None, str], None], CancelToken], Any]
_PROGRESS_INTERVAL_S = 0.05


def plain_message(title: str, exc: BaseException) -> str:
    """A message a user can read: engine errors as written, others with their type, no traceback."""
    if isinstance(exc, EngineError):
        return f"{title}: {exc}"
    if isinstance(exc, MemoryError):
        return f"{title}: not enough memory for this input"
    if isinstance(exc, FileNotFoundError):
        return f"{title}: file not found ({exc.filename})"
    if isinstance(exc, PermissionError):
        return f"{title}: permission denied ({exc.filename})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{title} failed: {text}"


class Task(QObject):
    """One job. Its public signals are emitted in the GUI thread (the thread the Task was made in)."""

    started = Signal()
    progress = Signal(float, str)  # fraction (-1 when unknown), message
    partial = Signal(object)  # a value the job yielded (or passed to progress.partial) before its result
    result = Signal(object)
    error = Signal(str, str)  # plain message, detail (traceback)
    cancelled = Signal()
    finished = Signal()
    notice = Signal(str)  # a warning worth showing, e.g. GPU OOM fell back to CPU
    _relay = Signal(str, object)  # worker thread -> GUI thread (queued); never connect to it

    PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"

    def __init__(self, title: str, owner: str | None = None) -> None:
        super().__init__()
        self.title = title
        self.owner = owner
        self.token = CancelToken()
        self.state = Task.PENDING
        self.fraction: float | None = None
        self.message = ""
        self.notify: Callable[[str, str, str, str], Any] | None = None  # (level, message, detail, source)
        self._start: Callable[[Task], None] | None = None
        self._relay.connect(self._deliver, Qt.QueuedConnection)

    def cancel(self) -> None:
        self.token.cancel()

    def start(self) -> "Task":
        """Start a task made by ``TaskManager.create`` (connect its signals first); returns the task."""
        if self._start is None:
            raise RuntimeError(f"'{self.title}' was already started or has no task manager")
        start, self._start = self._start, None
        start(self)
        return self

    @property
    def active(self) -> bool:
        return self.state in (Task.PENDING, Task.RUNNING)

    def _listened(self, signature: str) -> bool:
        return self.receivers(SIGNAL(signature)) > 0

    def _deliver(self, channel: str, args: tuple) -> None:  # GUI thread, in the order the worker sent them
        if channel == "started":
            self.state = Task.RUNNING
            self.started.emit()
        elif channel == "progress":
            if not self.token.cancelled:
                self.fraction, self.message = (None if args[0] < 0 else args[0]), args[1]
                self.progress.emit(*args)
        elif channel == "partial":
            if not self.token.cancelled:  # a stale preview must not replace what the new task shows
                self.partial.emit(args[0])
        elif channel == "notice":
            message, level = args
            if not self._listened("notice(QString)") and self.notify is not None:
                self.notify(level, message, "", self.title)
            self.notice.emit(message)
        elif channel == "result":
            self.state = Task.DONE
            self.result.emit(args[0])
        elif channel == "error":
            self.state = Task.FAILED
            if not self._listened("error(QString,QString)") and self.notify is not None:
                self.notify("error", args[0], args[1], self.title)
            self.error.emit(*args)
        elif channel == "cancelled":
            self.state = Task.CANCELLED
            self.cancelled.emit()
        elif channel == "finished":
            self.finished.emit()


class _Runnable(QRunnable):
    def __init__(self, task: Task, fn: Job) -> None:
        super().__init__()
        self.task, self.fn = task, fn
        self.setAutoDelete(True)
        self._last_emit = 0.0
        self.channels = JobChannels(self._progress, lambda value: self._send("partial", value),
                                    lambda message, level="warning": self._send("notice", message, level))

    def _progress(self, fraction: float | None, message: str = "") -> None:
        now = time.monotonic()
        final = fraction is not None and fraction >= 1.0
        if not final and now - self._last_emit < _PROGRESS_INTERVAL_S:
            return
        self._last_emit = now
        self._send("progress", -1.0 if fraction is None else float(fraction), message)

    def _send(self, channel: str, *args) -> None:
        try:
            self.task._relay.emit(channel, args)
        except RuntimeError:  # the Task was deleted (window closed while the job ran): nobody to tell
            log.debug("task gone before its signal could be delivered")

    def run(self) -> None:  # worker thread: signals only, no widgets
        task = self.task
        self._send("started")
        try:
            value = run_job(self.fn, self.channels, task.token)
        except Cancelled:
            self._send("cancelled")
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message, the app keeps running
            detail = traceback.format_exc()
            if isinstance(exc, EngineError):  # a message written for the user (bad input): no stack in the log
                log.warning("%s: %s", task.title, exc)
            else:
                log.error("%s failed: %s\n%s", task.title, exc, detail)
            self._send("error", plain_message(task.title, exc), detail)
        else:
            self._send("result", value)
        finally:
            # the job's closure (volumes, label arrays) must not outlive it: the pool may keep this wrapper
            self.fn = self.channels = None
            self._send("finished")


class TaskManager(QObject):
    """Owns the thread pool and the list of running tasks (the task panel shows it)."""

    task_added = Signal(object)
    task_finished = Signal(object)

    def __init__(self, parent: QObject | None = None, max_threads: int | None = None, notifications=None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        if max_threads:
            self.pool.setMaxThreadCount(max_threads)
        self.tasks: list[Task] = []
        #: an engines.core.notifications.NotificationManager: gets the errors and notices nobody listens to
        self.notifications = notifications
        self._closing = False

    def create(self, fn: Job, *, title: str, owner: str | None = None) -> Task:
        """A task that has not started: connect to its signals, then call ``task.start()``."""
        task = Task(title, owner)
        task.notify = self._notify
        task._start = lambda t, fn=fn: self._start(t, fn)
        return task

    def submit(self, fn: Job, *, title: str, owner: str | None = None,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[str, str], None] | None = None,
               on_partial: Callable[[Any], None] | None = None,
               on_progress: Callable[[float, str], None] | None = None,
               on_notice: Callable[[str], None] | None = None) -> Task:
        """Create, connect the given callbacks and start a task. Signals connected after this returns (in the
        GUI thread) are not missed either: they are emitted from the event loop, never from the worker."""
        task = self.create(fn, title=title, owner=owner)
        for signal, slot in ((task.result, on_result), (task.error, on_error), (task.partial, on_partial),
                             (task.progress, on_progress), (task.notice, on_notice)):
            if slot is not None:
                signal.connect(slot)
        return task.start()

    def _start(self, task: Task, fn: Job) -> None:
        if self._closing:
            raise RuntimeError("the task manager is shutting down")
        if task.owner is not None:
            for old in self.active(task.owner):
                old.cancel()
        task.finished.connect(lambda t=task: self._on_finished(t))
        self.tasks.append(task)
        self.task_added.emit(task)
        self.pool.start(_Runnable(task, fn))

    def _notify(self, level: str, message: str, detail: str, source: str) -> None:
        if self.notifications is not None:
            self.notifications.post(level, message, detail, source)

    def engine_job(self, engine, request, *, device: str | None = None) -> Job:
        """The job that runs ``engine.predict`` through the shared runner (device resolution, CPU fallback on
        GPU OOM), holding the engine's lock: one engine instance never runs on two threads at once."""
        def job(progress, cancel):
            from engines.core.device import resolve_device
            from engines.core.runner import run_engine

            with hold_engine(engine, cancel, progress):
                # a classical engine needs no device: resolving one would import torch for nothing
                needs_device = bool(getattr(engine.info(), "weights", None))
                dev = resolve_device(device).device if needs_device else "cpu"
                notice = getattr(progress, "notice", None)
                return run_engine(engine, request, device=dev, progress=progress, cancel=cancel, notice=notice)

        return job

    def submit_engine(self, engine, request, *, title: str, owner: str | None = None, device: str | None = None,
                      on_result=None, on_error=None, on_partial=None, on_notice=None) -> Task:
        """Run ``engine.predict`` off the GUI thread (see ``engine_job``)."""
        return self.submit(self.engine_job(engine, request, device=device), title=title, owner=owner,
                           on_result=on_result, on_error=on_error, on_partial=on_partial, on_notice=on_notice)

    def active(self, owner: str | None = None) -> list[Task]:
        """Tasks whose results have not yet been delivered in the GUI thread (a task leaves ``tasks`` only
        after its result/error/cancelled slots ran), optionally for one owner."""
        return [t for t in self.tasks if owner is None or t.owner == owner]

    def _on_finished(self, task: Task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        self.task_finished.emit(task)

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything and wait for the workers; True if all stopped in time."""
        self._closing = True
        self.cancel_all()
        return self.pool.waitForDone(timeout_ms)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Process events until no task is active (for the self-test and scripts, not for the GUI)."""
        from PySide6.QtCore import QCoreApplication, QEventLoop

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 50)
            if not self.tasks and self.pool.activeThreadCount() == 0:
                QCoreApplication.processEvents()
                return True
            time.sleep(0.01)
        return False
