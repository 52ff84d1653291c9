"""Rulers and ROIs as a user draws them: real mouse drags on the slice views, any zoom/pan/plane/spacing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from .conftest import small_series


def open_in(window, qtbot, path: Path):
    view = window.switch_to("radiology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(path)
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    return view


def anisotropic_volume(path: Path, spacing=(0.6, 0.9, 2.5), shape_kji=(24, 50, 40)) -> Path:
    """A NIfTI volume with three different spacings (written through SimpleITK, so the grid is LPS)."""
    import SimpleITK as sitk

    rng = np.random.default_rng(3)
    arr = rng.normal(40, 20, size=shape_kji).astype(np.int16)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _send(widget, kind, pos: QPointF, button, buttons) -> None:
    global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
    QApplication.sendEvent(widget, QMouseEvent(kind, pos, global_pos, button, buttons, Qt.NoModifier))


def screen_point(slice_view, h_mm: float, v_mm: float) -> QPointF:
    """Where a point given in the view's millimetres is on the screen (viewport pixels)."""
    return QPointF(slice_view.graphics.mapFromScene(slice_view.box.mapViewToScene(QPointF(h_mm, v_mm))))


def drag(qtbot, slice_view, a: QPointF, b: QPointF, steps: int = 8) -> None:
    """A left-button drag from ``a`` to ``b`` (viewport pixels), as the mouse sends it."""
    port = slice_view.graphics.viewport()
    _send(port, QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    for n in range(1, steps + 1):
        _send(port, QEvent.MouseMove, a + (b - a) * (n / steps), Qt.NoButton, Qt.LeftButton)
        qtbot.wait(5)
    _send(port, QEvent.MouseButtonRelease, b, Qt.LeftButton, Qt.NoButton)
    QApplication.processEvents()


def voxel_centre_mm(slice_view, spacing, voxel_h: int, voxel_v: int) -> tuple[float, float]:
    from app.workspaces.radiology.slice_view import AXIS_INDEX

    sh, sv = spacing[AXIS_INDEX[slice_view.h_axis]], spacing[AXIS_INDEX[slice_view.v_axis]]
    return (voxel_h + 0.5) * sh, (voxel_v + 0.5) * sv


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_a_dragged_ruler_reads_the_distance_between_the_voxels_at_any_zoom(window, qtbot, tmp_path, plane):
    view = open_in(window, qtbot, anisotropic_volume(tmp_path / "aniso.nii.gz"))
    spacing = view.volume.geometry.spacing
    assert spacing == pytest.approx((0.6, 0.9, 2.5))
    view.set_layout("single", plane)
    sv = view.views[plane]
    qtbot.waitUntil(lambda: sv.graphics.width() > 300 and sv.graphics.height() > 300)
    view.reset_views()
    QApplication.processEvents()
    view.tool_box.setCurrentText("Ruler")
    a_vox, b_vox = (5, 3), (30, 17)
    for zoom, pan in ((1.0, (0.0, 0.0)), (0.5, (4.0, -3.0)), (0.3, (-2.0, 5.0))):
        view.reset_views()
        sv.box.scaleBy((zoom, zoom))
        sv.box.translateBy(x=pan[0], y=pan[1])
        QApplication.processEvents()
        a_mm, b_mm = voxel_centre_mm(sv, spacing, *a_vox), voxel_centre_mm(sv, spacing, *b_vox)
        a, b = screen_point(sv, *a_mm), screen_point(sv, *b_mm)
        a, b = QPointF(round(a.x()), round(a.y())), QPointF(round(b.x()), round(b.y()))
        drag(qtbot, sv, a, b)
        expected = float(np.hypot(b_mm[0] - a_mm[0], b_mm[1] - a_mm[1]))
        ends = sv.ruler_points_mm()
        assert ends is not None
        for got, want in zip(ends, (a_mm, b_mm)):  # the line is drawn on the voxels it was dragged between
            assert got[0] == pytest.approx(want[0], abs=0.5) and got[1] == pytest.approx(want[1], abs=0.5)
        length = sv.ruler_length_mm()
        assert length == pytest.approx(expected, abs=0.5)
        assert f"{length:.1f} mm" in view.measure_label.text()
        # the screen distance is not the answer (the reported bug read "320.0 mm" for 320 px)
        screen = float(np.hypot(b.x() - a.x(), b.y() - a.y()))
        assert abs(screen - expected) > 1.0
