"""Reviewed findings as a DICOM SR measurement report (TID 1500, Comprehensive 3D SR, through highdicom) and
back; the findings' masks as a DICOM SEG beside it (engines.radiology.overlays.write_seg).

Each finding is one volumetric ROI measurement group (TID 1411): its tracking identifier is the finding id,
its region the box in patient coordinates (its lower and upper axial faces as closed POLYGON SCOORD3D
volume surface in the source series' frame of reference), its finding type a code, its score (probability), volume and mean HU as measurements,
and its review state (accepted / rejected / unreviewed) and whether the reviewer edited its box or mask
(SNOMED Yes / No) as qualitative evaluations. Rejected findings stay in the report, marked rejected. The report references the source series (its images are the evidence).
Codes without a standard meaning here use the private coding scheme ``99CSI``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from engines.core.atomic import atomic_path
from engines.core.engine import EngineError
from engines.radiology.findings import STATES, Finding

SCHEME = "99CSI"
_TYPE_CODES = {"intraparenchymal haemorrhage": "IPH", "epidural haemorrhage": "EDH", "subdural haemorrhage": "SDH",
               "subarachnoid haemorrhage": "SAH", "intraventricular haemorrhage": "IVH", "skull fracture": "SKFX",
               "haemorrhage (50-90 HU)": "HEM"}


def _code(value: str, meaning: str):
    from pydicom.sr.coding import Code

    return Code(value, SCHEME, meaning)


def _type_code(finding_type: str):
    value = _TYPE_CODES.get(finding_type)
    if value is None:
        value = "".join(ch for ch in finding_type.upper() if ch.isalnum())[:16] or "FINDING"
    return _code(value, finding_type[:64])


REVIEW_STATE = ("REVIEW", "Review state")
STATE_CODES = {"accepted": ("ACCEPTED", "Accepted"), "rejected": ("REJECTED", "Rejected"),
               "unreviewed": ("UNREVIEWED", "Not reviewed")}
EDITED = ("EDITED", "Edited by reviewer")  # value: SCT Yes / No


def box_faces(lo: Sequence[float], hi: Sequence[float]) -> list[np.ndarray]:
    """The box's lower and upper axial faces as closed polygons (LPS mm): its volume surface in the SR."""
    faces = []
    for z in (lo[2], hi[2]):
        faces.append(np.array([[lo[0], lo[1], z], [hi[0], lo[1], z], [hi[0], hi[1], z], [lo[0], hi[1], z],
                               [lo[0], lo[1], z]], float))
    return faces


def write_findings_sr(findings: Sequence[Finding], volume, out: str | Path, *, algorithm: str = "CSI Workstation",
                      seg: bool = True) -> list[Path]:
    """Write the findings (every review state) as a TID 1500 SR referencing ``volume``'s DICOM series, and,
    when ``seg`` and the findings carry masks, a DICOM SEG beside it (``NAME.seg.dcm``). Returns the paths."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    out = Path(out)
    series = getattr(volume, "series", None)
    if series is None or not series.slices:
        raise EngineError("a DICOM SR needs a DICOM series as the source image; write .json instead")
    sources = [s.header for s in series.slices if s is not None]
    first = sources[0]
    frame_uid = str(first.get("FrameOfReferenceUID", "") or "")
    if not frame_uid:
        raise EngineError("the source series has no FrameOfReferenceUID, so positions cannot be reported")
    series_uid = str(first.SeriesInstanceUID)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=algorithm[:64], manufacturer_name="CSI Workstation"))
    context = hd.sr.ObservationContext(observer_person_context=None, observer_device_context=observer)
    groups = []
    for f in findings:
        if f.state not in STATES:
            raise EngineError(f"finding {f.id} has an unknown review state '{f.state}'")
        surface = hd.sr.VolumeSurface(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=box_faces(f.lo_mm, f.hi_mm),
            frame_of_reference_uid=frame_uid,
            source_series=hd.sr.SourceSeriesForSegmentation(series_uid))
        measurements = [
            hd.sr.Measurement(name=codes.DCM.Probability, value=float(f.score),
                              unit=hd.sr.CodedConcept("1", "UCUM", "no units")),
            hd.sr.Measurement(name=codes.SCT.Volume, value=float(f.volume_ml),
                              unit=hd.sr.CodedConcept("ml", "UCUM", "milliliter")),
        ]
        if f.mean_hu is not None:
            measurements.append(hd.sr.Measurement(name=codes.SCT.Mean, value=float(f.mean_hu),
                                                  unit=hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")))
        state = STATE_CODES[f.state]
        edited = codes.SCT.Yes if f.edited else codes.SCT.No
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f.id),
            referenced_volume_surface=surface, finding_type=_type_code(f.type),
            algorithm_id=hd.sr.AlgorithmIdentification(name=(f.source or algorithm)[:64], version="1"),
            measurements=measurements,
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=_code(*REVIEW_STATE), value=_code(*state)),
                                     hd.sr.QualitativeEvaluation(name=_code(*EDITED), value=edited)]))
    report = hd.sr.MeasurementReport(observation_context=context,
                                     procedure_reported=codes.SCT.ComputedTomographyOfHead,
                                     imaging_measurements=groups, referenced_images=None)
    sr = hd.sr.Comprehensive3DSR(
        evidence=sources, content=report, series_instance_uid=hd.UID(), series_number=9100,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="CSI Workstation",
        series_description=f"{algorithm} findings (research use)"[:64], is_complete=True)
    with atomic_path(out, suffix=".dcm") as tmp:
        sr.save_as(tmp)
    written = [out]
    if seg and any(f.mask is not None for f in findings):
        written.append(write_findings_seg(findings, volume, out.with_name(out.name[:-4] + ".seg.dcm"),
                                          algorithm=algorithm))
    return written


def write_findings_seg(findings: Sequence[Finding], volume, out: Path, *, algorithm: str) -> Path:
    """The findings' masks as one DICOM SEG (segment n = the n-th finding with a mask, labelled by its id)."""
    from engines.radiology.overlays import LabelMap, write_seg

    labels = np.zeros(volume.shape, np.uint16 if len(findings) > 250 else np.uint8)
    names = {}
    for n, f in enumerate([f for f in findings if f.mask is not None], start=1):
        m = f.mask.full(volume.shape)
        labels[m & (labels == 0)] = n
        names[n] = f"{f.id} {f.type} ({f.state}{', edited' if f.edited else ''})"
    return write_seg(LabelMap(labels, volume.geometry, names, source=algorithm), volume, out, algorithm=algorithm)


