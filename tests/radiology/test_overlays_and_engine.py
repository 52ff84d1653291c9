"""Label maps and boxes keep their place through every write and read (SEG, NIfTI, JSON); the CT engine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from engines.core.engine import EngineError
from engines.radiology.ct_tissue import CtTissueThresholdEngine
from engines.radiology.geometry import Geometry, resample_labels
from engines.radiology.overlays import (Box, LabelMap, read_boxes_json, read_label_file, read_seg,
                                        write_boxes_json, write_label_file, write_seg)
from engines.radiology.reader import load_series, scan_dicom
from .conftest import small_series


def load(folder: Path):
    return load_series(scan_dicom(folder).image_series()[0])


def marker(volume) -> np.ndarray:
    """An asymmetric L-shaped marker: any flip or transpose moves it."""
    labels = np.zeros(volume.shape, dtype=np.uint8)
    nk, nj, ni = volume.shape
    labels[nk // 4, nj // 5: nj // 5 + 6, ni // 6] = 1  # vertical bar
    labels[nk // 4, nj // 5 + 5, ni // 6: ni // 6 + 9] = 1  # foot to the patient's left
    labels[nk // 4 + 1, 2, ni - 3] = 2  # a single voxel near a corner, one slice up
    return labels


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), (-1, 0, 0, 0, 1, 0)],
                         ids=["axial", "sagittal", "axial-flipped-x"])
def test_marker_survives_display_seg_export_and_reimport(tmp_path, orientation):
    small_series(tmp_path / "s", n=12, orientation=orientation)
    volume = load(tmp_path / "s")
    labels = marker(volume)
    out = write_seg(LabelMap(labels, volume.geometry, {1: "marker", 2: "corner"}), volume, tmp_path / "seg.dcm")
    # highdicom reads it back; placed by its own geometry onto the display grid it is identical
    back, ref_uid = read_seg(out)
    assert ref_uid == volume.series.uid
    assert set(back.names.values()) == {"marker", "corner"}
    on_display = resample_labels(back.labels, back.geometry, volume.geometry, volume.shape)
    assert np.array_equal(on_display > 0, labels > 0)
    # and by SimpleITK's reading of the source series: every marker voxel's LPS point is labelled in the SEG
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "s")))
    ref = reader.Execute()
    for k, j, i in zip(*np.nonzero(labels)):
        lps = np.asarray(volume.geometry.index_to_lps([i, j, k]))
        src_index = ref.TransformPhysicalPointToIndex(tuple(float(v) for v in lps))
        assert np.allclose(ref.TransformIndexToPhysicalPoint(src_index), lps, atol=1e-3)
        a = np.rint(back.geometry.lps_to_index(lps)).astype(int)
        assert back.labels[a[2], a[1], a[0]] == labels[k, j, i]


def test_seg_references_every_source_frame_it_labels(tmp_path):
    small_series(tmp_path / "s", n=8)
    volume = load(tmp_path / "s")
    out = write_seg(LabelMap(marker(volume), volume.geometry, {1: "a", 2: "b"}), volume, tmp_path / "x.dcm")
    ds = pydicom.dcmread(out)
    sop_uids = {str(r.header.SOPInstanceUID) for r in volume.series.slices}
    refs = {str(i.ReferencedSOPInstanceUID) for s in ds.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert refs <= sop_uids and refs
    assert ds.NumberOfFrames == 2  # empty frames are omitted


def test_seg_export_is_atomic_and_refuses_empty_maps(tmp_path):
    small_series(tmp_path / "s", n=4)
    volume = load(tmp_path / "s")
    target = tmp_path / "keep.dcm"
    target.write_bytes(b"old")
    with pytest.raises(EngineError, match="empty"):
        write_seg(LabelMap(np.zeros(volume.shape, np.uint8), volume.geometry, {1: "x"}), volume, target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_liver_seg_from_pydicom_data():
    label_map, ref_uid = read_seg(get_testdata_file("liver.dcm"))
    assert label_map.labels.shape == (3, 512, 512) and label_map.names == {1: "Liver"}
    assert label_map.labels.sum() > 1000 and ref_uid
    assert label_map.geometry.orientation_code() == "LPI"


def test_nifti_label_roundtrip_keeps_geometry_and_names(tmp_path):
    small_series(tmp_path / "s", n=6, orientation=(0, 1, 0, 0, 0, -1))
    volume = load(tmp_path / "s")
    labels = marker(volume)
    written = write_label_file(LabelMap(labels, volume.geometry, {1: "marker", 2: "corner"}), tmp_path / "m.nii.gz")
    assert [p.name for p in written] == ["m.nii.gz", "m.labels.json"]
    back = read_label_file(written[0])
    assert back.names == {1: "marker", 2: "corner"}
    assert np.array_equal(back.on_grid(volume.geometry, volume.shape).labels, labels)


def test_label_map_on_a_flipped_grid_lands_in_place():
    geom = Geometry((1, 1, 1), (0, 0, 0), np.eye(3))
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1, 2, 4] = 3
    flipped = Geometry((1, 1, 1), (5, 0, 3), np.diag([-1.0, 1.0, -1.0]))
    other = labels[::-1, :, ::-1].copy()
    assert np.array_equal(LabelMap(other, flipped).on_grid(geom, labels.shape).labels, labels)


def test_boxes_json_in_patient_coordinates(tmp_path):
    geom = Geometry((0.5, 0.5, 2.0), (-10, -20, 30), np.eye(3))
    box = Box.from_index([2, 4, 1], [6, 8, 3], geom, "nodule", 0.8)
    assert box.lo_mm == pytest.approx((-9.0, -18.0, 32.0)) and box.hi_mm == pytest.approx((-7.0, -16.0, 36.0))
    out = write_boxes_json([box], tmp_path / "b.json", {"series_uid": "1.2.3"})
    back = read_boxes_json(out)
    assert back[0].label == "nodule" and back[0].score == pytest.approx(0.8)
    lo, hi = back[0].index_bounds(geom)
    assert np.allclose(lo, [2, 4, 1]) and np.allclose(hi, [6, 8, 3])


def test_ct_tissue_engine_on_a_generated_ct(tmp_path):
    small_series(tmp_path / "s", n=20)
    engine = CtTissueThresholdEngine()
    seen = []
    result = engine.predict(engine.request_from_paths([tmp_path / "s"]), progress=lambda f, m: seen.append(f))
    labels, volume = result["labels"], result["volume"]
    hu = volume.real(volume.voxels)
    assert labels.shape == volume.shape
    assert np.all(hu[labels == 3] > 250) and (labels == 3).sum() > 20  # bone is dense
    assert np.all(hu[labels == 2] < -400) and (labels == 2).sum() > 100  # lungs
    assert labels[:, 0, 0].max() == 0  # outside air is not body
    assert seen[-1] == 1.0
    written = engine.write_result(result, tmp_path / "ct.dcm")
    back, _ = read_seg(written[0])
    assert np.array_equal(back.on_grid(volume.geometry, volume.shape).labels > 0, labels > 0)


def test_ct_tissue_engine_refuses_non_ct(tmp_path):
    engine = CtTissueThresholdEngine()
    image = sitk.GetImageFromArray(np.full((3, 8, 8), 100, np.int16))
    with pytest.raises(EngineError, match="does not look like a CT"):
        engine.predict({"image": image})


def write_rtstruct(path: Path, volume, square_mm: tuple[float, float, float, float], z_mm: float) -> Path:
    """A minimal RT structure set with one square contour (x0, y0, x1, y1 in LPS mm) on the plane z_mm."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "RTSTRUCT", generate_uid(), volume.meta["study_uid"]
    roi = Dataset()
    roi.ROINumber, roi.ROIName = 7, "GTV"
    ds.StructureSetROISequence = Sequence([roi])
    x0, y0, x1, y1 = square_mm
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = 4
    contour.ContourData = [x0, y0, z_mm, x1, y0, z_mm, x1, y1, z_mm, x0, y1, z_mm]
    item = Dataset()
    item.ReferencedROINumber = 7
    item.ROIDisplayColor = [255, 0, 0]
    item.ContourSequence = Sequence([contour])
    ds.ROIContourSequence = Sequence([item])
    ds.save_as(path, enforce_file_format=True)
    return path


