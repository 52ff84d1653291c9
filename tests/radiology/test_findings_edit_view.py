"""Wiring of finding editing in the radiology workspace (the logic is tested headless in
tests/engines/test_findings_edits.py): a simulated head CT opens in the brain window with the subdural preset
offered, E starts editing the current finding, dragging a handle of its box moves the box by the dragged
millimetres in patient coordinates, Ctrl+Z in the Review list undoes it, and the review keys reach the panel
inside the workspace (whose own shortcuts use some of the same keys)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from engines.radiology.windows import BRAIN_WINDOW

from .conftest import open_in
from .test_trust_measurements import drag, screen_point


@pytest.fixture(scope="module")
def head_series(tmp_path_factory):
    from engines.radiology_ai.head_ct_sim import sample_case, write_case

    case = sample_case()
    folder = tmp_path_factory.mktemp("head") / "ct"
    write_case(case, folder)
    return case, folder


def _lesion(case, volume):
    from engines.radiology.findings import Finding, MaskPatch

    mask = case.instances == 1
    idx = np.argwhere(mask)
    a = volume.geometry.index_to_lps(idx.min(0)[::-1] - 0.5)
    b = volume.geometry.index_to_lps(idx.max(0)[::-1] + 0.5)
    return Finding("F1", "intraparenchymal haemorrhage", 0.93, tuple(np.minimum(a, b)), tuple(np.maximum(a, b)),
                   volume_ml=5.66, mean_hu=55.5, mask=MaskPatch.from_full(mask), source="head-ct-haemorrhage")


def test_drag_a_handle_of_the_edited_box_moves_it_by_the_dragged_mm(window, qtbot, head_series):
    case, folder = head_series
    view = open_in(window, qtbot, folder)
    assert view.window == BRAIN_WINDOW and view.preset_box.currentText().startswith("1 Brain")
    assert view.preset_box.findText("2 Subdural  (W 200 L 80)") > 0
    panel = view.findings_panel
    view.set_window(400, 40)
    panel.set_result({"findings": [_lesion(case, view.volume)], "threshold": 0.5, "engine": "head-ct-haemorrhage",
                      "source": view.volume})
    assert view.window == BRAIN_WINDOW  # the haemorrhage review starts in the brain window
    view.tabs.setCurrentWidget(panel)
    panel.tree.setFocus()
    qtbot.keyClick(panel.tree, Qt.Key_E)
    assert view.session.editing == "F1" and panel.buttons["Edit"].isChecked()
    axial = view.views["axial"]
    roi = view.finding_editor.rois["axial"]
    assert roi.isVisible()
    # background work started by the review (statistics, engine checks) may still change the layout and so the
    # view's scale: let it finish before the drag is planned
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=30000)
    qtbot.wait(50)
    before = view.session.review.get("F1")
    h0, v0, h1, v1 = view.session.finding_rect("axial")
    assert (roi.pos().x(), roi.pos().y()) == pytest.approx((h0, v0)) and roi.size().x() == pytest.approx(h1 - h0)
    corner = screen_point(axial, h1, v1)  # the handle at the box's (max i, max j) corner
    qtbot.waitUntil(lambda: axial.graphics.itemAt(corner.toPoint()) is not None, timeout=5000)
    end = corner + QPointF(24, 16)
    a = axial.box.mapSceneToView(axial.graphics.mapToScene(corner.toPoint()))  # the drag in mm, as planned
    b = axial.box.mapSceneToView(axial.graphics.mapToScene(end.toPoint()))
    dh, dv = b.x() - a.x(), b.y() - a.y()
    drag(qtbot, axial, corner, end, pause_ms=40)
    assert dh > 3 and dv > 3  # the drag went right and down on the screen (down: posterior on an axial view)
    after = view.session.review.get("F1")
    # axial view: horizontal = i = patient x (left), vertical = j = y (posterior) on this LPS grid
    assert np.allclose(np.subtract(after.hi_mm, before.hi_mm), (dh, dv, 0.0), atol=0.05)
    assert np.allclose(after.lo_mm, before.lo_mm, atol=1e-6) and after.edited
    assert panel.tree.topLevelItem(0).text(3).endswith("edited")
    assert view.finding_editor.rois["coronal"].size().x() == pytest.approx(h1 - h0 + dh, abs=0.05)  # all planes
    qtbot.keyClick(panel.tree, Qt.Key_Z, Qt.ControlModifier)  # undo through the session's one history
    assert view.session.review.get("F1").hi_mm == before.hi_mm and not view.session.review.get("F1").edited
    qtbot.keyClick(panel.tree, Qt.Key_A)  # 'A' is the workspace's auto window too: the panel takes it
    assert view.session.review.get("F1").state == "accepted" and view.window == BRAIN_WINDOW
    qtbot.keyClick(panel.tree, Qt.Key_E)
    assert view.session.editing is None and not roi.isVisible()


def _editing_the_lesion(window, qtbot, head_series):
    """The head CT open in the workspace, its lesion under review and being edited."""
    case, folder = head_series
    view = open_in(window, qtbot, folder)
    view.findings_panel.set_result({"findings": [_lesion(case, view.volume)], "threshold": 0.5,
                                    "engine": "head-ct-haemorrhage", "source": view.volume})
    view.finding_editor.toggle()
    return view


def test_painting_the_edited_finding_remeasures_it_in_a_worker(window, qtbot, head_series):
    view = _editing_the_lesion(window, qtbot, head_series)
    view.tool_box.setCurrentText("Brush")
    assert not view.finding_editor.rois["axial"].translatable  # inside the box the brush paints
    h0, v0, h1, v1 = view.session.finding_rect("axial")
    axial = view.views["axial"]
    a = screen_point(axial, h1 + 4.0, (v0 + v1) / 2)
    drag(qtbot, axial, a, a + QPointF(0, 30))
    layer = view.session.finding_layer("F1")
    painted = int((layer.labels > 0).sum())
    assert painted > 283
    qtbot.waitUntil(lambda: view.session.review.get("F1").mask.voxels == painted, timeout=20000)
    f = view.session.review.get("F1")
    assert f.volume_ml == pytest.approx(painted * 0.02) and f.edited
    assert view.findings_panel.tree.topLevelItem(0).text(5) == f"{f.volume_ml:.2f}"


def _fast_drag(slice_view, a: QPointF, b: QPointF, steps: int = 4) -> None:
    """A left-button drag from ``a`` to ``b`` with no pause between its moves (the events come faster than
    pyqtgraph's scene takes moves, ~60 a second: all but the first are dropped), then the release at ``b``."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from .test_trust_measurements import _send

    port = slice_view.graphics.viewport()
    _send(port, QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    for n in range(1, steps + 1):
        _send(port, QEvent.MouseMove, a + (b - a) * (n / steps), Qt.NoButton, Qt.LeftButton)
    _send(port, QEvent.MouseButtonRelease, b, Qt.LeftButton, Qt.NoButton)
    QApplication.processEvents()


def _mm(slice_view, point: QPointF) -> tuple[float, float]:
    p = slice_view.box.mapSceneToView(slice_view.graphics.mapToScene(point.toPoint()))
    return p.x(), p.y()


def test_a_fast_drag_of_the_box_ends_where_the_pointer_ends(window, qtbot, head_series):
    view = _editing_the_lesion(window, qtbot, head_series)
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=30000)
    qtbot.wait(50)  # before the drag (not between its moves): the scene takes the drag's first move
    axial, session = view.views["axial"], view.session
    before = session.review.get("F1")
    h0, v0, h1, v1 = session.finding_rect("axial")
    # a handle: the (max i, max j) corner, dragged 48 x 32 pixels in four moves of 14 pixels (past the scene's
    # 5-pixel drag threshold at the first move) with no pause
    corner = screen_point(axial, h1, v1).toPoint()
    qtbot.waitUntil(lambda: axial.graphics.itemAt(corner) is not None, timeout=5000)
    end = QPointF(corner) + QPointF(48, 32)
    (ah, av), (bh, bv) = _mm(axial, QPointF(corner)), _mm(axial, end)
    _fast_drag(axial, QPointF(corner), end)
    after = session.review.get("F1")
    assert bh - ah > 5 and bv - av > 5
    assert np.abs(np.subtract(after.hi_mm, before.hi_mm) - (bh - ah, bv - av, 0.0)).max() < 0.5
    assert np.allclose(after.lo_mm, before.lo_mm, atol=1e-6)
    # the whole box, dragged from inside it the same way: it moves with the pointer to the release
    h0, v0, h1, v1 = session.finding_rect("axial")
    qtbot.wait(50)
    inside = screen_point(axial, (h0 + h1) / 2, (v0 + v1) / 2).toPoint()
    end = QPointF(inside) + QPointF(-40, 36)
    (ah, av), (bh, bv) = _mm(axial, QPointF(inside)), _mm(axial, end)
    moved_from = session.review.get("F1")
    _fast_drag(axial, QPointF(inside), end)
    moved = session.review.get("F1")
    shift = (bh - ah, bv - av, 0.0)
    assert np.abs(np.subtract(moved.lo_mm, moved_from.lo_mm) - shift).max() < 0.5
    assert np.abs(np.subtract(moved.hi_mm, moved_from.hi_mm) - shift).max() < 0.5


def test_a_new_result_puts_the_cursor_on_its_first_finding_and_a_click_brings_it_back(window, qtbot, head_series):
    case, folder = head_series
    view = open_in(window, qtbot, folder)
    lesion = _lesion(case, view.volume)
    centre = np.rint(view.volume.geometry.lps_to_index(lesion.centre)).astype(int)  # (i, j, k)
    assert list(view.cursor) != [int(v) for v in centre]
    panel = view.findings_panel
    panel.set_result({"findings": [lesion], "threshold": 0.5, "engine": "head-ct-haemorrhage", "source": view.volume})
    assert list(view.cursor) == [int(v) for v in centre]  # all three planes through the finding
    view.set_cursor(5, 5, 2)
    item = panel.tree.topLevelItem(0)
    qtbot.mouseClick(panel.tree.viewport(), Qt.LeftButton, pos=panel.tree.visualItemRect(item).center())
    assert list(view.cursor) == [int(v) for v in centre]
