"""Slice scrolling, offscreen: plain pyqtgraph ImageItem vs the radiology workspace (W/L, crosshair, a label
overlay, outline mode), 512² slices, each slice painted before the next.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/radiology/bench_scroll.py [--slices 96] [--passes 2]

The three-view workspace also repaints the coronal and sagittal crosshairs on every step. "paints" counts
the paint events of the scrolled view's viewport during the timed steps (one per slice expected).
Uses the bundled ct-series sample (512 x 512 x 96) and the ct-tissue-threshold engine's label map.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from app.workspaces.radiology.view import RadiologyWorkspace
    from app.workspaces.radiology import MANIFEST
    from app.workspaces.base import ShellContext
    from app.worker import TaskManager
    from engines.core.samples import sample_path
    from engines.radiology.ct_tissue import CtTissueThresholdEngine
    from engines.radiology.reader import load_series, scan_dicom

    app = QApplication.instance() or QApplication([])
    volume = load_series(scan_dicom(sample_path("ct-series")).image_series()[0])
    nk = volume.shape[0]
    labels = CtTissueThresholdEngine().predict({"volume": volume})["labels"]

    from PySide6.QtCore import QEvent, QObject

    class PaintCounter(QObject):
        """Counts paint events of a viewport: proof that every slice was drawn, not just queued."""

        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Paint:
                self.count += 1
            return False

    def paint(widget) -> None:
        app.processEvents()  # delivers the update request: the scene is painted into the backing store

    # 1. plain pyqtgraph: one ImageItem in a ViewBox, levels set per slice
    gv = pg.GraphicsView()
    vb = pg.ViewBox(lockAspect=True)
    gv.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    gv.resize(700, 700)
    gv.show()
    item.setImage(volume.voxels[0], levels=(824, 1224))
    vb.autoRange()
    counter = PaintCounter()
    gv.viewport().installEventFilter(counter)
    rows = []
    for label, fn in [("pyqtgraph ImageItem + W/L", lambda k: (item.setImage(volume.voxels[k], autoLevels=False,
                                                                             levels=(824, 1224)), paint(gv)))]:
        counter.count = 0
        rows.append((label, measure(fn, nk, args.passes), counter.count))
    gv.close()

    # 2. the workspace (three views; scrolling redraws the axial view, moves the other crosshairs)
    tasks = TaskManager()
    notes = []
    ctx = ShellContext(tasks=tasks, notify=lambda *a: notes.append(a), add_recent=lambda p: None,
                       registry=lambda: None, device=lambda: "cpu")
    view = RadiologyWorkspace(MANIFEST, ctx)
    view.resize(1400, 850)
    view.show()
    view.set_volume(volume)
    app.processEvents()
    ax = view.views["axial"].graphics
    ax.viewport().installEventFilter(counter)

    def step(k):
        view.set_cursor(view.cursor[0], view.cursor[1], k)
        paint(ax)

    def timed(label):
        counter.count = 0
        rows.append((label, measure(step, nk, args.passes), counter.count))

    timed("workspace, W/L, no overlay")
    view.add_label_layer(labels, volume.geometry, {1: "body", 2: "lung", 3: "bone"}, name="tissue")
    timed("workspace + label overlay")
    view.outline_box.setChecked(True)
    timed("workspace + overlay outline")
    view.outline_box.setChecked(False)
    view.add_comparison(volume.real(volume.voxels) + 10.0, volume.geometry, "plus 10")
    view.compare_box.setCurrentText("Swipe")
    timed("workspace + overlay + swipe")
    view.compare_box.setCurrentText("Off")
    import numpy as np

    rng = np.random.default_rng(0)
    corners = rng.integers(0, 480, size=(3000, 3)) * [1, 1, 0] + rng.integers(0, nk - 4, size=(3000, 1)) * [0, 0, 1]
    view.add_boxes([{"min_index": list(c), "max_index": list(c + [20, 20, 3]), "score": float(sc)}
                    for c, sc in zip(corners, rng.uniform(0, 1, 3000))], threshold=0.0)
    view.threshold.setValue(0)
    timed("workspace + overlay + 3000 boxes")
    print(f"512 x 512 slices, {nk} per pass, {args.passes} passes, offscreen, each slice painted")
    print(f"{'':<32}{'slices/s':>10}{'ms/slice':>10}{'paints':>8}")
    for label, rate, paints in rows:
        print(f"{label:<32}{rate:>10.0f}{1000 / rate:>10.2f}{paints:>8}")
    view.shutdown()
    tasks.shutdown(2000)
    return 0


def measure(fn, n: int, passes: int) -> float:
    fn(0)
    t = time.perf_counter()
    count = 0
    for p in range(passes):
        order = range(n) if p % 2 == 0 else range(n - 1, -1, -1)
        for k in order:
            fn(k)
            count += 1
    return count / (time.perf_counter() - t)


if __name__ == "__main__":
    raise SystemExit(main())
