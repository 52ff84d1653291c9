"""The Batch dock: rows per input as they finish, a failed input named with its reason, results openable."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("distributed")


def test_batch_panel_runs_a_folder_and_opens_a_result(qtbot, tmp_path):
    from pydicom.data import get_testdata_file

    from app.batch_dock import BatchPanel
    from app.worker import TaskManager

    folder = tmp_path / "cohort"
    folder.mkdir()
    shutil.copyfile(get_testdata_file("CT_small.dcm"), folder / "a.dcm")
    (folder / "notes.txt").write_text("not an image")
    tasks = TaskManager()
    opened, notes = [], []
    panel = BatchPanel(tasks, lambda: [("otsu-segmentation", "Otsu threshold")], opened.append,
                       lambda level, msg, detail: notes.append((level, msg)))
    qtbot.addWidget(panel)
    panel.inputs_edit.setText(str(folder))
    panel.out_edit.setText(str(tmp_path / "out"))
    panel.start()
    assert panel.running and not panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.running and panel.start_button.isEnabled(), timeout=120_000)
    assert panel.table.rowCount() == 2
    rows = {panel.table.item(r, 0).text(): r for r in range(2)}
    assert panel.table.item(rows["a.dcm"], 1).text() == "done"
    assert panel.table.item(rows["notes.txt"], 1).text() == "failed"
    assert "notes.txt" in panel.table.item(rows["notes.txt"], 3).text()  # the reason names the file
    assert "1 done" in panel.status.text() and "1 failed" in panel.status.text()
    assert notes and notes[0][0] == "warning"
    panel.table.selectRow(rows["a.dcm"])
    assert panel.open_button.isEnabled()
    panel.open_selected()
    assert opened and Path(opened[0]).name == "mask.nii.gz" and Path(opened[0]).exists()
    tasks.shutdown()
