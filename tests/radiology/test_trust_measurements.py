"""Rulers and ROIs as a user draws them: real mouse drags on the slice views, any zoom/pan/plane/spacing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from .conftest import open_in, small_series


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


def drag(qtbot, slice_view, a: QPointF, b: QPointF, steps: int = 8, pause_ms: int = 5) -> None:
    """A left-button drag from ``a`` to ``b`` (viewport pixels), as the mouse sends it. pyqtgraph's scene
    rate-limits mouse moves (about 60 a second) and a ROI handle follows moves, not the release: a drag of its
    handles needs ``pause_ms`` of ~40 so the last move is not dropped."""
    port = slice_view.graphics.viewport()
    _send(port, QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    for n in range(1, steps + 1):
        _send(port, QEvent.MouseMove, a + (b - a) * (n / steps), Qt.NoButton, Qt.LeftButton)
        qtbot.wait(pause_ms)
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
        length = view.measurements.items[-1].length_mm
        assert length == pytest.approx(expected, abs=0.5)
        assert f"{length:.1f} mm" in view.measure_label.text()
        # the screen distance is not the answer (the reported bug read "320.0 mm" for 320 px)
        screen = float(np.hypot(b.x() - a.x(), b.y() - a.y()))
        assert abs(screen - expected) > 1.0


# -- measurements belong to their slice ------------------------------------------------------------------
def test_measurement_model_measures_in_patient_space_without_qt():
    from engines.radiology.geometry import Geometry
    from engines.radiology.measurements import MeasurementSet, make_roi, make_ruler

    g = Geometry((0.6, 0.9, 2.5), (10.0, -20.0, 5.0))
    ruler = make_ruler("sagittal", 7, ((2 + 0.5) * 0.9, (1 + 0.5) * 2.5), ((12 + 0.5) * 0.9, (9 + 0.5) * 2.5), g)
    assert ruler.start_ijk == pytest.approx((7, 2, 1)) and ruler.end_ijk == pytest.approx((7, 12, 9))
    assert ruler.start_lps == pytest.approx(g.index_to_lps([7, 2, 1]))
    assert ruler.length_mm == pytest.approx(np.hypot(10 * 0.9, 8 * 2.5))
    data = np.arange(20 * 30, dtype=float).reshape(20, 30)  # a coronal slice: rows k, columns i
    roi = make_roi("coronal", 4, (1.0, 2.6), (3.1, 7.4), g, data, "HU")  # touches columns 1..5, rows 1..2
    assert roi.stats.n == 5 * 2 and roi.stats.mean == pytest.approx(data[1:3, 1:6].mean())
    assert roi.stats.area_mm2 == pytest.approx(10 * 0.6 * 2.5)
    assert np.ravel(roi.view_points_mm(g.spacing)) == pytest.approx([0.6, 2.5, 6 * 0.6, 3 * 2.5])  # snapped edges
    events = []
    ms = MeasurementSet()
    ms.subscribe(lambda event, m: events.append((event, m.name if m else None)))
    ms.add(ruler)
    ms.add(roi)
    assert [m.name for m in ms] == ["Ruler 1", "ROI 1"]
    assert ms.on_slice("sagittal", 7) == [ruler] and ms.on_slice("sagittal", 8) == []
    ms.remove(ruler.id)
    assert list(ms) == [roi]
    ms.clear()
    assert events == [("added", "Ruler 1"), ("added", "ROI 1"), ("removed", "Ruler 1"), ("cleared", None)]


def test_an_roi_is_shown_listed_and_measured_only_on_its_slice(window, qtbot, tmp_path):
    small_series(tmp_path / "ct", n=20)
    view = open_in(window, qtbot, tmp_path / "ct")
    axial = view.views["axial"]
    view.set_cursor(32, 32, 15)
    view.tool_box.setCurrentText("ROI")
    axial.tool_drag(QPointF(100, 110), QPointF(200, 170), True)  # not on pixel edges: snapped to 16..34, 18..29
    qtbot.waitUntil(lambda: len(view.measurements) == 1, timeout=10000)  # measured in a worker
    roi = view.measurements.items[-1]
    assert (roi.plane, roi.slice_index) == ("axial", 15)
    region = view.volume.real(view.volume.voxels[15, 18:29, 16:34])
    assert roi.stats.n == region.size and roi.stats.mean == pytest.approx(float(region.mean()), abs=0.01)
    (kind, a, b, _text), = axial.drawn  # what is drawn is what was measured: whole pixels of 6 mm
    assert kind == "roi" and a == pytest.approx((16 * 6.0, 18 * 6.0)) and b == pytest.approx((34 * 6.0, 29 * 6.0))
    tree = view.measure_panel.tree
    assert tree.topLevelItemCount() == 1
    assert [tree.topLevelItem(0).text(c) for c in range(3)] == ["ROI 1", "axial", "16"]
    assert tree.topLevelItem(0).text(3).startswith(f"mean {roi.stats.mean:.1f}")
    view.scroll("axial", 1)
    assert axial.drawn == [] and not any(item.isVisible() for item in axial._drawn_items)
    assert view.views["coronal"].drawn == []  # not drawn on the other planes either
    view.tool_box.setCurrentText("Ruler")
    axial.tool_drag(QPointF(30, 30), QPointF(90, 30), True)  # slice 16 gets its own ruler
    assert [m.slice_index for m in view.measurements] == [15, 16] and len(axial.drawn) == 1
    view.scroll("axial", -1)
    assert [d[0] for d in axial.drawn] == ["roi"]
    # a double-click on the list goes to the measurement's slice; Delete removes it from the list and the view
    view.measure_panel._go_to(tree.topLevelItem(1))
    assert view.cursor[2] == 16 and [d[0] for d in axial.drawn] == ["ruler"]
    tree.topLevelItem(1).setSelected(True)
    view.measure_panel.delete_selected()
    assert [m.name for m in view.measurements] == ["ROI 1"] and axial.drawn == []
    assert tree.topLevelItemCount() == 1
