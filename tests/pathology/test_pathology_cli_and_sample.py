"""The bundled sample slide and the headless `csi-workstation run` path for the C4d engines."""
from __future__ import annotations

import json

import pytest

from app.cli import main
from engines.core.samples import sample_path
from engines.pathology.slide import open_slide


def test_ihc_sample_is_a_pyramid_with_resolution_and_tissue():
    path = sample_path("ihc-slide")
    assert path.name == "ihc-slide.tiff"
    with open_slide(path) as reader:
        m = reader.metadata
        assert m.dimensions == (6144, 4096) and m.level_count == 5 and m.mpp == pytest.approx(0.5, rel=1e-3)
        from engines.pathology.tiles import detect_tissue

        mask, cell = detect_tissue(reader, 512)
        assert 0.15 < mask.mean() < 0.8  # tissue and glass both present
    assert sample_path("ihc-slide") == path  # generated once


def test_cli_run_writes_geojson_heatmap_and_summary(small_pyramid, tmp_path, capsys):
    out = tmp_path / "c4d.geojson"
    code = main(["run", "c4d-deconvolution", str(small_pyramid), "--out", str(out), "--set", "max_tiles=3"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "c4d.summary.json").read_text())
    assert summary["tiles_analysed"] == 3 and summary["engine"] == "c4d-deconvolution"
    assert (tmp_path / "c4d.heatmap.tiff").stat().st_size > 0
    assert len(json.loads(out.read_text())["features"]) == summary["positive_structures"]


def test_cli_run_on_a_broken_slide_prints_one_line(fixtures_dir, tmp_path, capsys):
    code = main(["run", "c4d-cnn", str(fixtures_dir / "unreadable.svs"), "--out", str(tmp_path / "x.geojson")])
    err = capsys.readouterr().err
    assert code != 0 and "cannot read its tiles" in err and "Traceback" not in err
