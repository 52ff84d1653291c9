"""Screenshots of the pathology workspace with an analysis shown (heatmap + detections), offscreen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/pathology/screenshot.py --engine c4d-cnn \
        --out /tmp/pathology-overview.png --zoom-out /tmp/pathology-10x.png
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="c4d-cnn")
    ap.add_argument("--slide", default=None, help="slide to open (default: the bundled sample)")
    ap.add_argument("--out", default="/tmp/pathology-overview.png")
    ap.add_argument("--zoom-out", default="/tmp/pathology-zoom.png")
    ap.add_argument("--mag", type=float, default=10.0)
    ap.add_argument("--size", default="1400x900")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.main_window import MainWindow, create_app

    app = create_app()
    win = MainWindow()
    w, h = (int(v) for v in args.size.split("x"))
    win.resize(w, h)
    win.show()
    view = win.switch_to("pathology")
    if args.slide:
        view.open_path(Path(args.slide))
    else:
        view.open_sample()
    win.tasks.wait_idle(300)
    win.tasks.wait_idle(300)
    view.run_engine(args.engine)
    win.tasks.wait_idle(600)

    def settle() -> None:
        deadline = time.time() + 20
        while time.time() < deadline:
            app.processEvents()
            if view.canvas.visible_tiles_loaded() and not view.canvas.loader.pending:
                break
            time.sleep(0.02)
        for _ in range(5):
            app.processEvents()
            time.sleep(0.02)

    settle()
    win.grab().save(args.out)
    print("wrote", args.out)
    a = view.analysis
    if a is not None and len(a.detections):
        import numpy as np

        i = int(np.argmax(a.detections.scores))
        x, y = a.detections.xy[i]
        view.canvas.set_view(float(x), float(y), view.canvas.scale_for_magnification(args.mag) or 1.0)
        settle()
        win.grab().save(args.zoom_out)
        print("wrote", args.zoom_out)
    for n in win.notifications.items:
        print(f"[{n.level}] {n.message}")
    win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