def test_rtstruct_contour_is_rasterized_on_the_image(tmp_path):
    from engines.core.filetypes import classify
    from engines.radiology.overlays import read_rtstruct

    small_series(tmp_path / "s", n=8, orientation=(-1, 0, 0, 0, 1, 0))  # columns run right-to-left: flipped on display
    volume = load(tmp_path / "s")
    g = volume.geometry
    z = float(g.index_to_lps([0, 0, 4])[2])
    lo, hi = g.index_to_lps([10, 20, 4]), g.index_to_lps([20, 30, 4])
    path = write_rtstruct(tmp_path / "rt.dcm", volume, (lo[0], lo[1], hi[0], hi[1]), z)
    assert classify(path) == "dicom-rtstruct"
    label_map, problems = read_rtstruct(path, g, volume.shape)
    assert label_map.names == {1: "GTV"} and label_map.colours[1] == (255, 0, 0) and problems == []
    drawn = np.argwhere(label_map.labels == 1)
    assert set(drawn[:, 0]) == {4}
    assert drawn[:, 1].min() >= 20 and drawn[:, 1].max() <= 30 and drawn[:, 2].min() >= 10 and drawn[:, 2].max() <= 20
    assert len(drawn) >= 9 * 9
    scan = scan_dicom(tmp_path)
    assert [s.kind for s in scan.overlays()] == ["rtstruct"]
