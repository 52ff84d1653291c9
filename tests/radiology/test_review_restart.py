"""The findings review survives a restart: a detector's findings on a simulated head CT (one real lesion)
are reviewed in the workspace - one accepted, one rejected, one box edited, the lesion's mask painted - the
autosave writes, the window closes, and a new window on the same study finds the same Review list, states,
boxes (within 0.5 mm) and masks, each mask tied to its finding (not a plain label layer)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt

from .conftest import open_in
from .test_findings_edit_view import _lesion, head_series  # noqa: F401 - the module's head CT fixture


def _findings(case, volume):
    """The lesion (F1, with its mask) and two boxes elsewhere in the head (F2, F3) as a detector gives them."""
    from dataclasses import replace

    lesion = _lesion(case, volume)
    lo, hi = np.asarray(lesion.lo_mm), np.asarray(lesion.hi_mm)
    shift = np.array([0.0, 0.0, 0.0])
    shift[0] = -(hi[0] - lo[0]) - 20.0  # beside it, on the same slices
    other = replace(lesion, id="F2", score=0.81, lo_mm=tuple(lo + shift), hi_mm=tuple(hi + shift), mask=None)
    third = replace(lesion, id="F3", type="subdural haemorrhage", score=0.66, lo_mm=tuple(lo - shift),
                    hi_mm=tuple(hi - shift), mask=None)
    return [lesion, other, third]


def _key(qtbot, panel, fid: str, key) -> None:
    panel.review.select(fid)
    panel.tree.setFocus()
    qtbot.keyClick(panel.tree, key)


def test_the_review_comes_back_after_a_restart(window, qtbot, head_series):  # noqa: F811 - the fixture
    from app.main_window import MainWindow

    case, folder = head_series
    first = window
    view = open_in(first, qtbot, folder)
    session, panel = view.session, view.findings_panel
    panel.set_result({"findings": _findings(case, view.volume), "threshold": 0.5, "engine": "head-ct-haemorrhage",
                      "source": view.volume})
    view.tabs.setCurrentWidget(panel)
    _key(qtbot, panel, "F1", Qt.Key_A)
    _key(qtbot, panel, "F2", Qt.Key_R)
    # F3: its box resized in the axial view, as a drag of its handles ends (the editor takes the rectangle)
    _key(qtbot, panel, "F3", Qt.Key_E)
    assert session.editing == "F3"
    roi = view.finding_editor.rois["axial"]
    roi.setSize(QPointF(roi.size().x() + 6.0, roi.size().y() + 4.0), finish=True)
    edited = session.review.get("F3")
    assert edited.edited and edited.hi_mm[0] > session.review.original("F3").hi_mm[0] + 5.0
    # F1: its mask painted with the brush (its own mask layer; editing follows the finding chosen)
    panel.review.select("F1")
    assert session.editing == "F1"
    view.tool_box.setCurrentText("Brush")
    h0, v0, h1, v1 = session.finding_rect("axial")
    axial = view.views["axial"]
    axial.paint_requested.emit("axial", h1 + 3.0, (v0 + v1) / 2, True, False)
    axial.paint_requested.emit("axial", h1 + 3.0, (v0 + v1) / 2 + 6.0, False, True)
    painted = session.finding_layer("F1").labels > 0
    assert painted.sum() > case.findings[0]["voxels"]
    qtbot.keyClick(panel.tree, Qt.Key_E)  # editing ends
    # the autosave writes (1 s after the last change, in a worker)
    path = session.autosave_file()
    qtbot.waitUntil(lambda: path.exists() and not view.autosave.timer.isActive() and not first.tasks.active(),
                    timeout=30000)
    before = {f.id: f for f in session.review.findings}
    assert np.array_equal(before["F1"].mask.full(view.volume.shape), painted)  # measured by the worker
    rows = [panel.tree.topLevelItem(n).text(3) for n in range(panel.tree.topLevelItemCount())]
    first.close()  # the workspace shuts down (its last autosave is written)

    second = MainWindow(detect_device=False)  # a new window, as after a restart
    qtbot.addWidget(second)
    second.show()
    again = open_in(second, qtbot, folder)
    review = again.session.review
    qtbot.waitUntil(lambda: len(review.findings) == 3, timeout=30000)  # restored by a background task
    assert [f.id for f in review.findings] == ["F1", "F2", "F3"]
    after = {f.id: f for f in review.findings}
    assert {i: f.state for i, f in after.items()} == {"F1": "accepted", "F2": "rejected", "F3": "unreviewed"}
    for fid in after:
        assert np.abs(np.subtract(after[fid].lo_mm, before[fid].lo_mm)).max() < 0.5
        assert np.abs(np.subtract(after[fid].hi_mm, before[fid].hi_mm)).max() < 0.5
    assert after["F3"].edited and after["F1"].edited and not after["F2"].edited
    assert np.array_equal(after["F1"].mask.full(again.volume.shape), painted)  # the mask tied to its finding
    assert np.array_equal(again.session.finding_layer("F1").labels > 0, painted)
    assert after["F2"].mask is None and after["F3"].mask is None
    assert not any(layer.name.endswith("(autosaved edits)") for layer in again.layers)  # no plain label layer
    panel2 = again.findings_panel
    assert [panel2.tree.topLevelItem(n).text(3) for n in range(panel2.tree.topLevelItemCount())] == rows
    assert rows == ["✓ accepted · edited", "✗ rejected", "edited"]
    assert panel2.export_sr_button.isEnabled() and panel2.engine == "head-ct-haemorrhage"
    said = [(n.level, n.message) for n in second.notifications.items]
    assert ("info", "Restored the review of 3 finding(s) from the autosave (1 accepted, 1 rejected, 1 to review, "
                    "2 edited)") in said
    assert not [m for level, m in said if level in ("warning", "error")], said
    again.session.edit_finding("F1")  # editing goes on in the finding's own mask layer
    assert again.session.current_layer() is again.session.finding_layer("F1")
    second.close()
