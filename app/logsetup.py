"""Logging: a rotating file in the user log folder, warnings on stderr."""
from __future__ import annotations

import logging
import logging.handlers

from engines.core.paths import log_dir

_configured = False


def configure_logging(verbose: bool = False, console: bool = True) -> None:
    """File log always; warnings on stderr only when ``console`` (headless commands print their own lines)."""
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler = logging.handlers.RotatingFileHandler(log_dir() / "csi-workstation.log", maxBytes=2_000_000,
                                                        backupCount=3, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler()
        stream.setLevel(logging.DEBUG if verbose else logging.WARNING)
        stream.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(stream)
