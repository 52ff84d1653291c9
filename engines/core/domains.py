"""What each domain package contributes to the core, found through the ``csi_workstation.domains`` entry points.

An entry point's value is a :class:`DomainManifest` (one per package under ``engines/``): the samples it
bundles, the describers ``inspect`` uses and the readers that open its files, each named as
``"module:attribute"`` and imported only when asked for. ``engines.core`` itself names no domain: it learns
them from here. This module imports nothing of the workstation, so samples and inspect can use it without
an import cycle through the engine base class.
"""
from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable, Mapping

log = logging.getLogger(__name__)
DOMAIN_GROUP = "csi_workstation.domains"

__all__ = ["DOMAIN_GROUP", "DomainManifest", "DomainRegistry", "domains", "load_plugins", "resolve_ref"]


def load_plugins(found: Iterable, register: Callable[[Any], None], errors: dict[str, str], noun: str) -> None:
    """Load every entry point in ``found`` (sorted by name) into ``register``; a failure is recorded in ``errors``
    under the entry point's name and logged, and the others still load."""
    for ep in sorted(found, key=lambda e: e.name):
        try:
            register(ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the app
            errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("%s %s failed to load: %s", noun, ep.name, exc)


def resolve_ref(ref: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names (the module is imported now)."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{ref!r} is not a 'module:attribute' reference")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class DomainManifest:
    """What a domain package (``engines/<domain>``) contributes to the core, without importing it.

    ``samples`` and ``describers`` name a dict in the domain (``"engines.music.samples:SAMPLES"``): sample id ->
    ``"module:function(empty folder) -> path"`` and file kind -> ``"module:function(path) -> dict"``.
    ``readers`` maps a file kind straight to ``"module:function(path, **options)"`` that opens it as the
    domain's data object (a Volume, a SlideReader, an AudioClip).
    """

    id: str
    samples: str | None = None
    describers: str | None = None
    readers: Mapping[str, str] = field(default_factory=dict)


class DomainRegistry:
    """The domains found through :data:`DOMAIN_GROUP`, and what they offer, each looked up on first use.

    Two domains offering the same sample id or the same reader kind is an error (recorded in ``errors``,
    the domain that sorts first keeps it). A describer of a kind the core already describes replaces the
    core's; two domains describing the same kind is an error too.
    """

    def __init__(self, manifests: Iterable[DomainManifest] = ()) -> None:
        self._manifests: dict[str, DomainManifest] = {}
        self.errors: dict[str, str] = {}
        self._lock = threading.RLock()
        self._samples: dict[str, str] | None = None
        self._describers: dict[str, str] | None = None
        for manifest in manifests:
            self.register(manifest)

    @classmethod
    def discover(cls, group: str = DOMAIN_GROUP) -> "DomainRegistry":
        registry = cls()
        load_plugins(entry_points(group=group), registry.register, registry.errors, "domain")
        return registry

    def register(self, manifest: DomainManifest) -> None:
        if not isinstance(manifest, DomainManifest) or not manifest.id:
            raise TypeError(f"{manifest!r} is not a DomainManifest with an id")
        if manifest.id in self._manifests and self._manifests[manifest.id] != manifest:
            raise ValueError(f"two domains share the id '{manifest.id}'")
        with self._lock:
            self._manifests[manifest.id] = manifest
            self._samples = self._describers = None

    def ids(self) -> list[str]:
        return sorted(self._manifests)

    def manifest(self, domain: str) -> DomainManifest:
        return self._manifests[domain]

    def _merged(self, what: str, load: Callable[[DomainManifest], Mapping[str, str]]) -> dict[str, str]:
        found: dict[str, str] = {}
        owner: dict[str, str] = {}
        for domain in self.ids():
            try:
                offered = dict(load(self._manifests[domain]))
            except Exception as exc:  # noqa: BLE001 - one domain's broken module leaves the others usable
                self.errors[f"{domain}:{what}"] = f"{type(exc).__name__}: {exc}"
                log.error("the %s of domain %s failed to load: %s", what, domain, exc)
                continue
            for key, ref in offered.items():
                if key in owner:
                    self.errors[f"{domain}:{what}:{key}"] = (f"{what[:-1]} '{key}' of domain '{domain}' is already "
                                                             f"offered by '{owner[key]}'")
                    log.error("%s", self.errors[f"{domain}:{what}:{key}"])
                    continue
                found[key], owner[key] = ref, domain
        return found

    def samples(self) -> dict[str, str]:
        """Every domain's samples: sample id -> ``"module:function"`` (the sample modules are imported once)."""
        with self._lock:
            if self._samples is None:
                self._samples = self._merged("samples", lambda m: resolve_ref(m.samples) if m.samples else {})
            return dict(self._samples)

    def describers(self) -> dict[str, str]:
        """Every domain's describers: file kind -> ``"module:function"``."""
        with self._lock:
            if self._describers is None:
                self._describers = self._merged("describers",
                                                lambda m: resolve_ref(m.describers) if m.describers else {})
            return dict(self._describers)

    def readers(self, kind: str) -> dict[str, str]:
        """The readers of ``kind``, domain -> ``"module:function"`` (several domains may open one kind: an image
        is a slide to pathology and a picture to text/VQA)."""
        return {d: m.readers[kind] for d, m in sorted(self._manifests.items()) if kind in m.readers}

    def reader(self, kind: str, domain: str | None = None) -> Callable[..., Any] | None:
        """The reader function of ``kind`` (from ``domain`` when given, else the only domain that reads it);
        None when no domain reads it. Raises ValueError when several do and no ``domain`` says which."""
        offered = self.readers(kind)
        if domain is not None:
            offered = {domain: offered[domain]} if domain in offered else {}
        if not offered:
            return None
        if len(offered) > 1:
            raise ValueError(f"several domains read '{kind}' files ({', '.join(offered)}): name one")
        return resolve_ref(next(iter(offered.values())))


_domains: DomainRegistry | None = None
_domains_lock = threading.Lock()


def domains() -> DomainRegistry:
    """The process-wide :class:`DomainRegistry`, discovered from the entry points on first use."""
    global _domains
    with _domains_lock:
        if _domains is None:
            _domains = DomainRegistry.discover()
            if not _domains.ids():
                log.error("no domain registered under the entry-point group %s: the installed package metadata is "
                          "stale; run `pip install --no-deps -e .` in the checkout", DOMAIN_GROUP)
        return _domains
