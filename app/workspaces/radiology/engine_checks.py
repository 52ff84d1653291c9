"""Engine input contracts in the radiology workspace: which engines suit the open study (checked off the GUI
thread when a study opens, so the Run engine menu can grey out the ones it fails, with the reason). The banner
that shows a result's warnings is app/widgets/check_banner.py."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.workspaces.radiology.view import RadiologyWorkspace


class EngineContracts:
    """Per open volume: each radiology engine's preflight checks, computed in one task."""

    def __init__(self, workspace: "RadiologyWorkspace") -> None:
        self._ws = weakref.ref(workspace)
        self._volume_ref = None
        self.results: dict[str, list] = {}
        self.pending = False

    def compute(self, volume) -> None:
        ws = self._ws()
        if ws is None:
            return
        self.results = {}
        self._volume_ref = weakref.ref(volume)
        self.pending = True
        try:
            engines = ws.context.registry().for_workspace("radiology")
        except Exception:  # noqa: BLE001 - the menu reports a broken registry itself
            self.pending = False
            return
        from engines.radiology.session import LazyEngineRequest

        volume_ref = weakref.ref(volume)

        def job(progress, cancel):
            vol = volume_ref()
            found: dict[str, list] = {}
            if vol is None:
                return found
            request = LazyEngineRequest(vol)
            for engine in engines:
                cancel.raise_if_cancelled()
                try:
                    checks = engine.preflight(request)
                except Exception as exc:  # noqa: BLE001 - a contract that breaks must not hide the engine
                    from engines.core.checks import Check

                    found[engine.id] = [Check("input", "warned", f"its input check could not run ({exc})")]
                    continue
                if checks is not None:
                    found[engine.id] = list(checks.items)
            return found

        def done(found: dict) -> None:
            if self._volume_ref is not None and self._volume_ref() is volume_ref():
                self.results = found
                self.pending = False

        ws.context.tasks.submit(job, title="Checking which engines suit this study", owner="radiology:contracts",
                                on_result=done, on_error=lambda msg, detail: setattr(self, "pending", False))

    def state(self, engine_id: str) -> tuple[str, str]:
        """("refused" | "warned" | "passed" | "unknown", reason) for the open volume."""
        checks = self.results.get(engine_id)
        if checks is None:
            return ("unknown", "the input check is still running" if self.pending else "")
        refused = [c for c in checks if c.status == "refused"]
        if refused:
            return "refused", refused[0].reason
        warned = [c for c in checks if c.status == "warned"]
        if warned:
            return "warned", " ".join(c.reason for c in warned)
        return "passed", ""
