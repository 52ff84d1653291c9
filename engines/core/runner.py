"""Run one engine call: load on the resolved device, predict, and fall back to the CPU on GPU OOM."""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from engines.core.device import free_accelerator_memory, is_out_of_memory
from engines.core.engine import CancelToken, Engine, ProgressFn, no_progress

log = logging.getLogger(__name__)

NoticeFn = Callable[[str], None]


def run_engine(engine: Engine, request: Mapping[str, Any], *, device: str,
               progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
               notice: NoticeFn | None = None) -> Any:
    """Load ``engine`` on ``device`` (if not already there) and run ``predict``.

    A GPU out-of-memory error frees the cache, reloads the engine on the CPU, says so through ``notice``
    (and the log) and runs again: the user gets a result, slower, and knows why.
    """
    from engines.core.model_engine import as_token

    cancel = as_token(cancel)
    if engine.device != device:
        if engine.loaded:
            engine.unload()
        progress(None, f"loading {engine.id} on {device}")
        engine.load(device)
    try:
        return engine.predict(request, progress=progress, cancel=cancel)
    except Exception as exc:  # noqa: BLE001 - only OOM is handled, everything else re-raised
        if not (is_out_of_memory(exc) and not device.startswith("cpu")):
            raise
        message = (f"{engine.id}: the GPU ran out of memory; freed its cache and running again on the CPU "
                   f"(slower).")
        log.warning(message)
        if notice:
            notice(message)
        engine.unload()
        free_accelerator_memory()
        cancel.raise_if_cancelled()
        engine.load("cpu")
        return engine.predict(request, progress=progress, cancel=cancel)
