"""Render the radiology workspace with the bundled CT, an engine's label overlay and a detection box.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/radiology/screenshot_overlay.py /tmp/radiology.png \
        [--engine ct-tissue-threshold] [--layout three|single|side] [--outline] [--compare]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--engine", default="ct-tissue-threshold")
    parser.add_argument("--layout", default="three")
    parser.add_argument("--outline", action="store_true")
    parser.add_argument("--compare", default="", help="swipe, flicker, difference or side")
    parser.add_argument("--open", default="", help="file or folder to open instead of the sample")
    parser.add_argument("--size", default="1500x950")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.main_window import MainWindow, create_app
    from engines.radiology.overlays import Box

    app = create_app()
    window = MainWindow()
    w, h = (int(v) for v in args.size.split("x"))
    window.resize(w, h)
    window.show()
    view = window.switch_to("radiology")
    if args.open:
        view.open_path(Path(args.open))
    else:
        view.open_sample()
    for _ in range(2):
        window.tasks.wait_idle(300)
    if view.volume is None:
        print("no volume opened", file=sys.stderr)
        return 1
    if args.engine:
        view.run_engine(args.engine)
        window.tasks.wait_idle(300)
    vol = view.volume
    # the phantom's right-lung nodule, as a detection an engine would report
    if vol.modality == "CT" and vol.shape[0] > 60:
        z = vol.geometry.origin[2] + 0.7 * (vol.shape[0] - 1) * vol.geometry.spacing[2]
        view.add_boxes([Box((-82.0, -37.0, z - 9), (-58.0, -13.0, z + 9), "nodule", 0.91),
                        Box((40.0, 40.0, z - 5), (60.0, 60.0, z + 5), "nodule", 0.22)])
        k = int(round((z - vol.geometry.origin[2]) / vol.geometry.spacing[2]))
        i, j, _ = vol.geometry.lps_to_index([-70.0, -25.0, z])
        view.set_cursor(int(i), int(j), k)
    if args.outline and view.layers:
        view.outline_box.setChecked(True)
    if args.compare:
        from scipy import ndimage

        smooth = ndimage.gaussian_filter(vol.real(vol.voxels), sigma=(0, 2, 2))
        view.add_comparison(smooth, vol.geometry, name="Gaussian-smoothed (stand-in for a kernel engine)")
        view.compare_box.setCurrentText({"side": "Side by side"}.get(args.compare, args.compare.capitalize()))
    if args.layout == "single":
        view.set_layout("single", "axial")
    view.tabs.setCurrentIndex(1)
    for _ in range(10):
        app.processEvents()
        time.sleep(0.05)
    from engines.core.atomic import atomic_path

    with atomic_path(args.out) as tmp:
        window.grab().save(str(tmp), "PNG")
    for n in window.notifications.items:
        print(f"[{n.level}] {n.message}")
    window.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
