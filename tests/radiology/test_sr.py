"""DICOM SR (TID 1500) of reviewed findings: export, re-open, same findings and review states, positions in
patient coordinates within 1 mm; rejected findings kept; masks as DICOM SEG beside the report."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from engines.core.engine import EngineError
from engines.radiology.findings import Finding, FindingsReview, MaskPatch
from engines.radiology.sr import read_findings_sr, write_findings_sr




@pytest.fixture(scope="module")
def ct_series(tmp_path_factory):
    from engines.radiology.ct_tissue import open_volume
    from engines.radiology_ai.samples import write_series

    folder = tmp_path_factory.mktemp("ct") / "series"
    rng = np.random.default_rng(3)
    stored = (rng.normal(40, 5, (12, 48, 40)) + 1024).astype(np.int16)
    write_series(folder, stored, spacing_xyz=(0.8, 0.9, 3.0), origin_lps=(-20.3, -31.7, 12.5), modality="CT",
                 description="test head CT", header="693_UNCI.dcm", intercept=-1024.0)
    return open_volume(folder)


def _findings(volume):
    g = volume.geometry
    out = []
    for n, (state, (lo, hi)) in enumerate([("accepted", ((2, 3, 1), (9, 12, 4))), ("rejected", ((20, 30, 6), (25, 40, 8))),
                                           ("unreviewed", ((30, 5, 9), (35, 9, 10)))], start=1):
        a, b = g.index_to_lps(lo), g.index_to_lps(hi)
        mask = np.ones((hi[2] - lo[2] + 1, hi[1] - lo[1] + 1, hi[0] - lo[0] + 1), bool)
        out.append(Finding(id=f"F{n}", type=["subdural haemorrhage", "skull fracture", "epidural haemorrhage"][n - 1],
                           score=[0.91, 0.62, 0.55][n - 1], lo_mm=tuple(np.minimum(a, b)), hi_mm=tuple(np.maximum(a, b)),
                           volume_ml=1.5 * n, mean_hu=60.0 + n, state=state,
                           mask=MaskPatch((lo[2], lo[1], lo[0]), mask), source="head-ct-haemorrhage"))
    return out


def test_sr_round_trip_keeps_findings_states_and_positions(ct_series, tmp_path):
    findings = _findings(ct_series)
    written = write_findings_sr(findings, ct_series, tmp_path / "report.dcm", algorithm="head-ct-haemorrhage")
    assert [p.name for p in written] == ["report.dcm", "report.seg.dcm"]
    back, ref = read_findings_sr(written[0])
    assert ref == ct_series.series.slices[0].header.SeriesInstanceUID
    assert [f.id for f in back] == ["F1", "F2", "F3"]
    assert [f.state for f in back] == ["accepted", "rejected", "unreviewed"]  # rejected kept, marked rejected
    for a, b in zip(findings, back):
        assert b.type == a.type
        assert b.score == pytest.approx(a.score, abs=1e-6)
        assert b.volume_ml == pytest.approx(a.volume_ml) and b.mean_hu == pytest.approx(a.mean_hu)
        assert np.abs(np.subtract(a.lo_mm, b.lo_mm)).max() < 1.0
        assert np.abs(np.subtract(a.hi_mm, b.hi_mm)).max() < 1.0
    ds = pydicom.dcmread(written[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"


def test_reviewed_states_from_the_review_model_reach_the_report(ct_series, tmp_path):
    review = FindingsReview(_findings(ct_series), threshold=0.0)
    review.select("F3")
    review.reject()
    review.select("F1")
    review.reset()
    out = write_findings_sr(review.findings, ct_series, tmp_path / "r.dcm", seg=False)
    back = {f.id: f.state for f in read_findings_sr(out[0])[0]}
    assert back == {"F1": "unreviewed", "F2": "rejected", "F3": "rejected"}


def test_seg_beside_the_report_holds_one_segment_per_finding_where_it_was(ct_series, tmp_path):
    from engines.radiology.overlays import read_seg

    findings = _findings(ct_series)
    seg_path = write_findings_sr(findings, ct_series, tmp_path / "x.dcm")[1]
    label_map, ref = read_seg(seg_path)
    on_grid = label_map.on_grid(ct_series.geometry, ct_series.shape).labels
    for n, f in enumerate(findings, start=1):
        assert np.array_equal(on_grid == n, f.mask.full(ct_series.shape))
    assert "F2 skull fracture (rejected)" in label_map.names.values()


def test_sr_needs_a_dicom_source_and_refuses_other_files(ct_series, tmp_path):
    from engines.radiology.reader import Volume

    bare = Volume(np.zeros((4, 4, 4), np.int16), ct_series.geometry, modality="CT")
    with pytest.raises(EngineError, match="DICOM series"):
        write_findings_sr(_findings(ct_series), bare, tmp_path / "a.dcm")
    ct_file = sorted(ct_series.series.slices, key=lambda s: str(s.path))[0].path
    with pytest.raises(EngineError, match="not a structured report"):
        read_findings_sr(ct_file)


def test_reopening_the_report_in_the_workspace_brings_the_findings_back_for_review(window, qtbot, ct_series, tmp_path):
    from .conftest import open_in

    findings = _findings(ct_series)
    report = write_findings_sr(findings, ct_series, tmp_path / "report.dcm", algorithm="head-ct-haemorrhage")[0]
    view = window.switch_to("radiology")
    with qtbot.waitSignal(view.opened, timeout=20000):
        view.open_path(report)  # no image yet: the report's text, and a word on what to open first
    assert "open the series it reports on first" in window.notifications.items[-1].message
    assert view.findings_panel.review.visible == []
    view = open_in(window, qtbot, ct_series.series.slices[0].path.parent)
    with qtbot.waitSignal(view.opened, timeout=20000):
        view.open_path(report)
    review = view.findings_panel.review
    assert view.tabs.currentWidget() is view.findings_panel
    assert [(f.id, f.state) for f in review.visible] == [("F1", "accepted"), ("F2", "rejected"), ("F3", "unreviewed")]
    for a, b in zip(findings, review.visible):
        assert np.abs(np.subtract(a.lo_mm, b.lo_mm)).max() < 1.0
    review.accept()  # the review goes on from where the report left it
    assert any("3 finding(s) back in the Review tab (1 accepted, 1 rejected, 1 unreviewed)" in n.message
               for n in window.notifications.items)
