"""DICOM files whose headers lie: declared sizes the bytes cannot hold, damaged or extra pixel data.

Every file is generated here with pydicom (``dcmwrite``), small enough to write in milliseconds."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from engines.core.budget import BUDGET_ENV, check_allocation
from engines.core.engine import EngineError
from engines.core.inspect import inspect_path
from engines.radiology.reader import load_series, quick_preview, scan_dicom, series_thumbnails


def write_ct(path: Path, *, rows: int = 16, cols: int = 16, frames: int | None = None, pixels: bytes | None = None,
             bits: int = 16, spacing=(0.5, 0.5), orientation=(1, 0, 0, 0, 1, 0), z: float = 0.0,
             series_uid: str | None = None, instance: int = 1) -> Path:
    """One CT image (or multi-frame file) with whatever header values a test wants."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid or generate_uid(), generate_uid()
    ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "CT", "hostile", instance
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = list(spacing)
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels if pixels is not None else (np.arange(rows * cols, dtype=np.uint16) + 1000).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def finishes(fn, seconds: float = 30.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) when it is not done in time."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- 1. declared sizes are checked against the bytes present -----------------------------------------
def test_a_small_file_claiming_two_billion_frames_neither_hangs_nor_lies(tmp_path):
    frames = np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16)
    path = write_ct(tmp_path / "frames.dcm", frames=2**31 - 1, pixels=frames.tobytes())
    scan = finishes(lambda: scan_dicom(path))
    series = scan.image_series()[0]
    assert len(series.slices) == 4
    volume = finishes(lambda: load_series(series, reorient=False))
    assert volume.shape == (4, 16, 16) and np.array_equal(volume.voxels, frames)
    note = [f for f in volume.findings if "2147483647 frames" in f]
    assert note and "frames.dcm" in note[0] and "holds only 4" in note[0]
    report = finishes(lambda: inspect_path(path))
    assert any("2147483647 frames" in f for f in report["findings"])


def test_a_claimed_65535_square_image_is_a_plain_sentence_not_a_memory_error(tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, str(1 << 30))  # the same on every machine
    path = write_ct(tmp_path / "huge.dcm", rows=65535, cols=65535, pixels=bytes(128))
    scan = finishes(lambda: scan_dicom(path))
    assert any("huge.dcm" in f and "less than one 65535x65535" in f for f in scan.all_findings())
    with pytest.raises(EngineError) as err:
        load_series(scan.image_series()[0])
    message = str(err.value)
    assert message.startswith("huge.dcm: ") and "8.0 GiB" in message and "refused" in message
    assert "Unable to allocate" not in message
    assert quick_preview(path) is None  # the preview is optional: nothing, and no exception


def test_check_allocation_names_the_file_and_the_budget(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "1000")
    check_allocation(1000, "a slice", "/x/a.dcm")  # at the budget: fine
    with pytest.raises(EngineError, match=r"^a\.dcm: a slice would need 1\.0 KiB of memory"):
        check_allocation(1001 + 23, "a slice", "/x/a.dcm")


def test_a_multiframe_file_cut_short_keeps_its_complete_frames(tmp_path):
    frames = (np.arange(6 * 16 * 16, dtype=np.uint16) % 3000).reshape(6, 16, 16)
    path = write_ct(tmp_path / "six.dcm", frames=10, pixels=frames.tobytes())
    volume = load_series(scan_dicom(path).image_series()[0], reorient=False)
    assert volume.shape[0] == 6 and np.array_equal(volume.voxels, frames)
    assert any("declares 10 frames" in f and "holds only 6" in f for f in volume.findings)


# -- 3. extra pixel data --------------------------------------------------------------------------------
def test_three_frames_worth_of_pixel_data_uses_the_first_with_a_finding(tmp_path):
    frames = (np.arange(3 * 16 * 16, dtype=np.uint16) % 2000).reshape(3, 16, 16)
    path = write_ct(tmp_path / "extra.dcm", pixels=frames.tobytes())
    preview = quick_preview(path)  # what the window paints first: one 2-D image, not three
    assert preview is not None and preview["image"].shape == (16, 16)
    assert np.array_equal(preview["image"], frames[0].astype(np.float32) - 1024)
    scan = scan_dicom(path)
    assert series_thumbnails(scan)[scan.image_series()[0].key].ndim == 2
    volume = load_series(scan.image_series()[0], reorient=False)
    assert np.array_equal(volume.voxels[0], frames[0])
    assert any("extra.dcm" in f and "3 frames' worth" in f and "using the first 1" in f for f in volume.findings)


