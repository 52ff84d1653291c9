"""Export offers what the image allows and opens where the user's files are."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QFileDialog

from .conftest import open_in, small_series
from .test_trust_measurements import anisotropic_volume


def test_dicom_seg_is_offered_only_for_a_dicom_series(window, qtbot, tmp_path):
    view = open_in(window, qtbot, anisotropic_volume(tmp_path / "scan.nii.gz"))
    view.add_label_layer(np.ones(view.volume.shape, np.uint8), None, {1: "all"}, name="mask")
    view.export_menu.aboutToShow.emit()
    seg, nifti = view.export_menu.actions()[:2]
    assert not seg.isEnabled() and "needs a DICOM series" in seg.text()
    assert "scan.nii.gz is not a DICOM series" in seg.toolTip() and "NIfTI" in seg.toolTip()
    assert nifti.isEnabled()
    assert view.export_seg(tmp_path / "x.dcm") is None and not (tmp_path / "x.dcm").exists()
    assert any("x.dcm not written" in n.message for n in window.notifications.items if n.level == "warning")
    small_series(tmp_path / "ct", n=6)
    view = open_in(window, qtbot, tmp_path / "ct")
    view.export_menu.aboutToShow.emit()
    assert seg.isEnabled() and seg.text() == "Label layer as DICOM SEG…"


def test_export_dialogs_open_beside_the_source_then_in_the_last_export_folder(window, qtbot, tmp_path, monkeypatch):
    asked = []
    answers = iter([str(tmp_path / "out" / "first.dcm"), ""])
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda parent, title, start, filters: (asked.append(Path(start)), (next(answers), filters))[1])
    small_series(tmp_path / "study" / "ct", n=6)
    view = open_in(window, qtbot, tmp_path / "study" / "ct")
    labels = np.zeros(view.volume.shape, np.uint8)
    labels[2, 10:20, 10:20] = 1
    view.add_label_layer(labels, None, {1: "lesion"}, name="liver lesions")
    view._export_dialog("seg")
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=30000)
    assert asked[0] == tmp_path / "study" / "ct-liver_lesions-seg.dcm"  # beside the series folder
    assert (tmp_path / "out" / "first.dcm").exists()
    view._export_dialog("nifti")
    assert asked[1] == tmp_path / "out" / "ct-liver_lesions.nii.gz"  # the last export folder


def test_a_volume_file_exports_beside_itself(window, qtbot, tmp_path, monkeypatch):
    from app.workspaces.radiology.export_menu import default_export_path

    view = open_in(window, qtbot, anisotropic_volume(tmp_path / "scans" / "head.nii.gz"
                                                     if (tmp_path / "scans").mkdir() is None else None))
    assert default_export_path("nifti", view.volume, "tumour") == tmp_path / "scans" / "head-tumour.nii.gz"
    assert default_export_path("boxes", view.volume) == tmp_path / "scans" / "head-boxes.json"