def read_findings_sr(path: str | Path) -> tuple[list[Finding], str]:
    """The findings of a TID 1500 SR written by :func:`write_findings_sr` (or any SR whose volumetric groups
    carry SCOORD3D regions), with their review states; and the referenced SeriesInstanceUID ('' if none)."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - pydicom raises several types for damaged files
        raise EngineError(f"{path.name}: not a readable structured report ({exc})") from None
    if str(ds.get("Modality", "")) != "SR":
        raise EngineError(f"{path.name}: not a structured report (modality {ds.get('Modality', 'missing')})")
    findings = _walk_findings(ds, path)
    ref = ""
    for item in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        for s in item.get("ReferencedSeriesSequence", []):
            ref = str(s.get("SeriesInstanceUID", ""))
            break
    return findings, ref


def _meaning(item, seq: str = "ConceptNameCodeSequence") -> tuple[str, str]:
    if seq in item and item[seq].value:
        c = item[seq].value[0]
        return str(c.get("CodeValue", "")), str(c.get("CodeMeaning", ""))
    return "", ""


def _walk_findings(ds, path: Path) -> list[Finding]:
    """Each content item with a tracking identifier and SCOORD3D points is a finding."""
    out: list[Finding] = []
    states = {v[0]: k for k, v in STATE_CODES.items()}

    def group_items(items):
        for item in items:
            if "ContentSequence" in item:
                names = [_meaning(c)[1] for c in item.ContentSequence]
                if "Tracking Identifier" in names:
                    yield item
                else:
                    yield from group_items(item.ContentSequence)

    for group in group_items(ds.get("ContentSequence", [])):
        fid, ftype, score, volume_ml, mean_hu, state, points, source = "", "finding", 0.0, 0.0, None, "unreviewed", None, ""
        edited = False
        for c in group.ContentSequence:
            _, name = _meaning(c)
            vt = str(c.get("ValueType", ""))
            if name == "Tracking Identifier":
                fid = str(c.get("TextValue", ""))
            elif name == "Finding" and vt == "CODE":
                ftype = _meaning(c, "ConceptCodeSequence")[1]
            elif vt == "NUM" and c.get("MeasuredValueSequence"):
                value = float(c.MeasuredValueSequence[0].NumericValue)
                if name == "Probability":
                    score = value
                elif name == "Volume":
                    volume_ml = value
                elif name == "Mean":
                    mean_hu = value
            elif vt == "CODE" and name == REVIEW_STATE[1]:
                code = _meaning(c, "ConceptCodeSequence")[0]
                state = states.get(code, "unreviewed")
            elif vt == "CODE" and name == EDITED[1]:
                edited = _meaning(c, "ConceptCodeSequence")[0] == "373066001"  # SCT Yes
            elif vt == "SCOORD3D":
                pts = np.asarray([float(v) for v in c.GraphicData]).reshape(-1, 3)
                points = pts if points is None else np.concatenate([points, pts])
            elif vt == "CODE" and name == "Algorithm Name":
                source = _meaning(c, "ConceptCodeSequence")[1]
            elif vt == "TEXT" and name == "Algorithm Name":
                source = str(c.get("TextValue", ""))
        if points is None or not len(points):
            continue
        if not fid:
            fid = f"F{len(out) + 1}"
        out.append(Finding(id=fid, type=ftype, score=score, lo_mm=tuple(float(v) for v in points.min(0)),
                           hi_mm=tuple(float(v) for v in points.max(0)), volume_ml=volume_ml, mean_hu=mean_hu,
                           source=source, state=state, edited=edited))
    if not out and "ContentSequence" not in ds:
        raise EngineError(f"{path.name}: the structured report has no content")
    return out
