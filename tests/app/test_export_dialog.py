"""Save dialogs open beside the source file with a default name, then in the folder of the last export."""
from __future__ import annotations

from pathlib import Path


def test_save_dialogs_start_beside_the_source_then_in_the_last_export_folder(qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog, QWidget

    from app.widgets import export_dialog

    monkeypatch.setattr(export_dialog, "_last_dirs", {})
    seen = []
    answers = iter([str(tmp_path / "exports" / "first.geojson"), ""])

    def fake(parent, title, start, filters):
        seen.append(start)
        return next(answers), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake))
    widget = QWidget()
    qtbot.addWidget(widget)
    slide = tmp_path / "slides" / "case7.svs"
    got = export_dialog.ask_save_path(widget, "pathology", "Export", slide, "case7.geojson", "GeoJSON (*.geojson)")
    assert got == tmp_path / "exports" / "first.geojson"
    assert Path(seen[0]) == tmp_path / "slides" / "case7.geojson"  # beside the slide, never the working folder
    assert export_dialog.ask_save_path(widget, "pathology", "Export", slide, "case7.geojson", "*") is None
    assert Path(seen[1]) == tmp_path / "exports" / "case7.geojson"  # then where the user exported last
    assert export_dialog.default_save_path("music", None, "melody.mid") == Path.home() / "melody.mid"
