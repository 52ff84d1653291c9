"""An RT structure set with one malformed contour: that contour is skipped with a finding, the rest drawn."""
from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from engines.core.filetypes import RTSTRUCT_SOP
from engines.radiology.geometry import Geometry
from engines.radiology.overlays import read_rtstruct


def contour(values):
    item = Dataset()
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = len(values) // 3
    item.ContourData = [float(v) for v in values]
    return item


def test_one_bad_contour_is_skipped_not_the_whole_set(tmp_path):
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = RTSTRUCT_SOP, generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_SOP, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.Modality = generate_uid(), generate_uid(), "RTSTRUCT"
    roi = Dataset()
    roi.ROINumber, roi.ROIName = 1, "lesion"
    ds.StructureSetROISequence = Sequence([roi])
    good = contour([2, 2, 1, 10, 2, 1, 10, 10, 1, 2, 10, 1])  # a square on slice 1
    bad = contour([2, 2, 2, 10, 2, 2, 10, 10])  # 8 values: not x, y, z triplets
    rc = Dataset()
    rc.ReferencedROINumber = 1
    rc.ROIDisplayColor = [255, 0, 0]
    rc.ContourSequence = Sequence([good, bad])
    ds.ROIContourSequence = Sequence([rc])
    path = tmp_path / "rs.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    labels, problems = read_rtstruct(path, Geometry(), (4, 16, 16))
    assert labels.labels[1, 5, 5] == 1 and labels.labels[1].sum() > 40 and labels.labels[2].sum() == 0
    assert any("1 contour(s) have malformed Contour Data" in p for p in problems)
    assert labels.names == {1: "lesion"} and np.unique(labels.labels).tolist() == [0, 1]