# -- 2. damaged pixel data is always a finding that names the file --------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    ({"pixels": bytes(200)}, "less than one 16x16 16-bit frame"),
    ({"bits": 12}, "Bits Allocated is 12"),
])
def test_short_pixel_data_and_bits_allocated_12_are_findings(tmp_path, kwargs, words):
    path = write_ct(tmp_path / "bad.dcm", **kwargs)
    volume = load_series(scan_dicom(path).image_series()[0])
    assert any("bad.dcm" in f and words in f and "shown blank" in f for f in volume.findings)


# -- 4. geometry that cannot place pixels: a finding that says what was done, never ITK's text ----------
@pytest.mark.parametrize("kwargs, spacing, words", [
    ({"spacing": (-0.5, -0.5)}, (0.5, 0.5), "negative (-0.5 x -0.5 mm): its absolute value is used"),
    ({"spacing": (0, 0)}, (1.0, 1.0), "0 x 0 mm (zero or not a number): shown with 1 x 1 mm pixels"),
    ({"spacing": ("NaN", "NaN")}, (1.0, 1.0), "nan x nan mm (zero or not a number)"),
    ({"orientation": (0, 0, 0, 0, 0, 0)}, (0.5, 0.5), "orientation (0 0 0 0 0 0) is all zero or degenerate"),
])
def test_impossible_spacing_and_orientation_are_findings_and_engines_can_use_the_volume(tmp_path, kwargs, spacing,
                                                                                         words):
    with pytest.warns(UserWarning) if "NaN" in str(kwargs) else _no_warning():
        path = write_ct(tmp_path / "odd.dcm", **kwargs)
    volume = load_series(scan_dicom(path).image_series()[0])
    assert volume.geometry.spacing[:2] == pytest.approx(spacing)
    assert any(words in f for f in volume.findings), volume.findings
    image = volume.to_sitk_real()  # was RuntimeError ... itkImageBase.hxx:90
    assert image.GetSpacing()[:2] == pytest.approx(spacing)


def test_a_geometry_itk_cannot_hold_is_a_plain_engine_error():
    from engines.radiology.geometry import Geometry

    with pytest.raises(EngineError, match="cannot be placed in patient coordinates: its voxel spacing"):
        Geometry((-0.5, 1, 1)).to_sitk(np.zeros((2, 2, 2), np.int16))
    with pytest.raises(EngineError, match="direction cosines"):
        Geometry((1, 1, 1), (0, 0, 0), np.zeros((3, 3))).to_sitk(np.zeros((2, 2, 2), np.int16))


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- 5. inspect names the file of every non-image object -------------------------------------------------
def test_inspect_names_the_structured_report_of_a_mixed_folder(tmp_path):
    uid = generate_uid()
    for n in range(3):
        write_ct(tmp_path / "study" / f"ct{n}.dcm", z=float(n), series_uid=uid, instance=n + 1)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    sr = Dataset()
    sr.file_meta = meta
    sr.SOPClassUID, sr.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    sr.SeriesInstanceUID, sr.StudyInstanceUID, sr.Modality = generate_uid(), generate_uid(), "SR"
    pydicom.dcmwrite(tmp_path / "study" / "report-7.dcm", sr, enforce_file_format=True)
    report = inspect_path(tmp_path / "study")
    sr_series = [s for s in report["details"]["series"] if s["kind"] == "sr"]
    assert sr_series and [Path(n).name for n in sr_series[0]["file_names"]] == ["report-7.dcm"]
    assert any("structured report" in f and "report-7.dcm" in f for f in report["findings"])


# -- 6. file names that are not UTF-8 ---------------------------------------------------------------------
def test_undecodable_file_names_give_printable_findings(tmp_path):
    import os

    folder = tmp_path / "names"
    bad = Path(os.fsdecode(bytes(folder) + b"/bad\xffname.dcm"))
    write_ct(bad, pixels=bytes(200))
    Path(os.fsdecode(bytes(folder) + b"/junk\xfe.txt")).write_bytes(b"not dicom")
    findings = scan_dicom(folder).all_findings()
    assert any("bad\\xffname.dcm" in f for f in findings) and any("junk\\xfe.txt" in f for f in findings)
    for f in findings:
        f.encode("utf-8")  # no lone surrogates: printable, loggable, and safe for Qt
    report = inspect_path(folder)
    "\n".join(report["findings"]).encode("utf-8")
