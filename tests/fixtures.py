"""Helpers for test fixtures (imported by test modules; conftest.py holds the fixtures pytest injects)."""
from __future__ import annotations


def loaded(engine_cls, device: str = "cpu"):
    """For module-scoped fixtures: ``yield from loaded(SomeEngine)`` gives the engine loaded on ``device`` and
    unloads it after the module's tests."""
    engine = engine_cls()
    engine.load(device)
    try:
        yield engine
    finally:
        engine.unload()
