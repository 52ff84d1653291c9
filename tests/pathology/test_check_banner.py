"""A C4d analysis whose input checks warn (a picture with no microns per pixel) shows a banner over the slide."""
from __future__ import annotations


def test_an_analysis_with_warnings_shows_a_banner(window, qtbot, tmp_path):
    from PIL import Image
    from skimage import data

    png = tmp_path / "ihc-field.png"
    Image.fromarray(data.immunohistochemistry()).save(png)  # real DAB tissue, but no pixel size in a PNG
    view = window.switch_to("pathology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(png)
    view.engine_combo.setCurrentIndex(view.engine_combo.findData("c4d-deconvolution"))
    with qtbot.waitSignal(view.analysis_finished, timeout=180000) as blocker:
        view.run_selected_engine()
    analysis = blocker.args[0]
    warned = [c for c in analysis.checks if c.status == "warned"]
    assert warned, "a PNG has no microns per pixel: the contract should warn"
    assert view.check_banner.isVisible() and warned[0].reason[:30] in view.check_banner.text()
    assert any(n.level == "warning" and "c4d-deconvolution" in n.message for n in window.notifications.items)
