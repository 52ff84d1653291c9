"""The leaf of engines/core: the error types, cancellation and the progress signature every layer shares.

It imports nothing of the workstation, so any module (readers, samples, the weights store, the engine base
class) can depend on it without forming an import cycle. ``engines.core.engine`` re-exports every name here.
"""
from __future__ import annotations

import threading
from typing import Callable

__all__ = ["Cancelled", "CancelToken", "EngineError", "ProgressFn", "no_progress"]

#: progress(fraction in [0, 1] or None when unknown, message)
ProgressFn = Callable[[float | None, str], None]


def no_progress(fraction: float | None, message: str = "") -> None:  # noqa: ARG001 - the default sink
    """A progress sink that drops everything."""


class Cancelled(Exception):
    """Raised inside engine code when the user cancelled the job."""


class EngineError(Exception):
    """An error whose message is already written for the user (plain language, no traceback)."""


class CancelToken:
    """Cooperative cancellation: the GUI sets it, engine code checks it between chunks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")
