"""The one Qt worker adapter: runs any callable (an engine call above all) off the GUI thread.

A job is ``fn(progress, cancel) -> result``. The adapter relays progress, result, error and cancellation as
signals on a ``Task`` that lives in the GUI thread; the worker never touches a widget. One active task per
owner: submitting a new one for the same owner cancels the old one (napari's thread_worker idea).
"""
from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engines.core.engine import CancelToken, Cancelled, EngineError

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
    """One running job. Signals are emitted from the worker thread and delivered in the GUI thread."""

    progress = Signal(float, str)  # fraction (-1 when unknown), message
    result = Signal(object)
    error = Signal(str, str)  # plain message, detail (traceback)
    cancelled = Signal()
    finished = Signal()
    notice = Signal(str)  # a warning worth showing, e.g. GPU OOM fell back to CPU

    PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"

    def __init__(self, title: str, owner: str | None = None) -> None:
        super().__init__()
        self.title = title
        self.owner = owner
        self.token = CancelToken()
        self.state = Task.PENDING
        self.fraction: float | None = None
        self.message = ""

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def active(self) -> bool:
        return self.state in (Task.PENDING, Task.RUNNING)


class _Runnable(QRunnable):
    def __init__(self, task: Task, fn: Job) -> None:
        super().__init__()
        self.task, self.fn = task, fn
        self.setAutoDelete(True)
        self._last_emit = 0.0

    def _progress(self, fraction: float | None, message: str = "") -> None:
        now = time.monotonic()
        final = fraction is not None and fraction >= 1.0
        if not final and now - self._last_emit < _PROGRESS_INTERVAL_S:
            return
        self._last_emit = now
        self.task.fraction, self.task.message = fraction, message
        self._emit(self.task.progress, -1.0 if fraction is None else float(fraction), message)

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the Task was deleted (window closed while the job ran): nobody to tell
            log.debug("task gone before its signal could be delivered")

    def run(self) -> None:  # worker thread: signals only, no widgets
        task = self.task
        task.state = Task.RUNNING
        try:
            task.token.raise_if_cancelled()
            value = self.fn(self._progress, task.token)
            task.token.raise_if_cancelled()
        except Cancelled:
            task.state = Task.CANCELLED
            self._emit(task.cancelled)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message, the app keeps running
            task.state = Task.FAILED
            detail = traceback.format_exc()
            log.error("%s failed: %s\n%s", task.title, exc, detail)
            self._emit(task.error, plain_message(task.title, exc), detail)
        else:
            task.state = Task.DONE
            self._emit(task.result, value)
        finally:
            self._emit(task.finished)


class TaskManager(QObject):
    """Owns the thread pool and the list of running tasks (the task panel shows it)."""

    task_added = Signal(object)
    task_finished = Signal(object)

    def __init__(self, parent: QObject | None = None, max_threads: int | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        if max_threads:
            self.pool.setMaxThreadCount(max_threads)
        self.tasks: list[Task] = []
        self._closing = False

    def submit(self, fn: Job, *, title: str, owner: str | None = None,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[str, str], None] | None = None) -> Task:
        if self._closing:
            raise RuntimeError("the task manager is shutting down")
        if owner is not None:
            for old in self.active(owner):
                old.cancel()
        task = Task(title, owner)
        if on_result is not None:
            task.result.connect(on_result)
        if on_error is not None:
            task.error.connect(on_error)
        task.finished.connect(lambda t=task: self._on_finished(t))
        self.tasks.append(task)
        self.task_added.emit(task)
        self.pool.start(_Runnable(task, fn))
        return task

    def submit_engine(self, engine, request, *, title: str, owner: str | None = None, device: str | None = None,
                      on_result=None, on_error=None) -> Task:
        """Run ``engine.predict`` through the shared runner (device resolution, CPU fallback on GPU OOM)."""
        from engines.core.runner import run_engine

        holder: dict[str, Task] = {}

        def job(progress, cancel):
            from engines.core.device import resolve_device

            dev = resolve_device(device).device
            return run_engine(engine, request, device=dev, progress=progress, cancel=cancel,
                              notice=lambda msg: holder["task"].notice.emit(msg))

        task = self.submit(job, title=title, owner=owner, on_result=on_result, on_error=on_error)
        holder["task"] = task
        return task

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
