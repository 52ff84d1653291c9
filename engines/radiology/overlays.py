"""Overlay data for the radiology workspace, without Qt: label maps (DICOM SEG, NIfTI), detection boxes.

Every overlay carries its own geometry and is put onto the image grid through patient coordinates
(``geometry.resample_labels``), never by array shape alone: that is how masks stay unflipped after export.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.atomic import atomic_path, atomic_write_text
from engines.core.engine import EngineError
from engines.radiology.geometry import Geometry, resample_labels

# a colour per label value (Slicer-like generic anatomy colours), RGB 0-255
PALETTE = [(0, 0, 0), (230, 80, 60), (80, 200, 90), (70, 130, 230), (240, 200, 60), (200, 90, 220),
           (60, 210, 210), (250, 140, 40), (150, 110, 70), (255, 120, 170), (140, 160, 40), (110, 90, 200)]


def label_colour(value: int) -> tuple[int, int, int]:
    if value <= 0:
        return (0, 0, 0)
    return PALETTE[1 + (value - 1) % (len(PALETTE) - 1)]


@dataclass
class LabelMap:
    """Integer labels ``[k, j, i]`` with their own geometry and names {value: name}."""

    labels: np.ndarray
    geometry: Geometry
    names: dict[int, str] = field(default_factory=dict)
    colours: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not self.names:
            values = [int(v) for v in np.unique(self.labels) if v != 0]
            self.names = {v: f"label {v}" for v in values}
        for v in self.names:
            self.colours.setdefault(int(v), label_colour(int(v)))

    def on_grid(self, geometry: Geometry, shape: Sequence[int]) -> "LabelMap":
        """The same labels resampled (nearest neighbour) onto another grid."""
        arr = resample_labels(self.labels, self.geometry, geometry, shape)
        return LabelMap(arr, geometry, dict(self.names), dict(self.colours), self.source)

    @classmethod
    def from_sitk(cls, image, names: Mapping[int, str] | None = None, source: str = "") -> "LabelMap":
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(image)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.dtype.kind not in "iu":
            arr = np.rint(arr).astype(np.int32)
        if arr.max(initial=0) < 256 and arr.min(initial=0) >= 0:
            arr = arr.astype(np.uint8)
        return cls(arr, Geometry.from_sitk(image), {int(k): str(v) for k, v in (names or {}).items()}, source=source)


# -- DICOM SEG --------------------------------------------------------------------------------------
def read_seg(path: str | Path) -> tuple[LabelMap, str]:
    """A DICOM SEG as one label map (value = segment number) with its geometry, and the referenced
    SeriesInstanceUID ('' when not given)."""
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:  # noqa: BLE001 - highdicom raises several types for invalid SEGs
        raise EngineError(f"{path.name}: not a readable DICOM SEG ({exc})") from None
    try:
        volume = seg.get_volume(combine_segments=True, skip_overlap_checks=True)
        labels, geometry = np.asarray(volume.array), Geometry.from_affine_kji(volume.affine)
    except Exception:  # noqa: BLE001 - sparse frames (empty slices omitted): place each frame ourselves
        labels, geometry = _seg_frames_to_volume(seg, path)
    names = {int(item.SegmentNumber): str(item.get("SegmentLabel", f"segment {item.SegmentNumber}"))
             for item in seg.SegmentSequence}
    ref_uid = ""
    for ref in seg.get("ReferencedSeriesSequence", []):
        ref_uid = str(ref.get("SeriesInstanceUID", ""))
        break
    labels = labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16, copy=False)
    return LabelMap(labels, geometry, names, source=path.name), ref_uid


def _seg_frames_to_volume(seg, path: Path) -> tuple[np.ndarray, Geometry]:
    """A label volume from a SEG whose frames do not form a regular stack: each frame goes to the slot of
    its ImagePositionPatient along the slice normal, on a grid stepped by the smallest gap."""
    try:
        shared = seg.SharedFunctionalGroupsSequence[0]
        iop = np.asarray([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
        row_mm, col_mm = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
        frames = seg.PerFrameFunctionalGroupsSequence
        positions = np.asarray([[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient] for f in frames])
        def segment_of(f) -> int:
            group = f if "SegmentIdentificationSequence" in f else shared
            return int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)

        segments = [segment_of(f) for f in frames]
        pixels = seg.pixel_array
    except Exception as exc:  # noqa: BLE001
        raise EngineError(f"{path.name}: the segmentation has no usable 3-D geometry ({exc})") from None
    if pixels.ndim == 2:
        pixels = pixels[None]
    normal = np.cross(iop[:3], iop[3:])
    dist = positions @ normal
    distinct = np.unique(np.round(dist, 3))
    gaps = np.diff(distinct)
    thickness = float(shared.PixelMeasuresSequence[0].get("SliceThickness", 0) or 0)
    step = float(gaps.min()) if gaps.size else (thickness or 1.0)
    first = int(np.argmin(dist))
    nk = int(round((distinct[-1] - distinct[0]) / step)) + 1
    labels = np.zeros((nk, pixels.shape[1], pixels.shape[2]), dtype=np.uint16)
    for n in range(len(segments)):
        k = int(round((dist[n] - distinct[0]) / step))
        labels[k][pixels[n] > 0] = segments[n]
    direction = np.stack([iop[:3], iop[3:], normal], axis=1)
    return labels, Geometry((col_mm, row_mm, step), tuple(positions[first]), direction)


def write_seg(label_map: LabelMap, volume, out: str | Path, *, algorithm: str = "CSI Workstation",
              manual: bool = False) -> Path:
    """Write ``label_map`` as a DICOM SEG referencing the series ``volume`` was loaded from (atomic).

    The labels are resampled onto the acquired slices' grid (through patient coordinates), one frame per
    source slice that has any label, so any DICOM viewer puts them where the workstation showed them.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    out = Path(out)
    series = getattr(volume, "series", None)
    if series is None or not series.slices or volume.source_geometry is None:
        raise EngineError("SEG export needs a DICOM series as the source image; save NIfTI instead")
    slots = series.slots
    grid = resample_labels(label_map.labels, label_map.geometry, volume.source_geometry, volume.source_shape)
    refs = [(k, ref) for k, ref in enumerate(slots) if ref is not None]
    multi = {ref.path for _, ref in refs}
    if len(multi) == 1 and refs[0][1].frame is not None:  # one multi-frame source: frames in file order
        refs.sort(key=lambda kr: kr[1].frame)
        sources = [_source_dataset(refs[0][1])]
    else:
        refs.sort(key=lambda kr: kr[1].path.name)
        sources = [_source_dataset(ref) for _, ref in refs]
    pixels = np.stack([grid[k] for k, _ in refs]).astype(np.uint16 if grid.max(initial=0) > 255 else np.uint8)
    values = [int(v) for v in np.unique(pixels) if v != 0]
    if not values:
        raise EngineError("the label map is empty: nothing to export")
    # highdicom wants segment numbers 1..N: relabel in value order
    remap = np.zeros(int(pixels.max()) + 1, dtype=pixels.dtype)
    descriptions = []
    algo = None if manual else hd.AlgorithmIdentificationSequence(
        name=algorithm[:64], version="0.1", family=codes.cid7162.ArtificialIntelligence)
    for n, v in enumerate(values, start=1):
        remap[v] = n
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=label_map.names.get(v, f"label {v}")[:64],
            segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual else
            hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo))
    pixels = remap[pixels]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=9000,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="CSI Workstation",
        manufacturer_model_name="CSI Workstation", software_versions="0.1", device_serial_number="0",
        content_label="CSI_SEG", content_description="Research use only. Not for diagnosis.",
        omit_empty_frames=True, series_description=f"{algorithm} segmentation (research use)"[:64])
    with atomic_path(out, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return out


def _source_dataset(ref):
    """The source header (read without pixel data): highdicom needs the image attributes, not the pixels."""
    return ref.header


# -- structured reports -----------------------------------------------------------------------------
def read_sr_text(path: str | Path, max_lines: int = 400) -> list[str]:
    """A DICOM SR's content tree as indented lines "concept: value unit" (AI findings often come as SR)."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001
        raise EngineError(f"{path.name}: not a readable structured report ({exc})") from None
    lines: list[str] = []

    def meaning(item, seq: str) -> str:
        return str(item[seq].value[0].get("CodeMeaning", "")) if seq in item and item[seq].value else ""

    def value_of(item) -> str:
        vt = str(item.get("ValueType", ""))
        if vt == "TEXT":
            return str(item.get("TextValue", "")).replace("\r", " ").replace("\n", " ").strip()
        if vt == "CODE":
            return meaning(item, "ConceptCodeSequence")
        if vt == "NUM" and item.get("MeasuredValueSequence"):
            mv = item.MeasuredValueSequence[0]
            return f"{mv.get('NumericValue', '')} {meaning(mv, 'MeasurementUnitsCodeSequence')}".strip()
        keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "UIDREF": "UID",
                   "PNAME": "PersonName"}.get(vt)
        if keyword:
            return str(item.get(keyword, "") or "")
        return ""

    def walk(items, depth: int) -> None:
        for item in items:
            if len(lines) >= max_lines:
                return
            name = meaning(item, "ConceptNameCodeSequence")
            value = value_of(item)
            if name or value:
                lines.append("  " * depth + (f"{name}: {value}" if name and value else name or value))
            if "ContentSequence" in item:
                walk(item.ContentSequence, depth + 1)

    title = meaning(ds, "ConceptNameCodeSequence") or "Structured report"
    lines.append(f"{title} ({ds.get('SeriesDescription', '') or path.name})")
    walk(ds.get("ContentSequence", []), 1)
    return lines


# -- RT structure sets ------------------------------------------------------------------------------
def read_rtstruct(path: str | Path, geometry: Geometry, shape) -> tuple[LabelMap, list[str]]:
    """Rasterize an RTSTRUCT's closed planar contours onto an image grid (``geometry``, ``shape`` [k, j, i]).

    Each ROI becomes one label (its ROINumber order), in its ROIDisplayColor. Every contour is placed on the
    slice nearest its points through patient coordinates; contours off the grid or not in a slice plane are
    counted as findings, not drawn somewhere wrong."""
    import pydicom
    from skimage.draw import polygon

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001
        raise EngineError(f"{path.name}: not a readable RT structure set ({exc})") from None
    names = {int(r.ROINumber): str(r.get("ROIName", f"ROI {r.ROINumber}")) for r in ds.get("StructureSetROISequence", [])}
    order = {number: n for n, number in enumerate(sorted(names), start=1)}
    labels = np.zeros(tuple(shape), dtype=np.uint8 if len(order) < 256 else np.uint16)
    colours: dict[int, tuple[int, int, int]] = {}
    problems: list[str] = []
    off_grid = off_plane = malformed = 0
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.get("ReferencedROINumber", 0))
        value = order.get(number)
        if value is None:
            continue
        colour = roi.get("ROIDisplayColor")
        if colour is not None and len(colour) == 3:
            colours[value] = tuple(int(c) for c in colour)
        for contour in roi.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "")) not in ("CLOSED_PLANAR", ""):
                continue
            try:
                flat = np.asarray([float(v) for v in contour.get("ContourData", [])], dtype=float)
            except (TypeError, ValueError):
                flat = np.zeros(1)
            if flat.size < 9 or flat.size % 3 or not np.all(np.isfinite(flat)):
                malformed += 1  # one bad contour is skipped, not the whole structure set
                continue
            points = flat.reshape(-1, 3)
            ijk = geometry.lps_to_index(points)
            k = np.rint(ijk[:, 2])
            if np.ptp(ijk[:, 2]) > 0.5:
                off_plane += 1
                continue
            k = int(k[0])
            if not 0 <= k < shape[0]:
                off_grid += 1
                continue
            rr, cc = polygon(ijk[:, 1], ijk[:, 0], shape=tuple(shape[1:]))
            labels[k, rr, cc] = value
    if malformed:
        problems.append(f"{malformed} contour(s) have malformed Contour Data (not at least three x, y, z points) "
                        f"and were skipped")
    if off_grid:
        problems.append(f"{off_grid} contour(s) lie outside the image's slices and were not drawn")
    if off_plane:
        problems.append(f"{off_plane} contour(s) are not parallel to the image's slices and were not drawn")
    if not names:
        problems.append("the structure set names no ROI")
    label_names = {order[n]: names[n] for n in order}
    return LabelMap(labels, geometry, label_names, colours, source=path.name), problems


# -- NIfTI / MHA / NRRD -----------------------------------------------------------------------------
def read_label_file(path: str | Path) -> LabelMap:
    import SimpleITK as sitk

    path = Path(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise EngineError(f"{path.name}: cannot read this label map ({str(exc).strip().splitlines()[-1]})") from None
    if image.GetDimension() == 4:
        size = list(image.GetSize())
        image = sitk.Extract(image, size[:3] + [0], [0, 0, 0, 0])
    names = _read_names_sidecar(path)
    return LabelMap.from_sitk(image, names, source=path.name)


def _read_names_sidecar(path: Path) -> dict[int, str]:
    side = path.with_name(path.name.split(".")[0] + ".labels.json")
    if side.exists():
        try:
            return {int(k): str(v) for k, v in json.loads(side.read_text(encoding="utf-8")).items()}
        except (ValueError, OSError):
            return {}
    return {}


def write_label_file(label_map: LabelMap, out: str | Path) -> list[Path]:
    """NIfTI/MHA/NRRD with the geometry, plus a ``.labels.json`` sidecar with the names (both atomic)."""
    out = Path(out)
    image = label_map.geometry.to_sitk(label_map.labels)
    import SimpleITK as sitk

    with atomic_path(out) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    side = out.with_name(out.name.split(".")[0] + ".labels.json")
    atomic_write_text(side, json.dumps({str(k): v for k, v in label_map.names.items()}, indent=1))
    return [out, side]


# -- detection boxes --------------------------------------------------------------------------------
@dataclass
class Box:
    """An axis-aligned 3-D box in patient coordinates (LPS mm, the two opposite corners)."""

    lo_mm: tuple[float, float, float]
    hi_mm: tuple[float, float, float]
    label: str = "finding"
    score: float = 1.0

    def index_bounds(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) of the box corners in (i, j, k) voxel coordinates of ``geometry``."""
        corners = np.array([[x, y, z] for x in (self.lo_mm[0], self.hi_mm[0]) for y in (self.lo_mm[1], self.hi_mm[1])
                            for z in (self.lo_mm[2], self.hi_mm[2])])
        ijk = geometry.lps_to_index(corners)
        return ijk.min(axis=0), ijk.max(axis=0)

    @classmethod
    def from_index(cls, lo_ijk, hi_ijk, geometry: Geometry, label: str = "finding", score: float = 1.0) -> "Box":
        a, b = geometry.index_to_lps(lo_ijk), geometry.index_to_lps(hi_ijk)
        return cls(tuple(np.minimum(a, b)), tuple(np.maximum(a, b)), label, float(score))

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(float(self.score), 4),
                "min_lps_mm": [round(float(v), 3) for v in self.lo_mm],
                "max_lps_mm": [round(float(v), 3) for v in self.hi_mm]}


def write_boxes_json(boxes: Sequence[Box], out: str | Path, meta: Mapping[str, Any] | None = None) -> Path:
    payload = {"coordinate_system": "DICOM patient (LPS), millimetres", "meta": dict(meta or {}),
               "boxes": [b.to_dict() for b in boxes], "note": "Research use only. Not for diagnosis."}
    return atomic_write_text(out, json.dumps(payload, indent=1, default=str))


def read_boxes_json(path: str | Path) -> list[Box]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Box(tuple(b["min_lps_mm"]), tuple(b["max_lps_mm"]), b.get("label", "finding"), float(b.get("score", 1)))
            for b in data.get("boxes", [])]
