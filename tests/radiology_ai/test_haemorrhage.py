"""Head-CT haemorrhage detector and its threshold baseline: input contract, findings through the CLI on a
simulated case with one known haemorrhage, no finding on the untouched scan, SR export of engine findings."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engines.core.checks import InputRefused
from engines.radiology.geometry import Geometry
from engines.radiology.reader import Volume
from engines.radiology_ai.haemorrhage import (HaemorrhageDetectorEngine, HaemorrhageThresholdEngine,
                                              head_ct_checks)


def _head_phantom(blob_hu: float | None = None, dz: float = 3.0, n: int = 96) -> Volume:
    """A skull ring (1200 HU) around brain (32 HU) with scalp, in air; optionally a 9 mm blob of ``blob_hu``."""
    nk = 24
    k, j, i = np.meshgrid(np.arange(nk) * dz, np.arange(n) * 2.0, np.arange(n) * 2.0, indexing="ij")
    c = (n - 1)
    r = np.sqrt(((i - c) / 75.0) ** 2 + ((j - c) / 90.0) ** 2 + ((k - nk * dz / 2) / 80.0) ** 2)
    hu = np.full(k.shape, -1000.0, np.float32)
    hu[r < 1.1] = 40.0
    hu[r < 1.05] = 1200.0
    hu[r < 0.97] = 32.0
    if blob_hu is not None:
        blob = (i - c - 20) ** 2 + (j - c) ** 2 + (k - nk * dz / 2) ** 2 < 9.0 ** 2
        hu[blob] = blob_hu
    hu += np.random.default_rng(0).normal(0, 3, hu.shape).astype(np.float32)
    return Volume(hu, Geometry((2.0, 2.0, dz), (-95.0, -95.0, 0.0), np.eye(3)), modality="CT")


def test_contract_passes_a_head_and_refuses_mr_chest_and_thick_slices():
    head = _head_phantom()
    checks = head_ct_checks(head, head.voxels)
    assert {c.name: c.status for c in checks.items}["anatomy"] == "passed"
    mr = Volume(np.abs(head.voxels) + 1, head.geometry, modality="MR")
    with pytest.raises(InputRefused, match="MR"):
        head_ct_checks(mr, mr.voxels)
    chest = head.voxels.copy()
    chest[chest > 0] = 40.0
    yy, xx = np.mgrid[:96, :96]
    for cx in (70, 120):
        chest[:, ((xx * 2 - cx) / 22.0) ** 2 + ((yy * 2 - 96) / 40.0) ** 2 < 1] = -850.0
    with pytest.raises(InputRefused, match="chest"):
        head_ct_checks(Volume(chest, head.geometry, modality="CT"), chest)
    thick = _head_phantom(dz=12.0)
    with pytest.raises(InputRefused, match="mm apart"):
        head_ct_checks(thick, thick.voxels)
    warned = _head_phantom(dz=7.0)
    assert "slice-spacing" in [c.name for c in head_ct_checks(warned, warned.voxels).warnings]


def test_threshold_baseline_finds_a_blood_blob_and_nothing_in_the_untouched_phantom():
    engine = HaemorrhageThresholdEngine()
    result = engine.predict({"volume": _head_phantom(blob_hu=70.0)})
    assert len(result["shown"]) == 1
    f = result["shown"][0]
    centre = np.array([20.0, 0.0, 36.0])  # blob centre in LPS mm (origin -95, -95, 0)
    assert np.all(np.array(f.lo_mm) <= centre) and np.all(centre <= np.array(f.hi_mm))
    assert 1.5 < f.volume_ml < 4.5 and 60 < f.mean_hu < 80 and f.type == "haemorrhage (50-90 HU)"
    assert engine.predict({"volume": _head_phantom()})["shown"] == []


# -- the network, on simulated head CTs (needs the shipped weights) -----------------------------------------
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from engines.radiology_ai.head_ct_sim import make_sample

    root = tmp_path_factory.mktemp("head")
    series = make_sample(root)
    return series, json.loads((root / "truth.json").read_text())


def test_cli_run_boxes_the_known_haemorrhage(sample, tmp_path):
    from app.cli import main

    series, truth = sample
    assert len(truth) == 1
    out = tmp_path / "boxes.json"
    assert main(["run", "head-ct-haemorrhage", str(series), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["coordinate_system"].startswith("DICOM patient (LPS)")
    centre = np.array(truth[0]["centre_lps_mm"])
    hits = [b for b in data["boxes"] if np.all(np.array(b["min_lps_mm"]) - 2 <= centre)
            and np.all(centre <= np.array(b["max_lps_mm"]) + 2)]
    assert hits, f"no box around the haemorrhage at {centre}: {data['boxes']}"
    assert hits[0]["label"] == "intraparenchymal haemorrhage" and hits[0]["score"] >= 0.5
    assert len(data["boxes"]) <= 2
    finding = data["meta"]["findings"][0]
    assert finding["volume_ml"] > 0.5 and finding["state"] == "unreviewed"


def test_the_candidates_are_not_filled_with_near_zero_fractures(sample):
    """Weights without a fracture calibration keep the haemorrhage cut for fractures: the candidate list (what the
    Review tab lists behind its threshold, and what the SR reports) holds no dozens of 0.00 "skull fractures"."""
    series, _ = sample
    engine = HaemorrhageDetectorEngine()
    engine.load("cpu")
    findings = engine.predict({"image_path": str(series)}).findings
    assert len(findings) <= 5, [(f.type, round(f.score, 3)) for f in findings]


def test_untouched_scan_gives_no_finding_above_the_default_threshold():
    from engines.radiology_ai.head_ct_sim import sample_case

    case = sample_case(n_findings=0)
    assert case.findings == []
    engine = HaemorrhageDetectorEngine()
    engine.load("cpu")
    volume = Volume(case.hu, case.geometry(), modality="CT")
    result = engine.predict({"volume": volume})
    assert [f.score for f in result["findings"] if f.score >= 0.5] == []
    assert result["threshold"] == 0.5 and result["shown"] == []


def test_engine_findings_export_as_sr_and_seg(sample, tmp_path):
    from app.cli import main
    from engines.radiology.sr import read_findings_sr

    series, truth = sample
    out = tmp_path / "report.dcm"
    assert main(["run", "head-ct-haemorrhage", str(series), "--out", str(out)]) == 0
    findings, ref = read_findings_sr(out)
    assert findings and all(f.state == "unreviewed" for f in findings)
    assert (tmp_path / "report.seg.dcm").exists()
    centre = np.array(truth[0]["centre_lps_mm"])
    assert any(np.all(np.array(f.lo_mm) - 2 <= centre) and np.all(centre <= np.array(f.hi_mm) + 2) for f in findings)
