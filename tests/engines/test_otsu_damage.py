"""The Otsu engine reads volumes through the radiology reader: a NIfTI cut short is refused, never read as zeros,
and the reader's findings travel with the result."""
from __future__ import annotations

import numpy as np
import pytest

from engines.core.engine import EngineError


def _volume(path):
    import SimpleITK as sitk

    arr = np.random.default_rng(0).normal(0, 100, (10, 64, 64)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path), useCompression=True)
    return path


def test_a_truncated_nifti_is_refused_by_the_otsu_engine(tmp_path):
    from engines.classical.otsu import OtsuSegmentationEngine

    good = _volume(tmp_path / "v.nii.gz")
    cut = tmp_path / "cut.nii.gz"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    engine = OtsuSegmentationEngine()
    engine.load("cpu")
    result = engine.predict({"image_path": good})
    assert result["mask"].GetSize() == (64, 64, 10) and result["findings"] == []
    with pytest.raises(EngineError):
        engine.predict({"image_path": cut})


def test_the_reader_findings_of_a_dicom_file_travel_with_the_result(tmp_path):
    from pydicom.data import get_testdata_file

    from engines.classical.otsu import OtsuSegmentationEngine

    src = get_testdata_file("CT_small.dcm")
    from pathlib import Path

    data = Path(src).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 4000])  # inside the pixel data
    engine = OtsuSegmentationEngine()
    engine.load("cpu")
    try:
        result = engine.predict({"image_path": cut})
    except EngineError:
        return  # refused in one sentence: also right
    assert result["findings"], "a DICOM cut inside its pixel data gave a mask with no finding"
