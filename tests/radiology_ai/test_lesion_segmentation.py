"""DWI lesion segmentation: the shipped SE U-Net on a held-out simulated subject, geometry, exports, bad inputs."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from engines.core.engine import EngineError
from engines.core.weights import ModelCard, WeightsStore
from engines.radiology.overlays import LabelMap, read_label_file, read_seg
from engines.radiology.reader import load_series, scan_dicom
from engines.radiology_ai.dwi_sim import lesion_metrics
from engines.radiology_ai.lesion_engine import LesionSegmentationSEEngine
from engines.radiology_ai.samples import dwi_series

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:nilearn")
DICE_MIN = 0.5


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    """Held-out subject 1003 (training used seeds 0-39) as a DICOM MR series, with its true lesions."""
    folder, truth = dwi_series(tmp_path_factory.mktemp("dwi") / "dwi", seed=1003)
    return folder, truth


@pytest.fixture(scope="module")
def result(subject):
    engine = LesionSegmentationSEEngine()
    engine.load("cpu")
    volume = load_series(scan_dicom(subject[0]).image_series()[0])
    return engine, volume, engine.predict({"volume": volume})


def test_held_out_subject_dice_and_geometry(subject, result):
    _, volume, res = result
    truth = subject[1]
    lm = res["label_map"]
    assert isinstance(lm, LabelMap)
    assert lm.labels.shape == volume.shape == truth.shape
    assert lm.geometry.same_grid(volume.geometry)
    m = lesion_metrics(lm.labels, truth)
    assert m["lesions"] >= 1
    assert m["dice"] > DICE_MIN, m
    assert m["found"] >= 1
    # a flipped mask would miss: the prediction overlaps the truth far better than its mirror image
    assert lesion_metrics(lm.labels[:, :, ::-1], truth)["dice"] < m["dice"]


def test_seg_and_nifti_exports_round_trip(result, tmp_path):
    engine, volume, res = result
    seg = engine.write_result(res, tmp_path / "lesions.dcm")[0]
    back, ref_uid = read_seg(seg)
    assert ref_uid == volume.series.uid
    on_grid = back.on_grid(volume.geometry, volume.shape)
    np.testing.assert_array_equal(on_grid.labels > 0, res["labels"] > 0)
    files = engine.write_result(res, tmp_path / "lesions.nii.gz")
    nii = read_label_file(files[0]).on_grid(volume.geometry, volume.shape)
    np.testing.assert_array_equal(nii.labels, res["labels"])
    assert nii.names == {1: "lesion (DWI bright)"}
    with pytest.raises(EngineError, match="--out"):
        engine.write_result(res, tmp_path / "lesions.png")


def test_bad_inputs(subject, tmp_path):
    engine = LesionSegmentationSEEngine()
    engine.load("cpu")
    two = tmp_path / "two"
    two.mkdir()
    for name in ("IM0020.dcm", "IM0021.dcm"):
        shutil.copy(subject[0] / name, two / name)
    with pytest.raises(EngineError, match="at least 8 slices"):
        engine.predict({"image_path": two})
    with pytest.raises(EngineError, match="CT"):
        engine.predict({"image_path": Path(get_testdata_file("CT_small.dcm"))})
    gappy = tmp_path / "gappy"
    shutil.copytree(subject[0], gappy)
    (gappy / "IM0030.dcm").unlink()
    with pytest.raises(EngineError, match="missing slice"):
        engine.predict({"image_path": gappy})
    unloaded = LesionSegmentationSEEngine()  # predict before load loads on the resolved device (the CPU here)
    assert unloaded.predict({"image_path": subject[0]})["lesions"] >= 1 and unloaded.network_device == "cpu"


def test_checkpoint_that_is_not_ours_is_refused(isolated_home):
    import torch

    user = isolated_home / "data" / "models"
    user.mkdir(parents=True, exist_ok=True)
    WeightsStore.save(user, "lesion-unet-se", {"w": torch.zeros(3)},
                      ModelCard(name="x", architecture="kernel-conversion-se-resnet@1"))
    with pytest.raises(EngineError, match="kernel-conversion"):
        LesionSegmentationSEEngine().load("cpu")
    WeightsStore.save(user, "lesion-unet-se", {"w": torch.zeros(3)},
                      ModelCard(name="x", architecture="unet2d-se@1",
                                arch_args={"in_channels": 1, "classes": 2, "base": 12, "levels": 4, "se": True}))
    with pytest.raises(EngineError, match="do not fit"):
        LesionSegmentationSEEngine().load("cpu")


def test_lesion_metrics_counts_components():
    truth = np.zeros((6, 20, 20), np.uint8)
    truth[1:3, 2:5, 2:5] = 1
    truth[4, 15:18, 15:18] = 1
    pred = np.zeros_like(truth)
    pred[1:3, 2:5, 2:5] = 1  # finds the first
    pred[4, 2:4, 15:17] = 1  # a false positive
    m = lesion_metrics(pred, truth)
    assert (m["lesions"], m["found"], m["false_positives"]) == (2, 1, 1)
    assert 0 < m["dice"] < 1


def test_nifti_input_in_ras_keeps_lesions_in_place(tmp_path):
    """The same model through a NIfTI (RAS affine, another reader path): held-out subject 1005."""
    import nibabel as nib

    from engines.radiology.reader import load_volume_file
    from engines.radiology_ai.dwi_sim import simulate_subject

    sub = simulate_subject(1005)
    nib.save(nib.Nifti1Image(np.transpose(sub.dwi, (2, 1, 0)) * 800, sub.affine_ras), tmp_path / "dwi.nii.gz")
    nib.save(nib.Nifti1Image(np.transpose(sub.lesions, (2, 1, 0)), sub.affine_ras), tmp_path / "truth.nii.gz")
    engine = LesionSegmentationSEEngine()
    engine.load("cpu")
    res = engine.predict({"image_path": tmp_path / "dwi.nii.gz"})
    truth = load_volume_file(tmp_path / "truth.nii.gz")
    assert truth.geometry.same_grid(res["label_map"].geometry)
    assert lesion_metrics(res["labels"], truth.voxels)["dice"] > DICE_MIN
