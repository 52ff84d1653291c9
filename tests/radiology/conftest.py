"""Radiology fixtures: real pydicom/pydicom-data/nibabel files and small generated CT series."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from engines.radiology.samples import write_ct_series

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
CT5N = TEST_FILES / "dicomdirtests" / "98892001" / "CT5N"


def small_series(dest: Path, n: int = 20, **kwargs) -> list[Path]:
    """A 64x64 phantom CT (6 mm pixels, 12 mm slices: chest and abdomen in 20 slices)."""
    opts = {"rows": 64, "cols": 64, "pixel_mm": 6.0, "slice_mm": 12.0, "z0": -240.0}
    opts.update(kwargs)
    return write_ct_series(dest, n_slices=n, **opts)


@pytest.fixture
def ct_folder(tmp_path) -> Path:
    folder = tmp_path / "ct"
    small_series(folder)
    return folder


def open_in(window, qtbot, path: Path):
    """Open ``path`` in the radiology workspace of the main window and wait until it has settled."""
    view = window.switch_to("radiology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(path)
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    return view
