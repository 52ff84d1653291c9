"""Open the radiology workspace offscreen, run both radiology AI engines through it, report what it shows.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/radiology_ai/check_view.py [--shots build/radiology_ai]

A manual integration check (not a test: the view belongs to the radiology workspace and changes under it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=Path, default=ROOT / "build/radiology_ai")
    args = ap.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from engines.core.samples import sample_path

    app = QApplication.instance() or QApplication([])
    win = MainWindow(detect_device=False)
    win.resize(1400, 900)
    win.show()

    def wait(cond, timeout=300):
        end = time.time() + timeout
        while time.time() < end and not cond():
            app.processEvents()
            time.sleep(0.02)
        return cond()

    for sample, engine_id in (("ct-kernel-pair", "ct-kernel-conversion"), ("dwi-lesions", "lesion-segmentation-se")):
        view = win.switch_to("radiology")
        before = view.volume
        view.open_path(sample_path(sample))
        wait(lambda: view.volume is not None and view.volume is not before and not win.tasks.active())
        layers_before = len(view.layers)
        view.run_engine(engine_id)
        wait(lambda: not win.tasks.active())
        for _ in range(20):
            app.processEvents()
        print(f"{engine_id}: volume {view.volume.shape}, label layers {layers_before} -> {len(view.layers)}, "
              f"comparison {view.comparison[0] if view.comparison else None}")
        print("  notifications:", [(n.level, n.message) for n in win.notifications.items][-3:])
        args.shots.mkdir(parents=True, exist_ok=True)
        shot = args.shots / f"view-{engine_id}.png"
        win.grab().save(str(shot))
        print("  screenshot:", shot)
    win.tasks.shutdown(10000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
