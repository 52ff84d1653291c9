"""NIfTI/MHA/NRRD files that are cut short, damaged or odd, generated here (nibabel, SimpleITK, raw MHA)."""
from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from engines.core.engine import EngineError
from engines.radiology.reader import load_volume_file


def phantom(shape=(24, 20, 16)) -> np.ndarray:
    return (np.random.default_rng(0).random(shape) * 1000 + 1).astype(np.int16)  # no voxel is 0


def mha(path: Path, *, spacing="1 1 1", matrix="1 0 0 0 1 0 0 0 1", dims="8 8 8", ndims=3,
        data: bytes | None = None) -> Path:
    """A MetaImage written by hand, so its header may say what no writer would."""
    data = np.arange(512, dtype=np.int16).tobytes() if data is None else data
    head = (f"ObjectType = Image\nNDims = {ndims}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
            f"CompressedData = False\nTransformMatrix = {matrix}\nOffset = {' '.join(['0'] * ndims)}\n"
            f"ElementSpacing = {spacing}\nDimSize = {dims}\nElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    path.write_bytes(head.encode() + data)
    return path


@pytest.mark.parametrize("name", ["half.nii.gz", "half.nii"])
def test_a_volume_cut_in_half_is_refused_not_read_as_zeros(tmp_path, name):
    full = tmp_path / ("full" + name[4:])
    nibabel.save(nibabel.Nifti1Image(phantom(), np.eye(4)), full)
    assert np.all(load_volume_file(full).voxels != 0)  # the intact file reads completely
    data = full.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match=rf"^{name.replace('.', '[.]')}: the file is truncated"):
        load_volume_file(tmp_path / name)


def test_a_corrupt_gzip_stream_is_one_plain_sentence(tmp_path):
    full = tmp_path / "full.nii.gz"
    nibabel.save(nibabel.Nifti1Image(phantom(), np.eye(4)), full)
    data = bytearray(full.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(range(64))
    (tmp_path / "bad.nii.gz").write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"^bad\.nii\.gz: ") as err:
        load_volume_file(tmp_path / "bad.nii.gz")
    assert "Error" not in str(err.value) and "zlib" not in str(err.value)


def test_nrrd_with_its_gzip_data_cut_short_is_plain(tmp_path):
    ok = tmp_path / "ok.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(phantom((8, 8, 8))), str(ok), useCompression=True)
    data = ok.read_bytes()
    start = data.index(b"\n\n") + 2
    (tmp_path / "cut.nrrd").write_bytes(data[: start + (len(data) - start) // 2])
    with pytest.raises(EngineError) as err:
        load_volume_file(tmp_path / "cut.nrrd")
    message = str(err.value)
    assert message.startswith("cut.nrrd: cannot read this volume: ") and "cut short" in message
    assert "_nrrd" not in message and "[nrrd]" not in message


@pytest.mark.parametrize("name, kwargs, words", [
    ("zero.mha", {"spacing": "0 0 1"}, "voxel spacing that is zero, negative or not a number"),
    ("nan.mha", {"spacing": "nan nan 1"}, "voxel spacing that is zero, negative or not a number"),
    ("flat.mha", {"matrix": "0 0 0 0 0 0 0 0 0"}, "orientation (direction cosines) that is all zero"),
    ("short.mha", {"data": bytes(500)}, "shorter than its header declares"),
])
def test_impossible_mha_headers_give_a_plain_sentence(tmp_path, name, kwargs, words):
    with pytest.raises(EngineError) as err:
        load_volume_file(mha(tmp_path / name, **kwargs))
    message = str(err.value)
    assert message.startswith(f"{name}: cannot read this volume: ") and words in message
    assert "itk" not in message.lower() and ".hxx" not in message and "refused" in message


def test_negative_and_zero_voxel_sizes_are_findings(tmp_path):
    volume = load_volume_file(mha(tmp_path / "neg.mha", spacing="-0.5 -0.5 1"))
    assert volume.geometry.spacing == pytest.approx((0.5, 0.5, 1.0))
    assert any("negative voxel size" in f and "absolute value is used" in f for f in volume.findings)
    img = nibabel.Nifti1Image(phantom((8, 8, 8)), None)
    img.header["pixdim"][1:4] = [0.0, 1.0, 1.0]
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    nibabel.save(img, tmp_path / "zero.nii")
    volume = load_volume_file(tmp_path / "zero.nii")
    assert any("voxel size of 0 x 1 x 1 mm" in f and "not real" in f for f in volume.findings)


def test_a_5d_volume_shows_its_first_3d_volume_and_says_so(tmp_path):
    data = np.arange(4 * 4 * 4 * 2 * 3, dtype=np.int16).reshape(4, 4, 4, 2, 3)
    nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), tmp_path / "five.nii.gz")
    volume = load_volume_file(tmp_path / "five.nii.gz")
    assert volume.voxels.ndim == 3 and volume.voxels.size == 64
    assert any(f.startswith("5-D volume") for f in volume.findings)
