"""Screenshots a clinician or musician checks: a ruler on a real-size CT with its reading, the label list with
volumes after opening a label map, and the music window at 1280 x 720.

    xvfb-run -a .venv/bin/python scripts/screenshots/trust_screenshots.py OUT_DIR

Uses the real chest CT sample (pyradiomics lung1, fetched by setup) and the music workspace's sample. The ruler
is dragged with real mouse events between two voxel centres 300 voxels apart on one row (300 x 0.5703 mm =
171.1 mm), so the screenshot shows whether the reading and the drawn line agree with the anatomy.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eventloop import open_workstation  # noqa: E402


def main(out: Path) -> int:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from engines.core.samples import sample_path

    out.mkdir(parents=True, exist_ok=True)
    _app, win, pump, wait = open_workstation(1400, 900)
    view = win.switch_to("radiology")
    view.open_path(sample_path("lung1-ct"))
    wait(lambda: view.volume is not None and len(view.layers) == 1 and not win.tasks.active())
    pump(1.0)
    view.set_layout("single", "axial")
    pump(0.5)
    view.set_cursor(256, 360, 33)  # through the nodule (voxel j 347-372, slice 32-34)
    view.reset_views()
    pump(0.5)
    sv = view.views["axial"]
    view.tool_box.setCurrentText("Ruler")
    spacing = view.volume.geometry.spacing

    def screen(i_vox: int, j_vox: int) -> QPointF:
        mm = QPointF((i_vox + 0.5) * spacing[0], (j_vox + 0.5) * spacing[1])
        return QPointF(sv.graphics.mapFromScene(sv.box.mapViewToScene(mm)))

    def send(kind, pos, button, buttons):
        port = sv.graphics.viewport()
        QApplication.sendEvent(port, QMouseEvent(kind, pos, QPointF(port.mapToGlobal(pos.toPoint())), button,
                                                 buttons, Qt.NoModifier))

    a, b = screen(106, 300), screen(406, 300)
    send(QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    for n in range(1, 11):
        send(QEvent.MouseMove, a + (b - a) * (n / 10), Qt.NoButton, Qt.LeftButton)
        pump(0.02)
    send(QEvent.MouseButtonRelease, b, Qt.LeftButton, Qt.NoButton)
    pump(0.5)
    print("ruler reading:", view.measure_label.text(), "expected 171.1 mm")
    win.grab().save(str(out / "radiology-ruler-lung1.png"))
    for index in range(view.tabs.count()):
        if view.tabs.tabText(index).lower().startswith("layers"):
            view.tabs.setCurrentIndex(index)
    pump(1.0)
    win.grab().save(str(out / "radiology-label-list-lung1.png"))

    win.resize(1280, 720)
    music = win.switch_to("music")
    music.open_sample()
    wait(lambda: not win.tasks.active(), timeout=300)
    pump(2.0)
    print("window size with music open:", win.width(), "x", win.height())
    win.grab().save(str(out / "music-1280x720.png"))
    win.close()
    pump(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/screenshots")))
