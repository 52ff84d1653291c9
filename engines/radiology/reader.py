"""Reading studies: DICOM folders, DICOMDIR, single and multi-frame (Enhanced CT/MR) files, NIfTI/MHA/NRRD.

Two steps, so the GUI can show something early and the user can choose a series:

1. ``scan_dicom(path)`` reads headers only (in parallel), groups files by SeriesInstanceUID, sorts slices by
   their position along the slice normal (ImagePositionPatient projected on the cross product of the
   ImageOrientationPatient cosines; never InstanceNumber or file names) and records what is wrong
   (duplicates, gaps, gantry tilt, mixed sizes, non-image objects, non-DICOM and truncated files) as
   plain-language findings on the study and on each series.
2. ``load_series(series)`` decodes the slices in parallel straight into one preallocated array of the stored
   integer type (no float copy: the rescale slope/intercept travel with it), the middle slice first so it
   can be shown at once, and returns a ``Volume`` with its ``Geometry``.

Uncompressed slices are read with one ``readinto`` into the volume; compressed transfer syntaxes (JPEG
baseline/lossless, JPEG-LS, JPEG 2000, RLE) go through pydicom's pixel handlers (pylibjpeg is installed).
"""
from __future__ import annotations

import re

import logging
import os
import struct
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engines.core.budget import check_allocation
from engines.core.engine import CancelToken, EngineError, ProgressFn, no_progress
from engines.core.model_engine import as_token
from engines.core.filetypes import (RTSTRUCT_SOP, SEG_SOP, SR_PREFIX, VOLUME_SUFFIXES, WSI_SOP, display_name,
                                    has_suffix)
from engines.radiology.geometry import Geometry, reorient_to_lps

log = logging.getLogger(__name__)

FirstSliceFn = Callable[[np.ndarray, "Volume"], None]
DUPLICATE_TOL_MM = 0.01
TILT_TOL_DEG = 0.5
MAX_LISTED = 5


def _workers() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


class _Preallocation:
    """The volume's memory, allocated and touched by a background thread while the headers are still being
    read, so the kernel's page faults (a large part of loading a series) overlap the header scan."""

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype) -> None:
        import threading

        self.array: np.ndarray | None = np.empty(shape, dtype=dtype)
        self._thread = threading.Thread(target=self._touch, name="csi-prefault", daemon=True)
        self._thread.start()

    def _touch(self) -> None:
        arr = self.array
        if arr is not None:
            for k in range(arr.shape[0]):
                arr[k].fill(0)  # numpy releases the GIL: the scan keeps running

    def take(self, shape, dtype) -> np.ndarray | None:
        self._thread.join()
        arr, self.array = self.array, None
        if arr is None or arr.shape != tuple(shape) or arr.dtype != dtype:
            return None
        return arr


# ----------------------------------------------------------------------------------------------------
@dataclass
class SliceRef:
    """One 2-D image (a file, or one frame of a multi-frame file) with what is needed to place it."""

    path: Path
    header: Any  # pydicom Dataset without pixel data (shared by the frames of one file)
    frame: int | None = None
    position: np.ndarray | None = None
    orientation: np.ndarray | None = None  # 6 direction cosines (row, column)
    pixel_spacing: tuple[float, float] = (1.0, 1.0)  # (between rows, between columns) mm
    rows: int = 0
    cols: int = 0
    instance_number: int = 0
    slope: float = 1.0
    intercept: float = 0.0
    pixel_offset: int | None = None  # native little-endian pixel data: byte offset of this frame; -1: the file
    # is truncated, -2: its pixel data cannot be used (both shown blank; the scan's findings say why)
    pixel_length: int | None = None

    @property
    def name(self) -> str:
        return self.path.name + (f"[frame {self.frame + 1}]" if self.frame is not None else "")


@dataclass
class SeriesInfo:
    """One series: its metadata, its slices in position order, and what is wrong with it."""

    key: str  # SeriesInstanceUID, with '#2', '#3' for parts split off by image size
    uid: str
    kind: str = "image"  # image, seg, sr, rtstruct, slide, other
    modality: str = ""
    description: str = ""
    series_number: int | None = None
    patient_name: str = ""
    patient_id: str = ""
    study_description: str = ""
    study_date: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    sop_class: str = ""
    transfer_syntax: str = ""
    files: list[Path] = field(default_factory=list)
    slices: list[SliceRef] = field(default_factory=list)  # sorted along the normal, duplicates removed
    slots: list[SliceRef | None] = field(default_factory=list)  # slices plus None for missing ones
    geometry: Geometry | None = None  # of the slots grid, in acquisition order
    findings: list[str] = field(default_factory=list)
    prealloc: Any = field(default=None, repr=False)  # memory made ready during the scan (used once)
    object_frames: int = 0  # frames of non-image objects (SEG)

    @property
    def shape(self) -> tuple[int, int, int]:
        first = self.slices[0] if self.slices else None
        return (len(self.slots), first.rows if first else 0, first.cols if first else 0)

    def title(self) -> str:
        number = f"#{self.series_number} " if self.series_number is not None else ""
        return f"{number}{self.modality} {self.description or '(no description)'}".strip()

    _first_header: Any = field(default=None, repr=False)

    def _object_size(self, keyword: str) -> int:
        return int(self._first_header.get(keyword, 0) or 0) if self._first_header is not None else 0

    def summary(self) -> dict[str, Any]:
        out = {"series_uid": self.key, "kind": self.kind, "modality": self.modality,
               "description": self.description, "series_number": self.series_number,
               "patient_id": self.patient_id, "study_date": self.study_date, "sop_class": self.sop_class,
               "files": len(self.files), "frames": len(self.slices) or self.object_frames,
               "transfer_syntax": self.transfer_syntax,
               "rows": self.slices[0].rows if self.slices else self._object_size("Rows"),
               "columns": self.slices[0].cols if self.slices else self._object_size("Columns")}
        if self.kind == "image" and self.slices:
            out["shape_kji"] = list(self.shape)
            if self.geometry is not None:
                out["geometry"] = self.geometry.to_dict()
        if self.kind != "image" or not self.slices:
            out["file_names"] = [display_name(f, full=True) for f in self.files]
        if self.findings:
            out["findings"] = list(self.findings)
        return out


@dataclass
class StudyScan:
    """Everything found under a path: image series, overlay objects and study-level findings."""

    root: Path
    series: list[SeriesInfo] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def image_series(self) -> list[SeriesInfo]:
        return [s for s in self.series if s.kind == "image" and s.slices]

    def overlays(self) -> list[SeriesInfo]:
        return [s for s in self.series if s.kind in ("seg", "sr", "rtstruct")]

    def all_findings(self) -> list[str]:
        out = list(self.findings)
        for s in self.series:
            out.extend(f"series {s.title()}: {f}" for f in s.findings)
        return out


