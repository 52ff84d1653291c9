"""inspect / filetypes / samples / the classical engine on real files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from engines.classical.otsu import OtsuSegmentationEngine
from engines.core.engine import EngineError
from engines.core.filetypes import classify
from engines.core.inspect import inspect_path
from engines.core.samples import sample_path


def test_classify_real_files(shared_data, tmp_path):
    fixtures = shared_data / "openslide-fixtures"
    assert classify(get_testdata_file("CT_small.dcm")) == "dicom"
    assert classify(fixtures / "small.svs") == "slide"
    assert classify(fixtures / "boxes.tiff") == "slide"
    assert classify(fixtures / "boxes.png") == "image"
    assert classify(fixtures / "boxes_0.dcm") == "dicom-slide"
    assert classify(get_testdata_file("rtstruct.dcm")) == "dicom-rtstruct"  # written without a preamble
    assert classify(get_testdata_file("liver_1frame.dcm")) == "dicom-seg"
    (tmp_path / "cells.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    assert classify(tmp_path / "cells.geojson") == "annotations"
    assert classify(tmp_path / "nothing") == "missing"
    (tmp_path / "empty.wav").write_bytes(b"")
    assert classify(tmp_path / "empty.wav") == "empty"
    folder = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "98892001" / "CT5N"
    assert classify(folder) == "dicom-folder"
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")
    assert classify(tmp_path / "notes.bin") == "unknown"


def test_inspect_describes_a_dicom_folder_with_junk(tmp_path):
    src = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "98892001" / "CT5N"
    folder = tmp_path / "study"
    shutil.copytree(src, folder)
    (folder / "readme.txt").write_text("not dicom")
    truncated = folder / "truncated.dcm"
    data = (src / sorted(p.name for p in src.iterdir())[0]).read_bytes()
    truncated.write_bytes(data[:200])
    report = inspect_path(folder)
    assert report["kind"] == "dicom-folder"
    series = report["details"]["series"]
    assert len(series) == 1 and series[0]["modality"] == "CT" and series[0]["files"] == 5
    assert any("not DICOM" in f for f in report["findings"]) or any("truncated" in f for f in report["findings"])


def test_inspect_refuses_broken_slides_with_a_clear_message(shared_data):
    fixtures = shared_data / "openslide-fixtures"
    with pytest.raises(EngineError, match="cannot read its tiles"):
        inspect_path(fixtures / "unreadable.svs")
    with pytest.raises(EngineError, match="OpenSlide cannot read this slide"):
        inspect_path(fixtures / "unopenable.tiff")
    report = inspect_path(fixtures / "small.svs")
    assert report["details"]["vendor"] == "aperio" and report["details"]["mpp_x"] == pytest.approx(0.499)


def test_inspect_missing_and_empty(tmp_path):
    with pytest.raises(EngineError, match="no such file"):
        inspect_path(tmp_path / "absent.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(EngineError, match="empty"):
        inspect_path(tmp_path / "empty.dcm")


def test_sample_is_generated_once_and_reused(isolated_home):
    first = sample_path("ct-slice")
    assert first.exists() and first.stat().st_size > 1000
    stamp = first.stat().st_mtime_ns
    assert sample_path("ct-slice") == first and first.stat().st_mtime_ns == stamp
    with pytest.raises(EngineError, match="no sample"):
        sample_path("no-such-sample")


def test_otsu_engine_on_a_real_ct_slice_keeps_geometry(tmp_path):
    engine = OtsuSegmentationEngine()
    engine.load("cpu")
    src = Path(get_testdata_file("CT_small.dcm"))
    result = engine.predict(engine.request_from_paths([src]))
    image = sitk.ReadImage(str(src))
    mask = result["mask"]
    assert mask.GetSize() == image.GetSize()
    assert mask.GetSpacing() == pytest.approx(image.GetSpacing())
    assert mask.GetOrigin() == pytest.approx(image.GetOrigin())
    assert 0.05 < result["foreground_fraction"] < 0.95  # a body in air, not all or nothing
    out = engine.write_result(result, tmp_path / "mask.nii.gz")[0]
    back = sitk.ReadImage(str(out))
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    with pytest.raises(EngineError, match="--out must end with"):
        engine.write_result(result, tmp_path / "mask.txt")
    with pytest.raises(EngineError, match="cannot read"):
        engine.predict({"image_path": tmp_path / "mask.txt"}) if (tmp_path / "mask.txt").write_text("x") else None
