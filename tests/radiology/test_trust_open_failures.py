"""A failed open is a plain message in the view, never a view stuck on 'loading…'."""
from __future__ import annotations

import pydicom

from .conftest import small_series


def errors(window) -> list[str]:
    return [n.message for n in window.notifications.items if n.level == "error"]


def test_a_reader_failure_after_the_first_pixels_leaves_no_loading(window, qtbot, tmp_path, monkeypatch):
    from engines.radiology import reader

    small_series(tmp_path / "ct", n=4)

    def broken(series, *, progress=None, cancel=None, on_first_slice=None):
        raise ValueError("cannot reshape array of size 12288 into shape (64,64)")

    monkeypatch.setattr(reader, "load_series", broken)
    view = window.switch_to("radiology")
    view.open_path(tmp_path / "ct")
    qtbot.waitUntil(lambda: bool(errors(window)), timeout=30000)
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=30000)
    corner = view.views["axial"].corner.text()
    assert "loading" not in corner and "ct could not be opened" in corner
    assert "cannot reshape" in errors(window)[0] and "cannot reshape" in view.readout.text()
    assert view.volume is None


def test_a_result_the_view_cannot_show_is_a_message_not_a_crash(window, qtbot, tmp_path, monkeypatch):
    small_series(tmp_path / "ct", n=4)
    view = window.switch_to("radiology")

    def fails(volume, **_options):
        raise ValueError("operands could not be broadcast together with shapes (3,64,64) (64,64)")

    monkeypatch.setattr(view, "set_volume", fails)
    view.open_path(tmp_path / "ct")
    qtbot.waitUntil(lambda: bool(errors(window)), timeout=30000)
    assert errors(window)[0].startswith("Showing ct failed: operands could not be broadcast")
    assert "loading" not in view.views["axial"].corner.text()


def test_pixel_data_three_times_too_long_opens_with_a_finding(window, qtbot, tmp_path):
    paths = small_series(tmp_path / "ct", n=4)
    for p in paths:  # 3 x Rows x Columns of pixel data, the header says one frame
        ds = pydicom.dcmread(p)
        ds.PixelData = ds.PixelData * 3
        ds.save_as(p)
    view = window.switch_to("radiology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(tmp_path / "ct")
    qtbot.waitUntil(lambda: not window.tasks.active(), timeout=60000)
    assert view.volume is not None and view.volume.shape == (4, 64, 64)
    assert "loading" not in view.views["axial"].corner.text()
    assert any("pixel data" in n.message for n in window.notifications.items if n.level == "warning")
