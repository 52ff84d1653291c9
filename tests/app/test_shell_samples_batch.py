"""File > Open Sample lists every workspace's samples (the real ones first); View > Batch opens the Batch dock."""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def _menu_texts(menu) -> list[str]:
    return [a.text() for a in menu.actions()]


def test_samples_menu_lists_real_and_generated_samples(window):
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    samples = next(a.menu() for a in file_menu.actions() if a.menu() is not None and "Sa&mple" in a.text())
    texts = _menu_texts(samples)
    assert any(t.startswith("Radiology: Real chest CT") for t in texts)
    assert any(t.startswith("Radiology: Generated") for t in texts)
    assert any("Real H&&E region" in t for t in texts)  # '&&' shows as one '&'


def test_the_real_ct_sample_opens_with_its_nodule_mask(window, qtbot, monkeypatch):
    import engines.radiology.samples as samples

    monkeypatch.setattr(samples, "LUNG1_DIR", DATA / "lung1-crop")  # the same case, cropped
    window.open_sample("radiology", "lung1-ct")
    view = window.view("radiology")
    qtbot.waitUntil(lambda: view.volume is not None and len(view.layers) == 1, timeout=60_000)
    assert view.layers[0].names.get(1) == "lung nodule"
    assert int((view.layers[0].labels == 1).sum()) == 837


def test_the_default_sample_falls_back_when_the_real_ct_was_not_fetched(window, qtbot, monkeypatch, tmp_path):
    import engines.radiology.samples as samples

    monkeypatch.setattr(samples, "LUNG1_DIR", tmp_path / "not-fetched")
    opened = []
    monkeypatch.setattr(type(window.view("radiology")), "open_path", lambda self, p: opened.append(Path(p)))
    monkeypatch.setattr(samples, "make_ct_series", lambda dest: Path(dest))  # no need to generate 96 slices
    window.open_sample("radiology")
    qtbot.waitUntil(lambda: bool(opened), timeout=30_000)
    messages = [n.message for n in window.notifications.items]
    assert any("instead" in m and "setup.sh" in m for m in messages), messages


def test_batch_dock_lists_engines_that_run_on_files(window):
    dock = window.show_batch()
    assert dock.isVisible() or not dock.isFloating()
    ids = [window.batch_panel.engine_box.itemData(i) for i in range(window.batch_panel.engine_box.count())]
    assert "otsu-segmentation" in ids and "ct-tissue-threshold" in ids and "chord-recognition" in ids
    assert window.show_batch() is dock  # one dock, reused
