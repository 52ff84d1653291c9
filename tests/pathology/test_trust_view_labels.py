"""Labels tell the truth at the default size: the export button is not clipped, and zoom presets beyond the
scan's resolution say that they are upsampled."""
from __future__ import annotations

import pytest


@pytest.fixture
def opened(window, qtbot, small_pyramid):  # 0.5 µm/px: a 20x scan
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(small_pyramid)
    return view


def test_export_button_text_fits_at_the_default_size(opened, qtbot):
    view = opened
    view.tabs.setCurrentIndex(0)
    b = view.export_results_button
    qtbot.waitUntil(b.isVisible, timeout=5000)
    needed = b.fontMetrics().horizontalAdvance(b.text()) + 16  # text plus the style's minimal padding
    assert needed <= b.width(), (needed, b.width())
    assert b.sizeHint().width() <= b.width()
    assert "GeoJSON" in b.toolTip() and "heatmap" in b.toolTip()


def test_presets_above_the_scan_magnification_say_upsampled(opened):
    texts = [b.text() for b in opened.zoom_buttons]
    assert texts == ["1x", "2x", "5x", "10x", "20x", "40x (upsampled)"]
    assert "each shown 2 times larger" in opened.zoom_buttons[-1].toolTip()
