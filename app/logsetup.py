"""Logging: a rotating file in the user log folder, warnings on stderr.

Messages may carry file names that are not valid UTF-8 (POSIX hands them to Python as surrogate escapes,
e.g. ``b"\\xff"`` becomes ``"\\udcff"``); such characters are written as backslash escapes instead of making
the handler fail and drop the line.
"""
from __future__ import annotations

import logging
import logging.handlers
import sys

from engines.core.paths import log_dir

_configured = False
LOG_NAME = "csi-workstation.log"


class SafeTextFormatter(logging.Formatter):
    """A formatter whose output always encodes: unencodable characters become backslash escapes."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).encode("utf-8", "backslashreplace").decode("utf-8")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now, not the stream it was created with (which may be closed since:
    a redirected or captured stderr)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ARG002 - the current stderr is always used
        pass


def configure_logging(verbose: bool = False, console: bool = True) -> None:
    """File log always; warnings on stderr only when ``console`` (headless commands print their own lines).

    A log folder that cannot be written does not stop the workstation: it logs to stderr and says why.
    """
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    problem = ""
    try:
        file_handler = logging.handlers.RotatingFileHandler(log_dir() / LOG_NAME, maxBytes=2_000_000,
                                                            backupCount=3, encoding="utf-8",
                                                            errors="backslashreplace")
    except OSError as exc:
        problem = f"The log file could not be opened ({exc.strerror or exc}); messages go to the console only."
        console = True
    else:
        file_handler.setFormatter(SafeTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(file_handler)
    if console:
        stream = _StderrHandler()
        stream.setLevel(logging.DEBUG if verbose else logging.WARNING)
        stream.setFormatter(SafeTextFormatter("%(levelname)s: %(message)s"))
        root.addHandler(stream)
    if problem:
        logging.getLogger(__name__).warning("%s", problem)
