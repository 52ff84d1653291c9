"""Engine registry: discovered through the ``csi_workstation.engines`` entry-point group.

An entry point's value is an Engine subclass or a list/tuple of them. A plugin that fails to import is
reported (``errors``) and skipped; it never takes the others down. What a domain contributes besides its
engines (samples, describers, readers) is registered in ``engines.core.domains``, re-exported here.
"""
from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Iterable

from engines.core.domains import DOMAIN_GROUP, DomainManifest, DomainRegistry, domains, load_plugins
from engines.core.engine import Engine

log = logging.getLogger(__name__)
GROUP = "csi_workstation.engines"

__all__ = ["DOMAIN_GROUP", "DomainManifest", "DomainRegistry", "EngineRegistry", "GROUP", "domains"]


class EngineRegistry:
    def __init__(self) -> None:
        self._classes: dict[str, type[Engine]] = {}
        self._aliases: dict[str, str] = {}
        self._instances: dict[str, Engine] = {}
        self.errors: dict[str, str] = {}

    @classmethod
    def discover(cls, group: str = GROUP) -> "EngineRegistry":
        registry = cls()

        def register(obj) -> None:
            items: Iterable = obj if isinstance(obj, (list, tuple)) else [obj]
            for item in items:
                registry.register(item)

        load_plugins(entry_points(group=group), register, registry.errors, "engine plugin")
        return registry

    def register(self, engine_cls: type[Engine]) -> None:
        if not (isinstance(engine_cls, type) and issubclass(engine_cls, Engine) and engine_cls.id):
            raise TypeError(f"{engine_cls!r} is not an Engine subclass with an id")
        if engine_cls.id in self._classes and self._classes[engine_cls.id] is not engine_cls:
            raise ValueError(f"two engines share the id '{engine_cls.id}'")
        self._classes[engine_cls.id] = engine_cls
        for alias in engine_cls.aliases:
            if alias in self._classes or self._aliases.get(alias, engine_cls.id) != engine_cls.id:
                raise ValueError(f"alias '{alias}' of '{engine_cls.id}' is already taken")
            self._aliases[alias] = engine_cls.id

    def ids(self) -> list[str]:
        return sorted(self._classes)

    def resolve(self, name: str) -> str:
        """An engine id from an id or an alias (unknown names are returned unchanged)."""
        return self._aliases.get(name, name)

    def __contains__(self, engine_id: str) -> bool:
        return self.resolve(engine_id) in self._classes

    def get(self, engine_id: str) -> Engine:
        """The shared instance of an engine (created on first use, so loaded weights are reused)."""
        engine_id = self.resolve(engine_id)
        if engine_id not in self._classes:
            known = ", ".join(self.ids()) or "none"
            raise KeyError(f"no engine '{engine_id}' (known: {known})")
        if engine_id not in self._instances:
            self._instances[engine_id] = self._classes[engine_id]()
        return self._instances[engine_id]

    def for_workspace(self, workspace: str) -> list[Engine]:
        return [self.get(i) for i in self.ids() if self.get(i).info().workspace == workspace]

