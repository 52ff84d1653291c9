"""The Otsu engine on the PipelineEngine shape: prepare reads, infer thresholds, finish returns a typed result
that still answers the keys the radiology view and the writers read."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from engines.classical.otsu import OtsuResult, OtsuSegmentationEngine
from engines.core.model_engine import PipelineEngine
from engines.core.results import SegmentationResult


def test_otsu_on_a_real_ct_slice_is_a_typed_segmentation(tmp_path):
    engine = OtsuSegmentationEngine()
    assert isinstance(engine, PipelineEngine)
    seen = []
    result = engine.predict({"image_path": Path(get_testdata_file("CT_small.dcm"))},
                            progress=lambda f, m: seen.append(f))
    assert isinstance(result, OtsuResult) and isinstance(result, SegmentationResult)
    assert isinstance(result, Mapping) and result["mask"] is result.mask and result.get("findings") == []
    assert 0.05 < result["foreground_fraction"] < 0.95 and result.counts["components"] == result["components"] >= 1
    assert result.scores["threshold"] == pytest.approx(result.threshold) and seen[-1] == 1.0
    assert engine.write_result(result, tmp_path / "mask.nii.gz")[0].exists()
