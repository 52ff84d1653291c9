"""Workspace manifests (napari's npe2 idea): what a workspace opens, without importing its view."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Mapping

log = logging.getLogger(__name__)
GROUP = "csi_workstation.workspaces"


@dataclass(frozen=True)
class WorkspaceManifest:
    id: str
    title: str
    summary: str
    view: str  # "module:Class" of the WorkspaceView, imported on first open
    opens: Mapping[str, int] = field(default_factory=dict)  # file kind -> priority (higher wins)
    sample: str | None = None  # sample id in engines.core.samples: the one "Open Sample" opens
    #: every sample the workspace offers, (sample id, title), in menu order; the default comes first
    samples: tuple[tuple[str, str], ...] = ()
    #: samples to open instead of the default when it cannot be prepared (e.g. not fetched yet)
    sample_fallbacks: tuple[str, ...] = ()
    order: int = 100
    icon: str = ""  # file name in resources/icons
    will_hold: tuple[str, ...] = ()  # what the workspace holds, for its empty state

    def load_view_class(self):
        module, _, attr = self.view.partition(":")
        return getattr(importlib.import_module(module), attr)


def discover_workspaces(group: str = GROUP) -> tuple[list[WorkspaceManifest], dict[str, str]]:
    """Return (manifests sorted by order, {entry point: error}) ; a broken plugin is skipped."""
    manifests: list[WorkspaceManifest] = []
    errors: dict[str, str] = {}
    for ep in entry_points(group=group):
        try:
            manifest = ep.load()
            if not isinstance(manifest, WorkspaceManifest):
                raise TypeError(f"{ep.value} is not a WorkspaceManifest")
        except Exception as exc:  # noqa: BLE001 - one broken workspace must not stop the shell
            errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("workspace %s failed to load: %s", ep.name, exc)
            continue
        manifests.append(manifest)
    manifests.sort(key=lambda m: (m.order, m.id))
    return manifests, errors


def workspace_for_kind(kind: str, manifests: list[WorkspaceManifest]) -> WorkspaceManifest | None:
    best = max((m for m in manifests if kind in m.opens), key=lambda m: m.opens[kind], default=None)
    return best