@dataclass
class Volume:
    """A 3-D image held once: stored voxels ``[k, j, i]`` + rescale + geometry (display order, nearest LPS).

    ``voxels * slope + intercept`` gives the real values (HU for CT). ``source_geometry`` is the grid in
    acquisition order (before the axes were swapped/flipped for display) and ``source_slots`` its slices,
    which is what SEG export writes against.
    """

    voxels: np.ndarray
    geometry: Geometry
    slope: float = 1.0
    intercept: float = 0.0
    modality: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    series: SeriesInfo | None = None
    source_geometry: Geometry | None = None
    source_shape: tuple[int, int, int] | None = None
    source_path: Path | None = None
    invert: bool = False  # MONOCHROME1: low values are bright

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.voxels.shape)  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return int(self.voxels.nbytes)

    def real(self, stored: np.ndarray | float) -> np.ndarray | float:
        """Stored values -> real values (HU for CT), as float32."""
        if self.slope == 1.0 and self.intercept == 0.0:
            return np.asarray(stored, dtype=np.float32) if isinstance(stored, np.ndarray) else float(stored)
        return np.asarray(stored, dtype=np.float32) * np.float32(self.slope) + np.float32(self.intercept)

    def stored(self, real: float) -> float:
        return (real - self.intercept) / (self.slope or 1.0)

    def value_at(self, k: int, j: int, i: int) -> float:
        return float(self.real(float(self.voxels[k, j, i])))

    def unit(self) -> str:
        return "HU" if self.modality == "CT" else ""

    def to_sitk_real(self):
        """A float32 SimpleITK image of the real values with the display geometry (for engines)."""
        return self.geometry.to_sitk(self.real(self.voxels).astype(np.float32, copy=False))

    def source_slice_for(self, k: int, j: int, i: int) -> SliceRef | None:
        """The acquired slice a display voxel came from (for the tag panel)."""
        if self.series is None or self.source_geometry is None:
            return None
        lps = self.geometry.index_to_lps([i, j, k])
        src = self.source_geometry.lps_to_index(lps)
        ks = int(round(src[2]))
        if 0 <= ks < len(self.series.slots):
            return self.series.slots[ks]
        return None


# ----------------------------------------------------------------------------------------------------
def list_dicom_candidates(path: Path) -> tuple[list[Path], list[str]]:
    """Files to read for ``path`` (file, folder, DICOMDIR) and findings about the listing itself."""
    path = Path(path)
    if path.is_file() and path.name.upper() == "DICOMDIR":
        try:
            import pydicom

            ds = pydicom.dcmread(path)
            files = []
            for record in ds.DirectoryRecordSequence:
                ref = record.get("ReferencedFileID")
                if ref is None:
                    continue
                parts = [str(p) for p in (ref if isinstance(ref, (list, tuple)) or hasattr(ref, "__iter__") and
                                          not isinstance(ref, str) else [ref])]
                f = path.parent.joinpath(*parts)
                if f.is_file():
                    files.append(f)
            if not files:
                raise ValueError("it references no files that exist")
            return files, []
        except Exception as exc:  # noqa: BLE001 - a broken DICOMDIR: fall back to scanning its folder
            files = sorted(f for f in path.parent.rglob("*") if f.is_file() and f.name.upper() != "DICOMDIR")
            return files, [f"the DICOMDIR could not be read ({exc}); scanned its folder instead"]
    if path.is_file():
        return [path], []
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.name.upper() != "DICOMDIR"
                   and not f.name.startswith("."))
    return files, []


def _plain_header_problem(exc: BaseException) -> str:
    """A damaged header's reason in words: the library's sentence without its class name or the file path."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r"\s+in file \S+$", "", text)
    if not text:
        return "its header is damaged"
    if "end of file" in text.lower() or isinstance(exc, EOFError):
        return f"the file ends inside its header ({text})"
    return f"its header is damaged ({text})"


def _read_header(path: Path) -> tuple[Any, int | None, int | None, bool, int | None, bool]:
    """(dataset without pixels, pixel offset, pixel length, truncated, bytes of pixel data present,
    encapsulated); raises InvalidDicomError etc. The offset and length are given for native little-endian
    pixel data only (the fast path); the bytes present are known whenever the pixel data element was found."""
    import pydicom

    size = path.stat().st_size
    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
        pos = fh.tell()
        head = fh.read(12)
    offset = length = present = None
    truncated = encapsulated = False
    if "Rows" in ds and len(head) >= 8:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        little = ts is None or ts.is_little_endian
        fmt = "<" if little else ">"
        group, elem = struct.unpack(fmt + "HH", head[:4])
        if (group, elem) == (0x7FE0, 0x0010):
            implicit = ts is not None and ts.is_implicit_VR
            if implicit:
                (length,) = struct.unpack(fmt + "I", head[4:8])
                offset = pos + 8
            elif head[4:6] in (b"OB", b"OW", b"UN", b"OV", b"OF", b"OD", b"OL"):
                (length,) = struct.unpack(fmt + "I", head[8:12])
                offset = pos + 12
            else:  # not the encoding the transfer syntax promises: let pydicom work it out, judge nothing
                return ds, None, None, False, None, False
            if length == 0xFFFFFFFF:  # encapsulated (compressed): only an upper bound of its size
                encapsulated = True
                present = max(0, size - offset)
                offset = length = None
            else:
                present = max(0, min(length, size - offset))
                if offset + length > size:
                    truncated = True
            if not little:  # the fast path reads little-endian only; pydicom handles the rest
                offset = length = None
        elif "PixelData" not in ds and pos >= size:
            truncated = bool(ds.get("Rows"))  # an image header whose pixel data is missing entirely
            present = 0
    return ds, offset, length, truncated, present, encapsulated


VALID_BITS_ALLOCATED = (1, 8, 16, 32, 64)


def _int_of(ds, keyword: str, default: int) -> int | None:
    """An integer element's value; ``default`` when absent or empty, None when it is not a finite number."""
    value = _first_float(ds, keyword, float(default))
    if not np.isfinite(value):
        return None
    return int(value)


@dataclass
class _PixelPlan:
    """What a file's header declares about its pixels, checked against the bytes present."""

    frames: int  # frames to place (never more than the file can hold)
    frame_bytes: int
    problem: str | None = None  # a plain sentence (without the file name), for the findings
    undecodable: bool = False  # no usable pixels: the slices are shown blank


