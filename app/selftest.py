"""`csi-workstation self-test`: every workspace opened offscreen on its sample, every engine run on its sample."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _result(kind: str, name: str, status: str, seconds: float, detail: str = "") -> dict:
    return {"kind": kind, "name": name, "status": status, "seconds": seconds, "detail": detail}


def run_self_test(timeout_s: float = 300.0) -> list[dict]:
    from app.main_window import MainWindow, create_app

    results: list[dict] = []
    app = create_app()
    window = MainWindow()
    window.show()
    for manifest in window.manifests:
        start = time.perf_counter()
        before = len(window.notifications.items)
        try:
            view = window.switch_to(manifest.id)
            opened: list[str] = []
            view.opened.connect(opened.append)
            if manifest.sample:
                view.open_sample()
                ok = window.tasks.wait_idle(timeout_s) and window.tasks.wait_idle(timeout_s)
                app.processEvents()
                errors = [n.message for n in window.notifications.items[before:] if n.level == "error"]
                if errors:
                    status, detail = "FAIL", errors[0]
                elif not ok:
                    status, detail = "FAIL", f"sample did not open within {timeout_s:.0f} s"
                elif not opened:
                    status, detail = "FAIL", "the sample was prepared but the view never reported it open"
                else:
                    status, detail = "ok", f"opened sample '{manifest.sample}'"
            else:
                status, detail = "ok", "opened (no bundled sample yet)"
        except Exception as exc:  # noqa: BLE001 - report and go on
            status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
        results.append(_result("workspace", manifest.id, status, time.perf_counter() - start, detail))
    errors = [n.message for n in window.notifications.items if n.level == "error"]
    window.close()
    app.processEvents()

    results.extend(run_engine_checks(timeout_s))
    if errors and all(r["status"] == "ok" for r in results if r["kind"] == "workspace"):
        results.append(_result("shell", "notifications", "FAIL", 0.0, errors[0]))
    return results


def run_engine_checks(timeout_s: float = 300.0) -> list[dict]:
    from engines.core.device import resolve_device
    from engines.core.registry import EngineRegistry
    from engines.core.runner import run_engine

    results: list[dict] = []
    registry = EngineRegistry.discover()
    for name, err in registry.errors.items():
        results.append(_result("engine", name, "FAIL", 0.0, f"plugin failed to load: {err}"))
    device = resolve_device().device
    for engine_id in registry.ids():
        start = time.perf_counter()
        engine = registry.get(engine_id)
        try:
            samples = engine.sample_paths()
            if not samples:
                results.append(_result("engine", engine_id, "FAIL", 0.0, "no sample input"))
                continue
            request = engine.request_from_paths(samples)
            result = run_engine(engine, request, device=device)
            with tempfile.TemporaryDirectory() as tmp:
                written = engine.write_result(result, Path(tmp) / engine.default_output_name())
                missing = [p for p in written if not Path(p).exists() or Path(p).stat().st_size == 0]
            if missing:
                raise RuntimeError(f"wrote nothing to {missing[0]}")
            results.append(_result("engine", engine_id, "ok", time.perf_counter() - start,
                                   f"on {device}: {', '.join(Path(p).name for p in written)}"))
        except Exception as exc:  # noqa: BLE001
            results.append(_result("engine", engine_id, "FAIL", time.perf_counter() - start,
                                   f"{type(exc).__name__}: {exc}"))
        finally:
            engine.unload()
    return results
