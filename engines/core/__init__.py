"""Engine core: the Engine shape, registry, device resolver, weights store, cancellation and progress.

Nothing here imports Qt, and nothing imports torch at module import time.
"""
from engines.core.engine import (
    Cancelled,
    CancelToken,
    Engine,
    EngineError,
    EngineInfo,
    ProgressFn,
    no_progress,
)

__all__ = ["Cancelled", "CancelToken", "Engine", "EngineError", "EngineInfo", "ProgressFn", "no_progress"]
