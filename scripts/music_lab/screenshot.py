"""Screenshots of the music lab panel (offscreen): harmonizer on the sample melody with a locked chord, the
melody generator, and the covers matrix on the bundled clips.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/music_lab/screenshot.py --out build/music_lab/shots
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "build/music_lab/shots")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("CSI_WORKSTATION_HOME", tempfile.mkdtemp(prefix="music-lab-shot-"))
    import torch

    torch.set_num_threads(1)
    from PySide6.QtWidgets import QApplication, QMainWindow

    from app.worker import TaskManager
    from app.workspaces.base import ShellContext
    from app.workspaces.music.lab import MusicLabPanel
    from engines.core.registry import EngineRegistry

    app = QApplication.instance() or QApplication([])
    tasks = TaskManager()
    registry = EngineRegistry.discover()
    ctx = ShellContext(tasks=tasks, notify=lambda lvl, m, d: print(f"[{lvl}] {m}"), add_recent=lambda p: None,
                       registry=lambda: registry, device=lambda: "cpu")
    win = QMainWindow()
    panel = MusicLabPanel(ctx)
    win.setCentralWidget(panel)
    win.setWindowTitle("Music lab")
    win.resize(1400, 820)
    win.show()

    def settle(pred, timeout=300):
        t = time.time()
        while time.time() - t < timeout:
            app.processEvents()
            if pred():
                tasks.wait_idle(60)
                app.processEvents()
                return
            time.sleep(0.02)
        raise SystemExit("timed out")

    args.out.mkdir(parents=True, exist_ok=True)
    h = panel.harmonizer
    h.open_sample()
    settle(lambda: h.result is not None)
    first = h.result
    h.set_chord(2, "Dm")
    settle(lambda: h.result is not first)
    win.grab().save(str(args.out / "harmonizer.png"))
    panel.tabs.setCurrentIndex(1)
    g = panel.generator
    g.n_box.setValue(4)
    g.generate()
    settle(lambda: g.result is not None)
    win.grab().save(str(args.out / "generator.png"))
    if "cover-id" in registry:
        panel.tabs.setCurrentIndex(2)
        c = panel.covers
        c.use_sample()
        settle(lambda: c.result is not None)
        win.grab().save(str(args.out / "covers.png"))
    tasks.shutdown(10000)
    print("wrote", sorted(p.name for p in args.out.glob("*.png")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
