"""The Run engine menu knows which engines suit the open study: a CT greys out the diffusion-MR lesion models
(with the reason in the tooltip), an MR greys out kernel conversion; a result's warnings show as a banner."""
from __future__ import annotations

import numpy as np

from .conftest import small_series


def _open(window, qtbot, path):
    view = window.switch_to("radiology")
    with qtbot.waitSignal(view.opened, timeout=60000):
        view.open_path(path)
    qtbot.waitUntil(lambda: not window.tasks.active() and not view.contracts.pending, timeout=60000)
    return view


def _menu(view) -> dict[str, object]:
    view._fill_engine_menu()
    return {a.text(): a for a in view.engine_menu.actions()}


def test_a_ct_greys_out_the_diffusion_lesion_models_with_the_reason(window, qtbot, tmp_path):
    small_series(tmp_path / "ct", n=12)
    view = _open(window, qtbot, tmp_path / "ct")
    assert view.contracts.state("lesion-segmentation-se")[0] == "refused"
    actions = _menu(view)
    lesion = [a for t, a in actions.items() if t.startswith("Lesion") or "lesion" in t.lower()]
    assert lesion and all(not a.isEnabled() for a in lesion)
    assert all("not for this study" in a.text() for a in lesion)
    assert all("CT" in a.toolTip() or "diffusion" in a.toolTip().lower() for a in lesion)
    kernel = [a for t, a in actions.items() if "kernel" in t.lower()]
    assert kernel and all(a.isEnabled() for a in kernel)


def test_an_mr_greys_out_kernel_conversion(window, qtbot, tmp_path):
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    arr = (rng.random((16, 64, 64)) * 400 + 100).astype(np.int16)  # MR-like: no air at -1000
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((3.0, 3.0, 5.0))
    sitk.WriteImage(image, str(tmp_path / "mr.nii.gz"))
    view = _open(window, qtbot, tmp_path / "mr.nii.gz")
    assert view.contracts.state("ct-kernel-conversion")[0] == "refused"
    kernel = [a for t, a in _menu(view).items() if "kernel" in t.lower()]
    assert kernel and all(not a.isEnabled() for a in kernel)


def test_result_warnings_show_as_a_banner_and_in_messages(window, qtbot, tmp_path):
    from engines.core.checks import Check

    small_series(tmp_path / "ct", n=6)
    view = _open(window, qtbot, tmp_path / "ct")
    assert not view.check_banner.isVisible()
    engine = view.context.registry().get("ct-tissue-threshold")
    labels = np.zeros(view.volume.shape, np.uint8)
    labels[2, 10:20, 10:20] = 1
    view.show_engine_result(engine, {"labels": labels, "label_names": {1: "fat"},
                                     "checks": [Check("kernel", "warned", "the series is already sharp")]})
    assert view.check_banner.isVisible() and "already sharp" in view.check_banner.text()
    assert any("already sharp" in n.message for n in window.notifications.items if n.level == "warning")
    view.show_engine_result(engine, {"labels": labels, "label_names": {1: "fat"}, "checks": []})
    assert not view.check_banner.isVisible()