def _plan_pixels(ds, present: int | None, encapsulated: bool, file_size: int) -> _PixelPlan:
    """Check Rows x Columns x NumberOfFrames x BitsAllocated/8 x SamplesPerPixel against the bytes the file
    holds, before anything loops over frames or allocates: a 33 KB file may claim 2^31-1 frames."""
    rows, cols = _int_of(ds, "Rows", 0), _int_of(ds, "Columns", 0)
    declared = _int_of(ds, "NumberOfFrames", 1)
    bits = _int_of(ds, "BitsAllocated", 16)
    spp = _int_of(ds, "SamplesPerPixel", 1)
    if not rows or not cols or rows < 0 or cols < 0:
        return _PixelPlan(0, 0, f"the header gives an image size of {cols}x{rows} pixels; skipped", True)
    if spp is None or spp < 1 or spp > 4:
        return _PixelPlan(1, 0, f"Samples per Pixel is {spp}, which is not an image; shown blank", True)
    plan = _PixelPlan(1, 0)
    if declared is None or declared < 1:
        plan.problem = f"Number of Frames is {declared}; read as 1"
        declared = 1
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") if "PerFrameFunctionalGroupsSequence" in ds else None
    if per_frame is not None and 0 < len(per_frame) < declared:
        plan.problem = f"declares {declared} frames but describes only {len(per_frame)}: using those"
        declared = len(per_frame)
    if bits not in VALID_BITS_ALLOCATED:
        plan.frames = max(1, min(declared, file_size // 8 or 1))
        plan.problem = (f"Bits Allocated is {bits}, which DICOM does not allow (1 or a multiple of 8): its pixels "
                        f"cannot be decoded and are shown blank")
        plan.undecodable = True
        return plan
    plan.frame_bytes = frame_bytes = max(1, (rows * cols * spp * bits + 7) // 8)
    kind = f"{cols}x{rows} {bits}-bit" + (f" {spp}-sample" if spp > 1 else "")
    if present is None or encapsulated:  # compressed or undetermined: every frame needs at least 8 bytes
        bound = max(1, (present if present is not None else file_size) // 8)
        if declared > bound:
            plan.problem = (f"declares {declared} frames but holds {_bytes(present or file_size)} of pixel data, "
                            f"room for at most {bound}: using the first {bound}")
            declared = bound
        plan.frames = declared
        return plan
    holds = present // frame_bytes
    if holds == 0:
        plan.frames = 1
        plan.problem = (f"its pixel data is {_bytes(present)}, less than one {kind} frame ({_bytes(frame_bytes)}): "
                        f"shown blank")
        plan.undecodable = True
    elif holds < declared:
        plan.frames = holds
        plan.problem = (f"declares {declared} frames of {kind} but its pixel data holds only {holds}: showing "
                        f"those {holds}")
    elif holds > declared:
        plan.frames = declared
        plan.problem = (f"its pixel data holds {holds} frames' worth of {kind} but the header declares {declared}: "
                        f"using the first {declared}")
    else:
        plan.frames = declared
    return plan


def _bytes(n: int) -> str:
    from engines.core.budget import human_bytes

    return human_bytes(n)


def _float_list(value, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n else None


def _raw(ds, keyword: str):
    """An element's value without pydicom's per-value conversion and validation (the hot path of a scan):
    numbers come back as a list of floats, other values as pydicom gives them; None when absent."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return None
    elem = ds.get_item(tag)
    if isinstance(elem, RawDataElement) and elem.VR in ("DS", "IS") and elem.value is not None:
        try:
            return [float(v) for v in elem.value.decode("ascii").strip(" \x00").split("\\") if v.strip()]
        except (UnicodeDecodeError, ValueError):
            pass
    value = ds[tag].value
    if isinstance(value, (int, float)):
        return [float(value)]
    return value


def _first_float(ds, keyword: str, default: float) -> float:
    value = _raw(ds, keyword)
    try:
        return float(value[0]) if isinstance(value, list) and value else float(value) if value not in (None, "") \
            else default
    except (TypeError, ValueError):
        return default


def _fg_value(groups: list, seq: str, attr: str):
    for g in groups:
        if g is None or seq not in g:
            continue
        items = g[seq].value
        if items and attr in items[0]:
            return items[0][attr].value
    return None


def _series_kind(sop: str) -> str:
    if sop == SEG_SOP:
        return "seg"
    if sop == RTSTRUCT_SOP:
        return "rtstruct"
    if sop.startswith(SR_PREFIX):
        return "sr"
    if sop == WSI_SOP:
        return "slide"
    return "image"


def _slices_of(path: Path, ds, offset: int | None, length: int | None, plan: _PixelPlan | None = None) -> list[SliceRef]:
    if plan is None:
        plan = _plan_pixels(ds, length, False, path.stat().st_size)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    nframes = plan.frames
    inst = int(np.nan_to_num(_first_float(ds, "InstanceNumber", 0)))
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    per_frame = ds.PerFrameFunctionalGroupsSequence if "PerFrameFunctionalGroupsSequence" in ds else None
    frame_bytes = None
    if offset is not None and length is not None and not plan.undecodable:
        bits = int(ds.get("BitsAllocated", 16) or 16)
        frame_bytes = plan.frame_bytes
        if bits % 8 or frame_bytes * nframes > length:
            frame_bytes = None
    multi = nframes > 1 or _int_of(ds, "NumberOfFrames", 1) not in (None, 1)
    out = []
    for f in range(nframes):
        groups = [per_frame[f] if per_frame is not None and f < len(per_frame) else None, shared]
        pos = _fg_value(groups, "PlanePositionSequence", "ImagePositionPatient")
        iop = _fg_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient")
        ps = _fg_value(groups, "PixelMeasuresSequence", "PixelSpacing")
        slope = _fg_value(groups, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _fg_value(groups, "PixelValueTransformationSequence", "RescaleIntercept")
        if pos is None and nframes == 1:
            pos = _raw(ds, "ImagePositionPatient")
        if iop is None:
            iop = _raw(ds, "ImageOrientationPatient")
        if ps is None:
            ps = _raw(ds, "PixelSpacing") or _raw(ds, "ImagerPixelSpacing")
        slope = _first_float(ds, "RescaleSlope", 1.0) if slope is None else slope
        intercept = _first_float(ds, "RescaleIntercept", 0.0) if intercept is None else intercept
        spacing = _float_list(ps, 2) if ps is not None else None
        out.append(SliceRef(
            path=path, header=ds, frame=f if multi else None,
            position=_float_list(pos, 3) if pos is not None else None,
            orientation=_float_list(iop, 6) if iop is not None else None,
            pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None else (1.0, 1.0),
            rows=rows, cols=cols, instance_number=inst * 100000 + f,
            slope=float(slope or 1.0), intercept=float(intercept or 0.0),
            pixel_offset=-2 if plan.undecodable else (offset + f * frame_bytes) if frame_bytes else None,
            pixel_length=frame_bytes))
    return out


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:MAX_LISTED])
    return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def scan_dicom(path: str | Path, *, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
               workers: int | None = None) -> StudyScan:
    """Read the headers under ``path`` and return the series found, sorted and checked."""
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    cancel = as_token(cancel)
    if not path.exists():
        raise EngineError(f"{path}: no such file or folder")
    files, findings = list_dicom_candidates(path)
    scan = StudyScan(root=path, findings=findings)
    not_dicom: list[str] = []
    truncated: list[str] = []
    unreadable: list[str] = []
    incomplete: list[str] = []
    headers: list[tuple[Path, Any, int | None, int | None]] = []
    progress(0.0, f"reading {len(files)} headers")

    def read(f: Path):
        try:
            ds, off, length, trunc, present, encapsulated = _read_header(f)
            plan = _plan_pixels(ds, present, encapsulated, f.stat().st_size) if "Rows" in ds else None
        except InvalidDicomError:
            return f, "not-dicom", None
        except Exception as exc:  # noqa: BLE001 - a corrupt file is a finding, not a failure
            log.info("cannot read %s", display_name(f, full=True), exc_info=True)
            return f, "unreadable", _plain_header_problem(exc)
        return f, "ok", (ds, off, length, trunc, plan)

    prealloc: Any = None
    pool = ThreadPoolExecutor(max_workers=workers) if workers and workers > 1 else None
    results = pool.map(read, files) if pool is not None else map(read, files)
    try:
        for n, (f, status, value) in enumerate(results):
            if n % 32 == 0:
                cancel.raise_if_cancelled()
                progress(0.9 * n / max(1, len(files)), f"reading headers ({n}/{len(files)})")
            rel = _rel(f, path)
            if status == "not-dicom":
                not_dicom.append(rel)
            elif status == "unreadable":
                unreadable.append(f"{rel} ({value})")
            else:
                ds, off, length, trunc, plan = value
                if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
                    incomplete.append(rel)  # a header cut short, or a fragment that is no stored object
                    continue
                if trunc:
                    truncated.append(rel)
                    off = length = None
                if prealloc is None and len(files) >= 16 and plan is not None and not plan.undecodable:
                    try:
                        shape = (len(files), int(ds.Rows), int(ds.Columns))
                        dtype = _stored_dtype(ds)
                        check_allocation(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, "the series", f)
                        prealloc = _Preallocation(shape, dtype)
                    except (MemoryError, ValueError, AttributeError, EngineError):
                        prealloc = False  # load_series makes the same check and says so
                headers.append((f, ds, off, length, plan))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if not_dicom:
        scan.findings.append(f"{len(not_dicom)} file(s) are not DICOM and were skipped: {_names(not_dicom)}")
    if truncated:
        scan.findings.append(f"{len(truncated)} file(s) are truncated (pixel data cut short); their slices are "
                             f"shown blank: {_names(truncated)}")
    if unreadable:
        scan.findings.append(f"{len(unreadable)} file(s) could not be read as DICOM: {_names(unreadable)}")
    if incomplete:
        scan.findings.append(f"{len(incomplete)} file(s) have no SOP Class or Series UID (a header cut short, or "
                             f"not a stored image) and were skipped: {_names(incomplete)}")
    trunc_set = set(truncated)

    by_uid: dict[str, SeriesInfo] = {}
    damaged: dict[str, list[str]] = {}
    for f, ds, off, length, plan in headers:
        uid = str(ds.get("SeriesInstanceUID", "") or "(no SeriesInstanceUID)")
        sop = str(ds.get("SOPClassUID", ""))
        s = by_uid.get(uid)
        if s is None:
            s = by_uid[uid] = SeriesInfo(
                key=uid, uid=uid, kind=_series_kind(sop), modality=str(ds.get("Modality", "")),
                description=str(ds.get("SeriesDescription", "")),
                series_number=int(ds.SeriesNumber) if ds.get("SeriesNumber") not in (None, "") else None,
                patient_name=str(ds.get("PatientName", "")), patient_id=str(ds.get("PatientID", "")),
                study_description=str(ds.get("StudyDescription", "")), study_date=str(ds.get("StudyDate", "")),
                study_uid=str(ds.get("StudyInstanceUID", "")),
                frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
                sop_class=str(getattr(ds.get("SOPClassUID", ""), "name", sop)),
                transfer_syntax=str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")))
        s.files.append(f)
        if s._first_header is None:
            s._first_header = ds
        if s.kind != "image":
            s.object_frames += int(_first_float(ds, "NumberOfFrames", 1) or 1) if "Rows" in ds else 0
        if s.kind == "image" and "Rows" in ds:
            rel = _rel(f, path)
            refs = _slices_of(f, ds, off, length, plan)
            if rel in trunc_set:
                for r in refs:
                    r.pixel_offset = -1  # marks a truncated file: decoding is skipped
            elif plan is not None and plan.problem:
                damaged.setdefault(uid, []).append(f"{rel} ({plan.problem})")
            if refs:
                s.slices.extend(refs)
        elif s.kind == "image":
            s.kind = "other"
    for uid, problems in damaged.items():
        by_uid[uid].findings.append(f"{len(problems)} file(s) with damaged pixel data: {_names(problems)}")
    cancel.raise_if_cancelled()
    progress(0.95, "sorting slices by position")
    for s in by_uid.values():
        if s.kind != "image":
            label = {"seg": "a segmentation (DICOM SEG): offered as an overlay",
                     "sr": "a structured report (SR): its content is listed in the Findings tab when opened",
                     "rtstruct": "an RT structure set: its contours are drawn as a label layer on the image",
                     "slide": "a whole-slide image: open it in the Pathology workspace",
                     "other": "not an image"}[s.kind]
            s.findings.append(f"{len(s.files)} object(s) of {label}: {_names([_rel(f, path) for f in s.files])}")
            scan.series.append(s)
            continue
        if not s.slices:
            s.kind = "other"
            s.findings.append(f"{len(s.files)} file(s) with no usable image")
            scan.series.append(s)
            continue
        scan.series.extend(_assemble(s))
    if prealloc:
        for s in scan.image_series():
            if s.shape == prealloc.array.shape:
                s.prealloc = prealloc  # one series, typically the only one, takes the prepared memory
                break
    scan.series.sort(key=lambda s: (s.kind != "image", s.study_date, s.series_number or 0, s.description))
    if not scan.series:
        raise EngineError(f"{path}: no readable DICOM found" + (f" ({scan.findings[0]})" if scan.findings else ""))
    progress(1.0, f"found {len(scan.image_series())} image series")
    return scan


def _slice_step(ds) -> float:
    """SpacingBetweenSlices, else SliceThickness, as a positive finite number; else 1 mm."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = abs(_first_float(ds, keyword, 0.0))
        if np.isfinite(value) and value > 0:
            return float(value)
    return 1.0


def _rel(f: Path, root: Path) -> str:
    """A file's name relative to the scanned folder, safe to print."""
    return display_name(f.relative_to(root) if root.is_dir() and f.is_relative_to(root) else f.name, full=True)


def _split_by_size(s: SeriesInfo) -> list[SeriesInfo]:
    groups: dict[tuple, list[SliceRef]] = {}
    for r in s.slices:
        iop = tuple(np.round(r.orientation, 3)) if r.orientation is not None else None
        groups.setdefault((r.rows, r.cols, iop), []).append(r)
    if len(groups) == 1:
        return [s]
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    parts = []
    for n, ((rows, cols, _iop), refs) in enumerate(ordered, start=1):
        part = SeriesInfo(**{**s.__dict__, "key": s.uid if n == 1 else f"{s.uid}#{n}",
                             "files": sorted({r.path for r in refs}), "slices": refs, "slots": [],
                             "findings": list(s.findings)})
        if n > 1:
            part.description = f"{s.description} (part {n}, {cols}x{rows})".strip()
        parts.append(part)
    sizes = ", ".join(f"{len(refs)} of {k[1]}x{k[0]}" + (" (other orientation)" if k[2] != ordered[0][0][2] else "")
                      for k, refs in ordered)
    parts[0].findings.append(f"mixed image sizes or orientations within the series ({sizes}); split into "
                             f"{len(parts)} entries")
    return parts


def _assemble(s: SeriesInfo) -> list[SeriesInfo]:
    parts = _split_by_size(s)
    for part in parts:
        _sort_and_check(part)
    return parts


def _checked_spacing(row_mm: float, col_mm: float) -> tuple[float, float, str | None]:
    """Pixel spacing that can place pixels: negative -> its absolute value, zero or not a number -> 1 mm; the
    finding says which was done."""
    shown = f"{row_mm:g} x {col_mm:g} mm"
    if not (np.isfinite(row_mm) and np.isfinite(col_mm)) or row_mm == 0 or col_mm == 0:
        fix = [abs(v) if np.isfinite(v) and v != 0 else 1.0 for v in (row_mm, col_mm)]
        return fix[0], fix[1], (f"the pixel spacing is {shown} (zero or not a number): shown with "
                                f"{fix[0]:g} x {fix[1]:g} mm pixels, so distances and areas are not real")
    if row_mm < 0 or col_mm < 0:
        return abs(row_mm), abs(col_mm), f"the pixel spacing is negative ({shown}): its absolute value is used"
    return row_mm, col_mm, None


def _usable_orientation(iop: np.ndarray | None) -> bool:
    if iop is None or not np.all(np.isfinite(iop)):
        return False
    row, col = iop[:3], iop[3:]
    return np.linalg.norm(row) > 1e-3 and np.linalg.norm(col) > 1e-3 and \
        np.linalg.norm(np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))) > 1e-3


def _sort_and_check(s: SeriesInfo) -> None:
    refs = s.slices
    first = refs[0]
    row_mm, col_mm, note = _checked_spacing(*first.pixel_spacing)
    if note:
        s.findings.append(note)
    if first.orientation is not None and not _usable_orientation(first.orientation):
        shown = " ".join(f"{v:g}" for v in first.orientation)
        s.findings.append(f"the image orientation ({shown}) is all zero or degenerate: slices are shown as axial "
                          f"(identity orientation), so their placement in the patient is not known")
        for r in refs:
            r.orientation = None
    else:
        for r in refs:
            if r.orientation is not None:
                r.orientation = r.orientation.copy()
                r.orientation[:3] /= np.linalg.norm(r.orientation[:3]) or 1.0
                r.orientation[3:] /= np.linalg.norm(r.orientation[3:]) or 1.0
    for r in refs:
        if r.position is not None and not np.all(np.isfinite(r.position)):
            r.position = None
    have_geometry = all(r.position is not None for r in refs) and first.orientation is not None
    if not have_geometry:
        refs.sort(key=lambda r: r.instance_number)
        s.slices, s.slots = refs, list(refs)
        dz = _slice_step(first.header)
        origin = first.position if first.position is not None else np.zeros(3)
        direction = np.eye(3)
        if first.orientation is not None:
            r, c = first.orientation[:3], first.orientation[3:]
            direction = np.stack([r, c, np.cross(r, c)], axis=1)
        s.geometry = Geometry((col_mm, row_mm, dz), tuple(origin), direction)
        if len(refs) > 1:
            s.findings.append("slices carry no position (ImagePositionPatient): ordered by InstanceNumber/frame "
                              "order; distances across slices are approximate")
        return
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_cos, col_cos)
    norm = np.linalg.norm(normal)
    normal = normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    refs.sort(key=lambda r: (float(np.dot(r.position, normal)), r.instance_number))
    dist = np.array([float(np.dot(r.position, normal)) for r in refs])
    # duplicates: keep the first of each position
    keep = [0]
    dups: list[str] = []
    for n in range(1, len(refs)):
        if abs(dist[n] - dist[keep[-1]]) < DUPLICATE_TOL_MM:
            dups.append(refs[n].name)
        else:
            keep.append(n)
    if dups:
        s.findings.append(f"{len(dups)} slice(s) duplicate the position of another slice and were ignored: "
                          f"{_names(dups)}")
    refs = [refs[n] for n in keep]
    dist = dist[keep]
    s.slices = refs
    slots: list[SliceRef | None] = [refs[0]]
    dz = 1.0
    if len(refs) > 1:
        gaps = np.diff(dist)
        dz = float(np.median(gaps))
        uneven = False
        ratios = gaps / dz
        steps_all = np.rint(ratios)
        fillable = (steps_all >= 2) & (np.abs(ratios - steps_all) < 0.2)
        # fill gaps with blank slices only while that keeps the volume mostly real data
        fill_gaps = float(np.sum(steps_all[fillable] - 1)) <= max(10, len(refs))
        for n, g in enumerate(gaps):
            ratio = g / dz
            steps = int(round(ratio))
            if not fill_gaps and steps >= 2:
                s.findings.append(f"a gap of {g:.2f} mm between {dist[n]:.2f} and {dist[n + 1]:.2f} mm along the "
                                  f"slice normal ({steps - 1} slice(s) missing?)")
                uneven = True
            elif steps >= 2 and abs(ratio - steps) < 0.2:
                slots.extend([None] * (steps - 1))
                s.findings.append(f"{steps - 1} slice(s) missing between {dist[n]:.2f} and {dist[n + 1]:.2f} mm "
                                  f"along the slice normal; shown as blank slices so distances stay true")
            elif abs(ratio - 1.0) > 0.05:
                uneven = True
            slots.append(refs[n + 1])
        if uneven:
            s.findings.append(f"uneven slice spacing ({gaps.min():.3g} to {gaps.max():.3g} mm); the volume uses "
                              f"the median {dz:.3g} mm, so distances across slices are approximate")
        along = refs[-1].position - refs[0].position
        if np.linalg.norm(along) > 0:
            cosang = abs(float(np.dot(along, normal))) / float(np.linalg.norm(along))
            tilt = float(np.degrees(np.arccos(min(1.0, cosang))))
            tag_tilt = float(first.header.get("GantryDetectorTilt", 0) or 0)
            if tilt > TILT_TOL_DEG or abs(tag_tilt) > TILT_TOL_DEG:
                shear = float(np.linalg.norm(along - np.dot(along, normal) * normal))
                s.findings.append(f"gantry tilt of {max(tilt, abs(tag_tilt)):.1f} degrees: slices are shifted "
                                  f"{shear:.1f} mm in-plane from first to last; shown stacked without shear "
                                  f"correction, so 3-D positions off the first slice are approximate")
    else:
        dz = _slice_step(first.header)
    s.slots = slots
    direction = np.stack([row_cos, col_cos, normal], axis=1)
    s.geometry = Geometry((col_mm, row_mm, dz), tuple(refs[0].position), direction)


# ----------------------------------------------------------------------------------------------------
def _stored_dtype(ds) -> np.dtype:
    bits = int(ds.get("BitsAllocated", 16) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if "FloatPixelData" in ds or bits == 32 and ds.get("FloatPixelData") is not None:
        return np.dtype(np.float32)
    return np.dtype({8: "int8" if signed else "uint8", 16: "int16" if signed else "uint16",
                     32: "int32" if signed else "uint32"}.get(bits, "float32"))


def _fix_bits(arr: np.ndarray, ds) -> None:
    """Match pydicom's pixel_array for BitsStored < BitsAllocated (sign extension / masking), in place."""
    bits = arr.dtype.itemsize * 8
    stored = int(ds.get("BitsStored", bits) or bits)
    if stored >= bits or arr.dtype.kind not in "iu":
        return
    if arr.dtype.kind == "i":
        shift = bits - stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    else:
        np.bitwise_and(arr, (1 << stored) - 1, out=arr)


def _pixels_of(ds, what: str = "the image", path: Path | None = None) -> np.ndarray:
    """pydicom's ``pixel_array`` limited to what the file really holds: bytes beyond the declared frames
    (reported by the scan) are cut off so pydicom neither warns nor returns extra frames, a frame count the
    bytes cannot hold is lowered to the frames present, and the memory budget is checked first."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" in ds and ts is not None and not ts.is_encapsulated and int(ds.get("BitsAllocated", 16) or 16) > 1:
        data = ds.PixelData
        plan = _plan_pixels(ds, len(data), False, len(data))
        if plan.frame_bytes and not plan.undecodable:
            if plan.frames < (_int_of(ds, "NumberOfFrames", 1) or 1):
                ds.NumberOfFrames = plan.frames
            need = plan.frame_bytes * plan.frames
            need += need % 2
            if len(data) > need:
                ds.PixelData = data[:need]
    rows, cols = _int_of(ds, "Rows", 0) or 0, _int_of(ds, "Columns", 0) or 0
    frames = max(1, _int_of(ds, "NumberOfFrames", 1) or 1)
    spp, bits = _int_of(ds, "SamplesPerPixel", 1) or 1, _int_of(ds, "BitsAllocated", 16) or 16
    check_allocation(rows * cols * frames * spp * max(8, bits) // 8, f"{what} ({frames} frame(s) of {cols}x{rows})",
                     path)
    return ds.pixel_array


def _to_gray(frame: np.ndarray, ds) -> np.ndarray:
    if frame.ndim == 3 and frame.shape[-1] in (3, 4):  # pydicom has already converted YBR to RGB
        return (0.299 * frame[..., 0] + 0.587 * frame[..., 1] + 0.114 * frame[..., 2]).astype(frame.dtype)
    return frame


def load_series(series: SeriesInfo, *, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                on_first_slice: FirstSliceFn | None = None, workers: int | None = None,
                reorient: bool = True) -> Volume:
    """Decode ``series`` into one array of its stored type; the middle slice is decoded (and reported
    through ``on_first_slice``) before the rest. Undecodable slices stay blank and become findings."""
    import pydicom

    cancel = as_token(cancel)
    if series.kind != "image" or not series.slices:
        raise EngineError(f"series {series.title()} holds no images ({series.kind})")
    slots = series.slots
    first = series.slices[0]
    ds0 = first.header
    dtype = _stored_dtype(ds0)
    nk, rows, cols = len(slots), first.rows, first.cols
    slopes = {(r.slope, r.intercept) for r in series.slices}
    findings = list(series.findings)
    same_rescale = len(slopes) == 1
    slope, intercept = (first.slope, first.intercept) if same_rescale else (1.0, 0.0)
    if not same_rescale:
        dtype = np.dtype(np.float32)
        findings.append("slices use different rescale slopes/intercepts: held as float32 real values")
    modality = series.modality
    fill_real = -1024.0 if modality == "CT" else 0.0
    fill = (fill_real - intercept) / (slope or 1.0)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        fill = int(np.clip(round(fill), info.min, info.max))
    check_allocation(nk * rows * cols * dtype.itemsize, f"the series {series.title()} ({nk} slice(s) of {cols}x{rows})",
                     first.path)
    voxels = series.prealloc.take((nk, rows, cols), dtype) if series.prealloc else None
    series.prealloc = None
    if voxels is None:
        voxels = np.empty((nk, rows, cols), dtype=dtype)
    meta = {"patient_name": series.patient_name, "patient_id": series.patient_id,
            "study_description": series.study_description, "study_date": series.study_date,
            "series_description": series.description, "series_number": series.series_number,
            "series_uid": series.uid, "study_uid": series.study_uid,
            "photometric": str(ds0.get("PhotometricInterpretation", "")),
            "window": _default_window(ds0)}
    volume = Volume(voxels=voxels, geometry=series.geometry or Geometry(), slope=slope, intercept=intercept,
                    modality=modality, meta=meta, findings=findings, series=series,
                    source_geometry=series.geometry, source_shape=(nk, rows, cols),
                    source_path=first.path.parent if len(series.files) > 1 else first.path,
                    invert=meta["photometric"] == "MONOCHROME1")

    # work items: one per file (multi-frame files decode once), the middle slot first
    by_file: dict[Path, list[tuple[int, SliceRef]]] = {}
    for k, ref in enumerate(slots):
        if ref is None:
            voxels[k] = fill
        else:
            by_file.setdefault(ref.path, []).append((k, ref))
    middle = slots[nk // 2] if slots[nk // 2] is not None else first
    order = [middle.path] + [p for p in by_file if p != middle.path]
    failures: list[str] = []

    def decode(path: Path) -> int:
        items = by_file[path]
        try:
            if all(ref.pixel_offset is not None and ref.pixel_offset >= 0 for _, ref in items) and \
                    dtype == _stored_dtype(items[0][1].header) and same_rescale and \
                    int(items[0][1].header.get("SamplesPerPixel", 1) or 1) == 1:
                with open(path, "rb") as fh:
                    for k, ref in items:
                        fh.seek(ref.pixel_offset)
                        target = voxels[k]
                        if fh.readinto(memoryview(target).cast("B")) != target.nbytes:
                            raise EOFError("pixel data is shorter than the image size")
                        _fix_bits(target, ref.header)
                return len(items)
            if any(ref.pixel_offset == -2 for _, ref in items):  # reported by the scan already
                for k, _ in items:
                    voxels[k] = fill
                return len(items)
            if any(ref.pixel_offset == -1 for _, ref in items):
                raise EOFError("the file is truncated")
            ds = pydicom.dcmread(path)
            arr = _pixels_of(ds, "a slice", path)
            nframes = int(ds.get("NumberOfFrames", 1) or 1)
            if nframes == 1:
                arr = arr[None]
            if int(ds.get("SamplesPerPixel", 1) or 1) > 1 and arr.ndim == 3:
                arr = arr[None]
            for k, ref in items:
                frame = _to_gray(arr[ref.frame or 0], ds)
                if frame.shape != (rows, cols):
                    raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, series is {cols}x{rows}")
                if same_rescale:
                    voxels[k] = frame
                else:
                    voxels[k] = frame.astype(np.float32) * ref.slope + ref.intercept
        except Exception as exc:  # noqa: BLE001 - one bad slice must not lose the study
            for k, ref in items:
                voxels[k] = fill
            log.info("cannot decode %s", display_name(path, full=True), exc_info=True)
            failures.append(f"{display_name(path)} ({type(exc).__name__}: {str(exc)[:120]})")
        return len(items)

    progress(0.0, f"decoding {nk} slices")
    done = decode(order[0])
    if on_first_slice is not None:
        k_mid = nk // 2 if slots[nk // 2] is not None else 0
        on_first_slice(voxels[k_mid], volume)
    total = sum(len(v) for v in by_file.values())
    with ThreadPoolExecutor(max_workers=workers or _workers()) as pool:
        futures = [pool.submit(decode, p) for p in order[1:]]
        try:
            for n, fut in enumerate(as_completed(futures)):
                done += fut.result()
                if n % 8 == 0:
                    cancel.raise_if_cancelled()
                    progress(done / max(1, total), f"decoding slices ({done}/{total})")
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    if failures:
        findings.append(f"{len(failures)} file(s) could not be decoded and are shown blank: {_names(failures)}")
    if reorient:
        view, geometry, _ = reorient_to_lps(voxels, volume.geometry)
        volume.voxels, volume.geometry = view, geometry
    progress(1.0, "volume ready")
    return volume


def _default_window(ds) -> tuple[float, float] | None:
    """(centre, width) from the header, if it has one."""
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    try:
        if centre is None or width is None:
            return None
        c = float(centre[0] if isinstance(centre, (list, tuple)) or hasattr(centre, "__len__") and not
                  isinstance(centre, (str, float, int)) else centre)
        w = float(width[0] if isinstance(width, (list, tuple)) or hasattr(width, "__len__") and not
                  isinstance(width, (str, float, int)) else width)
        return (c, w) if w > 0 else None
    except (TypeError, ValueError, IndexError):
        return None


# ----------------------------------------------------------------------------------------------------
def load_volume_file(path: str | Path, *, progress: ProgressFn = no_progress) -> Volume:
    """NIfTI, MHA/MHD or NRRD through SimpleITK (which reports LPS geometry). The header is read first: the
    declared size is checked against the memory budget and against the bytes the file holds (a gzip stream cut
    short would otherwise read back as zeros), before the voxels are read."""
    import SimpleITK as sitk

    path = Path(path)
    name = display_name(path)
    progress(None, f"reading {name}")
    info = sitk.ImageFileReader()
    info.SetFileName(str(path))
    try:
        info.ReadImageInformation()
    except RuntimeError as exc:
        raise EngineError(_sitk_problem(path, exc, "volume")) from None
    size = [int(v) for v in info.GetSize()]
    item = np.dtype(sitk.GetArrayViewFromImage(sitk.Image([1] * 2, info.GetPixelID())).dtype).itemsize \
        if info.GetPixelID() != sitk.sitkUnknown else 1
    nbytes = int(np.prod(size, dtype=np.int64)) * item
    check_allocation(nbytes, f"the volume ({' x '.join(map(str, size))} voxels)", path)
    _check_volume_bytes(path, nbytes)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise EngineError(_sitk_problem(path, exc, "volume")) from None
    findings = _header_spacing_findings(path)
    if image.GetDimension() > 4:
        size = list(image.GetSize())
        extra = " x ".join(str(v) for v in size[3:])
        findings.append(f"{image.GetDimension()}-D volume ({extra} images beyond the first three axes): showing "
                        f"the first")
        try:
            image = sitk.Extract(image, size[:3] + [0] * (len(size) - 3), [0] * len(size))
        except RuntimeError as exc:
            log.info("cannot extract a 3-D volume from %s: %s", display_name(path, full=True), exc)
            raise EngineError(f"{name}: a {image.GetDimension()}-D volume ({' x '.join(map(str, size))}); the "
                              f"workstation shows 3-D volumes and the first time point of 4-D ones") from None
    if image.GetNumberOfComponentsPerPixel() > 1:
        image = sitk.VectorIndexSelectionCast(image, 0)
        findings.append("the volume has several components per voxel: showing the first")
    if image.GetDimension() == 4:
        size = list(image.GetSize())
        findings.append(f"4-D volume with {size[3]} time points: showing the first")
        image = sitk.Extract(image, size[:3] + [0], [0, 0, 0, 0])
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    arr = sitk.GetArrayFromImage(image)
    geometry = Geometry.from_sitk(image)
    del image
    modality = guess_modality(arr)
    volume = Volume(voxels=arr, geometry=geometry, modality=modality, findings=findings,
                    meta={"series_description": name, "window": None}, source_geometry=geometry,
                    source_shape=tuple(arr.shape), source_path=path)
    view, geom, _ = reorient_to_lps(arr, geometry)
    volume.voxels, volume.geometry = view, geom
    progress(1.0, "volume ready")
    return volume


def _header_spacing_findings(path: Path) -> list[str]:
    """What ITK changes silently: a NIfTI pixdim of 0 or NaN becomes 1 mm, a negative MHA/NIfTI spacing its
    absolute value. Said as findings, so distances are not trusted blindly."""
    values: list[float] = []
    low = path.name.lower()
    try:
        if low.endswith((".nii", ".nii.gz")):
            import gzip

            import nibabel

            opener = gzip.open if low.endswith(".gz") else open
            with opener(path, "rb") as fh:  # the raw header: nibabel.load would fix pixdim (and log it)
                header = nibabel.Nifti1Header.from_fileobj(fh, check=False)
            if int(header["sform_code"]) == 0:
                values = [float(v) for v in header["pixdim"][1:4]]
        elif low.endswith((".mha", ".mhd")):
            with open(path, "rb") as fh:
                text = fh.read(8192).decode("latin-1")
            for line in text.splitlines():
                key, _, value = line.partition("=")
                if key.strip() in ("ElementSpacing", "ElementSize"):
                    values = [float(v) for v in value.split()]
                    break
    except Exception:  # noqa: BLE001 - only a cross-check of what SimpleITK read
        log.debug("no header cross-check for %s", display_name(path, full=True), exc_info=True)
        return []
    shown = " x ".join(f"{v:g}" for v in values)
    if any(not np.isfinite(v) or v == 0 for v in values):
        return [f"the header gives a voxel size of {shown} mm (zero or not a number): shown with 1 mm there, so "
                f"distances and volumes along that axis are not real"]
    if any(v < 0 for v in values):
        return [f"the header gives a negative voxel size ({shown} mm): its absolute value is used"]
    return []


def _check_volume_bytes(path: Path, nbytes: int) -> None:
    """Refuse a volume whose file holds fewer voxel bytes than its header declares: ITK reads a gzip stream
    cut short (or a .nii cut short) as zeros without a word."""
    with open(path, "rb") as fh:
        head = fh.read(540)
        if head[:2] == b"\x1f\x8b":  # gzip: decompress as a stream, counting, to its end-of-stream marker
            import zlib

            fh.seek(0)
            stream = zlib.decompressobj(wbits=31)
            total, header = 0, b""
            try:
                while not stream.eof:
                    chunk = fh.read(1 << 20)
                    if not chunk:
                        break
                    data = stream.decompress(chunk)
                    if len(header) < 540:
                        header += data[:540 - len(header)]
                    total += len(data)
            except zlib.error as exc:
                log.info("gzip stream of %s is damaged: %s", display_name(path, full=True), exc)
                raise EngineError(f"{display_name(path)}: its compressed data is damaged ({_plain_zlib(exc)}): "
                                  f"the file cannot be read") from None
            need = nbytes + _nifti_data_offset(header)
            if not stream.eof or total < need:
                raise EngineError(f"{display_name(path)}: the file is truncated (its compressed data ends after "
                                  f"{_bytes(total)} of the {_bytes(need)} the header declares); refused rather "
                                  f"than shown with missing voxels as zeros")
            return
    offset = _nifti_data_offset(head)
    if offset:  # an uncompressed NIfTI: header, then the voxels
        have = path.stat().st_size
        if have < offset + nbytes:
            raise EngineError(f"{display_name(path)}: the file is truncated ({_bytes(have)}, the header declares "
                              f"{_bytes(offset + nbytes)}); refused rather than shown with missing voxels as zeros")


def _nifti_data_offset(head: bytes) -> int:
    """Where a NIfTI-1/2 header says the voxels start (vox_offset); 0 when ``head`` is not a NIfTI header."""
    for order in ("<", ">"):
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:
            value = struct.unpack(order + "f", head[108:112])[0]
            return max(352, int(value)) if np.isfinite(value) else 352
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:
            return max(544, int(struct.unpack(order + "q", head[168:176])[0]))
    return 0


def _plain_zlib(exc: Exception) -> str:
    text = str(exc).lower()
    if "invalid" in text or "incorrect" in text:
        return "the gzip stream is corrupt"
    return "the gzip stream cannot be decompressed"


def _sitk_problem(path: Path, exc: Exception, noun: str) -> str:
    """One plain sentence for a SimpleITK/ITK read error (whose raw text, with source file and line, goes to
    the log)."""
    text = str(exc)
    log.info("SimpleITK cannot read %s: %s", display_name(path, full=True), text)
    low = text.lower()
    name = display_name(path)
    if "spacing" in low:
        reason = ("its header gives a voxel spacing that is zero, negative or not a number, so distances "
                  "cannot be measured; the file is refused")
    elif "direction" in low or "singular" in low or "orthogonal" in low or "transformmatrix" in low:
        reason = ("its header gives an orientation (direction cosines) that is all zero or degenerate, so "
                  "the voxels cannot be placed in the patient; the file is refused")
    elif "gzip" in low or "gzread" in low or "zlib" in low or "bytes but received" in low:
        reason = "its compressed voxel data is damaged or cut short (a truncated file?); the file is refused"
    elif "not read completely" in low or "data file" in low or "no such file" in low or "short" in low:
        reason = ("its voxel data is missing or shorter than its header declares (a truncated file, or a "
                  "detached data file that is not there); the file is refused")
    elif "unable to determine imageio" in low or "could not create io object" in low:
        reason = f"this is not a {noun} format the workstation reads (NIfTI, MHA/MHD, NRRD)"
    else:
        reason = f"the file is damaged or not a readable {noun} (details in the log)"
    return f"{name}: cannot read this {noun}: {reason}"


def load_volume_folder(path: str | Path, *, progress: ProgressFn = no_progress,
                       cancel: CancelToken | None = None) -> tuple[Volume, list]:
    """A folder of NIfTI/MHA/NRRD files (an image and its segmentations, as research datasets ship them):
    the largest non-label volume is the image, label-like volumes come back as ``LabelMap`` objects."""
    from engines.radiology.overlays import LabelMap, _read_names_sidecar

    path = Path(path)
    files = sorted(f for f in path.iterdir() if is_volume_file(f))
    if not files:
        raise EngineError(f"{path}: no NIfTI/MHA/NRRD volume in this folder")
    images: list[Volume] = []
    labels: list = []
    for n, f in enumerate(files):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(n / len(files), f"reading {f.name}")
        vol = load_volume_file(f)
        if looks_like_label_map(vol):
            names = _read_names_sidecar(f)
            labels.append(LabelMap(np.ascontiguousarray(vol.voxels), vol.geometry, names, source=f.name))
        else:
            images.append(vol)
    if not images:
        raise EngineError(f"{path}: only label maps here, no image to show them on")
    image = max(images, key=lambda v: v.voxels.size)
    if len(images) > 1:
        image.findings.append(f"{len(images)} images in the folder: showing the largest, "
                              f"{image.meta.get('series_description')}")
    progress(1.0, "volume ready")
    return image, labels


def guess_modality(arr: np.ndarray) -> str:
    """NIfTI/MHA/NRRD carry no modality: call it CT when a good part of it is air at about -1000 HU."""
    if arr.size == 0 or arr.dtype.kind not in "if":
        return "MR"
    sample = arr[:: max(1, arr.shape[0] // 16), ::2, ::2]
    air = np.mean((sample > -1100) & (sample < -850))
    return "CT" if air > 0.05 and float(sample.max()) > 100 else "MR"


def is_volume_file(path: Path) -> bool:
    return Path(path).is_file() and has_suffix(Path(path), VOLUME_SUFFIXES)


def looks_like_label_map(volume: Volume, max_labels: int = 64) -> bool:
    """Integer voxels with few distinct values (a segmentation saved as NIfTI/MHA/NRRD)."""
    v = volume.voxels
    if v.dtype.kind not in "iu" or v.size == 0:
        return False
    sample = v[:: max(1, v.shape[0] // 16)]
    values = np.unique(sample)
    return len(values) <= max_labels and values.min() >= 0


# -- early pixels and thumbnails ----------------------------------------------------------------------
def _window_for(real: np.ndarray, ds, modality: str) -> tuple[float, float]:
    """(width, level) for showing ``real`` values: the header's window, CT soft tissue, else percentiles."""
    win = _default_window(ds) if ds is not None else None
    if win:
        return (win[1], win[0])
    if modality == "CT":
        return (400.0, 40.0)
    return percentile_window(real[:: max(1, real.shape[0] // 128), :: max(1, real.shape[1] // 128)])


def percentile_window(real: np.ndarray) -> tuple[float, float]:
    """(width, level) spanning the 1st to 99th percentile of ``real`` (the 'Auto' window); the caller subsamples."""
    lo, hi = np.percentile(real, [1, 99]) if np.size(real) else (0.0, 1.0)
    return (max(1.0, float(hi - lo)), float(hi + lo) / 2)


def quick_preview(path: str | Path) -> dict[str, Any] | None:
    """The first decodable DICOM image under ``path``, before any scanning or sorting (for the first paint).
    Returns {"image": real values 2-D, "spacing": (row mm, col mm), "window": (width, level)} or None."""
    import pydicom

    from engines.core.filetypes import is_dicom_file

    path = Path(path)
    candidate = None
    if path.is_file():
        candidate = path if path.name.upper() != "DICOMDIR" else None
    elif path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                f = Path(root) / name
                if name.upper() != "DICOMDIR" and is_dicom_file(f):
                    candidate = f
                    break
            if candidate is not None:
                break
    if candidate is None:
        return None
    try:
        ds = pydicom.dcmread(candidate)
        if "PixelData" not in ds or int(ds.get("NumberOfFrames", 1) or 1) > 1:
            return None
        arr = _to_gray(_pixels_of(ds, "the preview", candidate), ds)
        if arr.ndim != 2:
            return None
        real = arr.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
        ps = ds.get("PixelSpacing") or [1.0, 1.0]
        return {"image": real, "spacing": (float(ps[0]), float(ps[1])),
                "window": _window_for(real, ds, str(ds.get("Modality", "")))}
    except Exception:  # noqa: BLE001 - a preview is optional; the full load reports problems
        return None


def preview_of(stored: np.ndarray, volume: "Volume") -> dict[str, Any]:
    """A preview dict (see ``quick_preview``) of one decoded slice of a volume being loaded."""
    real = np.array(volume.real(stored), dtype=np.float32, copy=True)
    sp = volume.geometry.spacing
    header = volume.series.slices[0].header if volume.series is not None and volume.series.slices else None
    return {"image": real, "spacing": (sp[1], sp[0]), "window": _window_for(real, header, volume.modality)}


def series_thumbnails(scan: StudyScan, size: int = 64, limit: int = 40,
                      cancel: CancelToken | None = None) -> dict[str, np.ndarray]:
    """{series key: uint8 thumbnail of its middle slice} for the series browser."""
    import pydicom

    out: dict[str, np.ndarray] = {}
    for s in scan.image_series()[:limit]:
        if cancel is not None:
            cancel.raise_if_cancelled()
        ref = s.slices[len(s.slices) // 2]
        try:
            ds = pydicom.dcmread(ref.path)
            arr = _pixels_of(ds, "the thumbnail", ref.path)
            if ref.frame is not None and arr.ndim >= 3 and ref.frame < arr.shape[0]:
                arr = arr[ref.frame]
            arr = _to_gray(arr, ds)
            if arr.ndim != 2:
                continue
            step = max(1, max(arr.shape) // size)
            small = arr[::step, ::step].astype(np.float32) * ref.slope + ref.intercept
            width, level = _window_for(small, ds, s.modality)
            out[s.key] = (np.clip((small - (level - width / 2)) / width, 0, 1) * 255).astype(np.uint8)
        except Exception:  # noqa: BLE001 - a missing thumbnail is not worth a message
            continue
    return out
