"""The radiology reader on real files and on generated series that break the usual assumptions."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from engines.core.engine import CancelToken, Cancelled, EngineError
from engines.core.inspect import inspect_path
from engines.radiology.geometry import Geometry, reorient_to_lps
from engines.radiology.reader import load_series, load_volume_file, quick_preview, scan_dicom
from .conftest import CT5N, TEST_FILES, small_series


def only_image_series(path):
    scan = scan_dicom(path)
    images = scan.image_series()
    assert len(images) == 1, [s.title() for s in scan.series]
    return scan, images[0]


def sitk_series(folder: Path):
    reader = sitk.ImageSeriesReader()
    uid = reader.GetGDCMSeriesIDs(str(folder))[0]
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), uid))
    return reader.Execute()


# -- real files -------------------------------------------------------------------------------------
def test_real_ct_series_matches_simpleitk_voxel_for_voxel():
    scan, series = only_image_series(CT5N)
    volume = load_series(series)
    assert volume.shape == (5, 16, 16) and volume.voxels.dtype == np.int16
    assert (volume.slope, volume.intercept) == (1.0, -1024.0)  # stored type kept, rescale carried
    ref = sitk_series(CT5N)
    ref = sitk.DICOMOrient(ref, "LPS")
    assert np.allclose(volume.geometry.spacing, ref.GetSpacing(), atol=1e-4)
    assert np.allclose(volume.geometry.origin, ref.GetOrigin(), atol=1e-3)
    assert np.allclose(volume.geometry.direction.ravel(), ref.GetDirection(), atol=1e-6)
    assert np.array_equal(volume.real(volume.voxels), sitk.GetArrayFromImage(ref).astype(np.float32))


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm"])
def test_compressed_and_odd_transfer_syntaxes_decode_like_the_uncompressed_file(name):
    expected = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    _, series = only_image_series(TEST_FILES / name)
    volume = load_series(series)
    assert np.array_equal(volume.voxels[0], expected)


@pytest.mark.parametrize("name", ["JPGExtended.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm"])
def test_jpeg_family_decodes_through_pydicom_handlers(name):
    _, series = only_image_series(TEST_FILES / name)
    volume = load_series(series)
    ds = pydicom.dcmread(TEST_FILES / name)
    expected = ds.pixel_array
    if expected.ndim == 3:  # colour: shown as luminance
        expected = (0.299 * expected[..., 0] + 0.587 * expected[..., 1] + 0.114 * expected[..., 2]).astype(expected.dtype)
    assert not volume.findings
    assert np.array_equal(volume.voxels.reshape(expected.shape), expected)


def test_undecodable_jpeg_is_a_finding_not_a_crash():
    _, series = only_image_series(TEST_FILES / "JPEG-lossy.dcm")  # 12-bit lossy JPEG no installed decoder reads
    volume = load_series(series)
    assert any("could not be decoded" in f for f in volume.findings)


def test_real_512_ct_slice_from_pydicom_data():
    _, series = only_image_series(Path(get_testdata_file("693_UNCI.dcm")))
    volume = load_series(series)
    assert volume.shape == (1, 512, 512) and volume.modality == "CT"
    assert volume.real(volume.voxels).min() < -900  # air in HU after the rescale


def test_enhanced_ct_and_mr_multiframe():
    _, ct = only_image_series(Path(get_testdata_file("eCT_Supplemental.dcm")))
    volume = load_series(ct)
    assert volume.shape == (2, 512, 512)
    ds = pydicom.dcmread(get_testdata_file("eCT_Supplemental.dcm"))
    positions = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
    assert volume.geometry.spacing[2] == pytest.approx(abs(positions[1] - positions[0]))
    _, mr = only_image_series(Path(get_testdata_file("emri_small.dcm")))
    assert load_series(mr).shape[0] * load_series(mr).shape[1] * load_series(mr).shape[2] == 10 * 64 * 64


def test_dicomdir_lists_its_series():
    scan = scan_dicom(TEST_FILES / "dicomdirtests" / "DICOMDIR")
    modalities = {s.modality for s in scan.image_series()}
    assert {"CT", "MR", "CR"} <= modalities
    ct5 = [s for s in scan.image_series() if s.description.startswith("SmartScore")]
    assert len(ct5) == 1 and len(ct5[0].slices) == 5


def test_truncated_real_file_is_a_finding_not_a_crash():
    scan = scan_dicom(TEST_FILES / "MR_truncated.dcm")
    assert any("truncated" in f for f in scan.findings)
    volume = load_series(scan.image_series()[0])  # shown blank, reported
    assert any("could not be decoded" in f for f in volume.findings)


def test_nifti_geometry_matches_nibabel():
    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    volume = load_volume_file(path)
    img = nibabel.load(path)
    ras = img.affine
    # nibabel: RAS affine of (i, j, k); the workstation: LPS. Check one corner voxel lands in the same place.
    nk, nj, ni = volume.shape
    data = np.asarray(img.dataobj)
    for ijk_nib in ([0, 0, 0], [data.shape[0] - 1, 3, data.shape[2] - 1]):
        lps = ras[:3, :3] @ ijk_nib + ras[:3, 3]
        lps[:2] *= -1
        i, j, k = np.rint(volume.geometry.lps_to_index(lps)).astype(int)
        assert volume.voxels[k, j, i] == data[tuple(ijk_nib)]


def test_4d_nifti_shows_the_first_volume_and_says_so():
    volume = load_volume_file(Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz")
    assert any("4-D" in f for f in volume.findings) and volume.voxels.ndim == 3


# -- generated series -------------------------------------------------------------------------------
def test_shuffled_names_and_reversed_instance_numbers_sort_by_position(tmp_path):
    paths = small_series(tmp_path / "s", n=12, instance_reversed=True, names="uid")
    _, series = only_image_series(tmp_path / "s")
    z = [float(r.position[2]) for r in series.slices]
    assert z == sorted(z) and len(z) == 12
    assert [r.path for r in series.slices] == paths  # the writer's position order, not names or InstanceNumber
    inst = [r.header.InstanceNumber for r in series.slices]
    assert inst == sorted(inst, reverse=True)
    volume = load_series(series)
    expected = np.stack([pydicom.dcmread(p).pixel_array for p in paths])
    assert np.array_equal(volume.voxels, expected)
    assert volume.geometry.spacing == pytest.approx((6.0, 6.0, 12.0))


def test_mixed_series_and_junk_in_one_folder(tmp_path):
    folder = tmp_path / "mixed"
    small_series(folder / "a", n=8, description="first")
    small_series(folder / "b", n=6, description="second", seed=3)
    (folder / "notes.txt").write_text("not an image")
    (folder / "b" / "thumbs.db").write_bytes(os.urandom(300))
    shutil.copy(get_testdata_file("liver.dcm"), folder / "seg.dcm")
    scan = scan_dicom(folder)
    images = scan.image_series()
    assert sorted(len(s.slices) for s in images) == [6, 8]
    assert [s.kind for s in scan.overlays()] == ["seg"]
    assert any("not DICOM" in f and "notes.txt" in f for f in scan.findings)


def test_dropped_slice_is_reported_and_kept_as_a_blank_slot(tmp_path):
    paths = small_series(tmp_path / "s", n=10)
    paths[4].unlink()
    _, series = only_image_series(tmp_path / "s")
    assert any("1 slice(s) missing" in f for f in series.findings)
    volume = load_series(series)
    assert volume.shape[0] == 10 and volume.geometry.spacing[2] == pytest.approx(12.0)
    assert np.all(volume.real(volume.voxels[4]) == -1024)  # the missing slot is blank (air)
    z5 = volume.geometry.index_to_lps([0, 0, 5])[2]
    assert z5 == pytest.approx(float(pydicom.dcmread(paths[5]).ImagePositionPatient[2]))


def test_duplicate_positions_are_ignored_and_reported(tmp_path):
    paths = small_series(tmp_path / "s", n=6)
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(tmp_path / "s" / "copy.dcm")
    _, series = only_image_series(tmp_path / "s")
    assert len(series.slices) == 6
    assert any("duplicate the position" in f for f in series.findings)


def test_truncated_file_in_a_series(tmp_path):
    paths = small_series(tmp_path / "s", n=6)
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) - 1000])
    scan, series = only_image_series(tmp_path / "s")
    assert any("truncated" in f and paths[3].name in f for f in scan.findings)
    volume = load_series(series)
    assert volume.shape[0] == 6 and np.all(volume.real(volume.voxels[3]) == -1024)


def test_gantry_tilt_is_detected(tmp_path):
    paths = small_series(tmp_path / "s", n=8)
    for n, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        pos = [float(v) for v in ds.ImagePositionPatient]
        pos[1] += n * 12.0 * np.tan(np.radians(15))
        ds.ImagePositionPatient = pos
        ds.save_as(p)
    _, series = only_image_series(tmp_path / "s")
    tilt = [f for f in series.findings if "gantry tilt" in f]
    assert tilt and "15.0 degrees" in tilt[0]


def test_mixed_sizes_within_one_series_are_split(tmp_path):
    uid = pydicom.uid.generate_uid()
    small_series(tmp_path / "s", n=6, series_uid=uid)
    small_series(tmp_path / "s", n=3, rows=32, cols=32, series_uid=uid, z0=0.0)
    scan = scan_dicom(tmp_path / "s")
    sizes = sorted((len(s.slices), s.slices[0].rows) for s in scan.image_series())
    assert sizes == [(3, 32), (6, 64)]
    assert any("mixed image sizes" in f for f in scan.all_findings())


def test_sagittal_acquisition_is_shown_in_lps_order(tmp_path):
    # rows run head->feet, columns anterior->posterior: a sagittal stack along +x
    small_series(tmp_path / "sag", n=10, orientation=(0, 1, 0, 0, 0, -1))
    _, series = only_image_series(tmp_path / "sag")
    volume = load_series(series)
    assert volume.geometry.orientation_code() == "LPS"
    assert np.allclose(volume.geometry.direction, np.eye(3))
    ref = sitk.DICOMOrient(sitk_series(tmp_path / "sag"), "LPS")
    assert np.allclose(volume.geometry.origin, ref.GetOrigin(), atol=1e-3)
    assert np.array_equal(volume.real(volume.voxels), sitk.GetArrayFromImage(ref).astype(np.float32))


def test_reorientation_is_a_view_not_a_copy():
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    geom = Geometry((1, 2, 3), (0, 0, 0), np.diag([-1.0, 1.0, -1.0]))
    out, g, _ = reorient_to_lps(arr, geom)
    assert np.shares_memory(out, arr)
    assert np.allclose(g.direction, np.eye(3))
    for ijk in ([0, 0, 0], [3, 2, 1]):
        lps = geom.index_to_lps(ijk)
        i, j, k = np.rint(g.lps_to_index(lps)).astype(int)
        assert out[k, j, i] == arr[ijk[2], ijk[1], ijk[0]]


def test_middle_slice_first_and_cancel(tmp_path):
    small_series(tmp_path / "s", n=10)
    _, series = only_image_series(tmp_path / "s")
    seen = []
    volume = load_series(series, on_first_slice=lambda arr, vol: seen.append(arr.copy()))
    assert len(seen) == 1 and np.array_equal(seen[0], volume.voxels[5])
    assert quick_preview(tmp_path / "s")["image"].shape == (64, 64)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        load_series(series, cancel=token)


def test_not_dicom_at_all(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(EngineError, match="no readable DICOM"):
        scan_dicom(tmp_path)


def test_inspect_lists_every_finding(tmp_path):
    paths = small_series(tmp_path / "s", n=8)
    paths[3].unlink()
    random.Random(1).shuffle(paths)
    (tmp_path / "s" / "readme.txt").write_text("x")
    report = inspect_path(tmp_path / "s")
    assert report["kind"] == "dicom-folder"
    assert any("missing" in f for f in report["findings"]) and any("not DICOM" in f for f in report["findings"])
    series = report["details"]["series"][0]
    assert series["shape_kji"] == [8, 64, 64] and series["geometry"]["orientation"] == "LPS"
