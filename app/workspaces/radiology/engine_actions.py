"""Running engines from the radiology workspace: the Run engine menu (greyed out where an engine's input
contract refuses the open study, with the reason), a run with progress and cancel off the GUI thread, and its
result turned into layers. Mixed into ``RadiologyWorkspace``."""
from __future__ import annotations

from collections.abc import Mapping

from engines.radiology.session import LazyEngineRequest


class EngineActions:
    """``run_engine``, ``cancel_engine``, ``show_engine_result`` and the menu behind the Run engine button."""

    _engine_task = None

    def _fill_engine_menu(self) -> None:
        self.engine_menu.clear()
        try:
            engines = self.context.registry().for_workspace("radiology")
        except Exception as exc:  # noqa: BLE001 - a broken registry is reported, not raised into Qt
            self.context.notify("error", f"Engines could not be listed: {exc}", "")
            return
        if not engines:
            self.engine_menu.addAction("(no radiology engines installed)").setEnabled(False)
        for engine in engines:
            info = engine.info()
            status = engine.weights_status()
            usable = status in ("ok", "none needed")
            title = info.title if usable else f"{info.title} — weights not installed"
            fit, reason = self.contracts.state(engine.id) if self.volume is not None else ("unknown", "")
            if usable and fit == "refused":
                title = f"{info.title} — not for this study"
            elif usable and fit == "warned":
                title = f"{info.title} (check the warning)"
            act = self.engine_menu.addAction(title, lambda eid=engine.id: self.run_engine(eid))
            act.setToolTip(status if not usable else (reason if fit in ("refused", "warned") else info.description))
            act.setEnabled(self.volume is not None and usable and fit != "refused")
        self.engine_menu.setToolTipsVisible(True)

    def run_engine(self, engine_id: str):
        """Run a registered engine on the shown volume, off the GUI thread, with progress and cancel; the
        result is shown as an overlay. Returns the Task (or None)."""
        if self.volume is None:
            self.context.notify("warning", "Open an image before running an engine.", "")
            return None
        engine = self.context.registry().get(engine_id)
        title = engine.info().title
        volume = self.volume

        def done(result) -> None:
            self.cancel_button.setEnabled(False)
            if self.volume is not volume:
                self.context.notify("warning", f"{title}: the image changed while it ran; result discarded", "")
                return
            self.show_engine_result(engine, result)

        def failed(message: str, detail: str) -> None:
            self.cancel_button.setEnabled(False)
            self.context.notify("error", message, detail)

        self._engine_task = self.context.tasks.submit_engine(
            engine, LazyEngineRequest(volume), title=title, owner=f"{self.manifest.id}:engine",
            device=self.context.device(), on_result=done, on_error=failed)
        self._engine_task.cancelled.connect(lambda: (self.cancel_button.setEnabled(False),
                                                     self.context.notify("info", f"{title}: cancelled", "")))
        self._engine_task.notice.connect(lambda msg: self.context.notify("warning", msg, ""))
        self.cancel_button.setEnabled(True)
        return self._engine_task

    def cancel_engine(self) -> None:
        task = getattr(self, "_engine_task", None)
        if task is not None and task.active:
            task.cancel()

    def show_engine_result(self, engine, result) -> None:
        """Turn an engine's result mapping into layers (see the module docstring for the keys)."""
        from app.widgets.check_banner import show_result_checks

        info = engine.info() if engine is not None else None
        title = info.title if info else "engine"
        show_result_checks(self.check_banner, title, result, self.context.notify)
        if not isinstance(result, Mapping):
            self.context.notify("warning", f"{title}: no result to show", "")
            return
        names = result.get("label_names")
        if names is None and info is not None and info.labels:
            names = {n: str(label) for n, label in enumerate(info.labels) if n > 0}
        shown = False
        if result.get("labels") is not None:
            self.add_label_layer(result["labels"], result.get("geometry"), names, name=title, in_worker=True)
            shown = True
        elif result.get("mask") is not None:
            self.add_label_layer(result["mask"], None, names, name=title, in_worker=True)
            shown = True
        if result.get("findings") is not None:
            self.findings_panel.set_result(result, title)
        if result.get("boxes") is not None:
            self.add_boxes(result["boxes"], name=title)
            shown = True
        if result.get("image") is not None:
            self.add_comparison(result["image"], result.get("geometry"), name=title)
            shown = True
        extra = result.get("volumes_ml")
        if extra:
            self.context.notify("info", f"{title}: " + ", ".join(f"{k} {v} ml" for k, v in extra.items()), "")
        if not shown:
            self.context.notify("warning", f"{title}: the result has nothing this workspace can draw", "")
