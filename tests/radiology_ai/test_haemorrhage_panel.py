"""The Review tab (app/workspaces/radiology/findings_panel.py) bound to FindingsReview: list, threshold slider,
keyboard accept/reject/next/undo, SR export keeping the review states."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engines.radiology.findings import Finding


def _findings():
    return [Finding(id=f"F{n}", type="subdural haemorrhage", score=s, lo_mm=(-10.0 + n, -5.0, 12.5),
                    hi_mm=(0.0 + n, 5.0, 18.5), volume_ml=1.0, mean_hu=65.0, slice_index=1)
            for n, s in enumerate((0.9, 0.7, 0.3), start=1)]


@pytest.fixture
def panel(qtbot):
    from app.workspaces.radiology.findings_panel import FindingsPanel

    p = FindingsPanel()
    qtbot.addWidget(p)
    p.set_result({"findings": _findings(), "threshold": 0.5, "engine": "head-ct-haemorrhage"})
    p.show()
    return p


def test_list_follows_threshold_slider(panel):
    assert panel.tree.topLevelItemCount() == 2
    panel.slider.setValue(20)
    assert panel.tree.topLevelItemCount() == 3
    assert panel.tree.topLevelItem(2).text(0) == "F3"
    panel.slider.setValue(80)
    assert [panel.tree.topLevelItem(n).text(0) for n in range(panel.tree.topLevelItemCount())] == ["F1"]


def test_keyboard_review(panel, qtbot):
    panel.tree.setFocus()
    qtbot.keyClick(panel.tree, Qt.Key_A)
    qtbot.keyClick(panel.tree, Qt.Key_N)
    qtbot.keyClick(panel.tree, Qt.Key_R)
    assert [f.state for f in panel.review.findings] == ["accepted", "rejected", "unreviewed"]
    assert panel.tree.topLevelItem(1).text(3).endswith("rejected")
    qtbot.keyClick(panel.tree, Qt.Key_Z, Qt.ControlModifier)
    assert panel.review.get("F2").state == "unreviewed"
    assert "1 accepted" in panel.summary.text()


def test_export_sr_keeps_states(panel, tmp_path):
    from engines.radiology.ct_tissue import open_volume
    from engines.radiology.sr import read_findings_sr
    from engines.radiology_ai.samples import write_series

    stored = (np.random.default_rng(1).normal(30, 4, (8, 32, 32)) + 1024).astype(np.int16)
    write_series(tmp_path / "ct", stored, spacing_xyz=(1.0, 1.0, 2.5), origin_lps=(-16.0, -16.0, 10.0),
                 modality="CT", description="t", header="693_UNCI.dcm", intercept=-1024.0)
    panel.source = open_volume(tmp_path / "ct")
    panel.review.reject("F2")
    panel.export_sr(str(tmp_path / "r.dcm"))
    back = {f.id: f.state for f in read_findings_sr(tmp_path / "r.dcm")[0]}
    assert back == {"F1": "unreviewed", "F2": "rejected", "F3": "unreviewed"}


def test_the_current_finding_is_described_in_full_below_the_list(panel, qtbot):
    text = panel.details.text()
    assert "F1" in text and "subdural haemorrhage" in text and "score 0.90" in text and "unreviewed" in text
    assert "10×10×6 mm" in text and "1.00 ml" in text and "mean 65 HU" in text and "slice 2" in text
    panel.tree.setFocus()
    qtbot.keyClick(panel.tree, Qt.Key_R)
    assert "F1" in panel.details.text() and "rejected" in panel.details.text()
    qtbot.keyClick(panel.tree, Qt.Key_N)
    assert "F2" in panel.details.text() and "score 0.70" in panel.details.text()
