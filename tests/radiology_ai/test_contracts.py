"""Input contracts of the DWI lesion models and of kernel conversion, on real pydicom/nilearn files and the samples."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from engines.core.checks import InputRefused, checks_of, warning_lines
from engines.radiology.reader import load_series, load_volume_file, scan_dicom
from engines.radiology_ai.common import input_volume
from engines.radiology_ai.contracts import ct_kernel_checks, dwi_checks, kernel_sharpness
from engines.radiology_ai.kernel_engine import KernelConversionEngine
from engines.radiology_ai.lesion_engine import LesionSegmentationSEEngine
from engines.radiology_ai.samples import dwi_series, make_ct_kernel_pair

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:nilearn")


def statuses(checks) -> dict[str, str]:
    return {c.name: c.status for c in checks}


@pytest.fixture(scope="module")
def dwi_folder(tmp_path_factory) -> Path:
    return dwi_series(tmp_path_factory.mktemp("dwi") / "dwi", seed=1004)[0]


@pytest.fixture(scope="module")
def ct_pair(tmp_path_factory) -> Path:
    return make_ct_kernel_pair(tmp_path_factory.mktemp("ctpair"))


@pytest.fixture(scope="module")
def mni_t1(tmp_path_factory) -> Path:
    """nilearn's MNI152 T1 template (a real averaged T1 brain MR, shipped in the wheel) as a NIfTI."""
    import nibabel as nib
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=2)
    path = tmp_path_factory.mktemp("t1") / "mni152_t1.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj, np.float32), t1.affine), path)
    return path


def retag(folder: Path, dest: Path, **tags) -> Path:
    """Copy a DICOM series, setting (or with None, deleting) tags on every slice."""
    dest.mkdir()
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        for keyword, value in tags.items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(dest / f.name)
    return dest


# -- DWI ---------------------------------------------------------------------------------------------
def test_dwi_sample_passes_and_the_result_carries_its_checks(dwi_folder):
    engine = LesionSegmentationSEEngine()
    engine.load("cpu")
    result = engine.predict({"image_path": dwi_folder})
    got = statuses(checks_of(result))
    assert got == {"modality": "passed", "sequence": "passed", "intensity": "passed", "out-of-distribution": "passed"}
    assert "b-value 1000" in {c.name: c.reason for c in checks_of(result)}["sequence"]
    assert warning_lines(result) == []


def test_dwi_pixels_tagged_as_flair_are_refused_before_inference(dwi_folder, tmp_path):
    flair = retag(dwi_folder, tmp_path / "flair", SeriesDescription="AX T2 FLAIR", ProtocolName="t2_tirm_tra",
                  SequenceName="*tir2d1", ScanningSequence="SE\\IR", ImageType=["ORIGINAL", "PRIMARY", "M"],
                  DiffusionBValue=None)
    engine = LesionSegmentationSEEngine()
    engine.load("cpu")
    with pytest.raises(InputRefused, match="another sequence .*FLAIR") as info:
        engine.predict({"image_path": flair})
    assert statuses(info.value.checks)["sequence"] == "refused"


def test_adc_map_is_refused(dwi_folder, tmp_path):
    adc = retag(dwi_folder, tmp_path / "adc", SeriesDescription="dDWI_ADC",
                ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "ADC"])
    with pytest.raises(InputRefused, match="ADC .*infarcts are dark"):
        dwi_checks(load_series(scan_dicom(adc).image_series()[0]))


@pytest.mark.parametrize("name, reason", [("MR2_J2KI.dcm", "ProtocolName 'T1W/SE/1024'"),
                                          ("emri_small.dcm", "ImageType T1")])
def test_real_t1_dicom_is_refused_by_its_tags(name, reason):
    engine = LesionSegmentationSEEngine()
    engine.load("cpu")
    with pytest.raises(InputRefused, match="another sequence") as info:
        engine.predict({"image_path": Path(get_testdata_file(name))})
    assert reason in str(info.value)


def test_spin_echo_without_diffusion_tags_is_a_strong_warning():
    volume = input_volume({"image_path": Path(get_testdata_file("MR_small.dcm"))})
    checks = dwi_checks(volume)
    sequence = [c for c in checks.items if c.name == "sequence"][0]
    assert sequence.status == "warned"
    assert "do not say this MR is diffusion-weighted" in sequence.reason and "ScanningSequence SE" in sequence.reason


def test_ct_is_refused():
    with pytest.raises(InputRefused, match="this is a CT"):
        dwi_checks(input_volume({"image_path": Path(get_testdata_file("CT_small.dcm"))}))


def test_mni152_t1_nifti_cannot_be_confirmed_and_looks_like_t1(mni_t1):
    checks = dwi_checks(load_volume_file(mni_t1))
    reasons = {c.name: (c.status, c.reason) for c in checks.items}
    assert reasons["sequence"][0] == "warned"
    assert reasons["sequence"][1].startswith("cannot confirm this is diffusion-weighted: mni152_t1.nii.gz")
    assert reasons["intensity"][0] == "warned" and "as on T1" in reasons["intensity"][1]


def test_simulated_dwi_nifti_has_a_dwi_intensity_profile(tmp_path):
    import nibabel as nib

    from engines.radiology_ai.dwi_sim import simulate_subject

    sub = simulate_subject(1006)
    nib.save(nib.Nifti1Image(np.transpose(sub.dwi, (2, 1, 0)) * 800, sub.affine_ras), tmp_path / "dwi.nii.gz")
    got = statuses(dwi_checks(load_volume_file(tmp_path / "dwi.nii.gz")).items)
    assert got == {"sequence": "warned", "intensity": "passed"}


# -- kernel conversion ---------------------------------------------------------------------------------
def test_soft_sample_sharpened_passes_and_carries_checks(ct_pair):
    engine = KernelConversionEngine()
    engine.load("cpu")
    result = engine.predict({"image_path": ct_pair, "direction": "sharpen"})
    assert statuses(checks_of(result)) == {"hu-range": "passed", "kernel": "passed", "out-of-distribution": "passed"}
    assert warning_lines(result) == []


def test_sharpening_a_sharp_series_and_smoothing_a_soft_one_warn(ct_pair):
    sharp = load_series(scan_dicom(ct_pair.parent / "reference-edge").image_series()[0])
    hu = np.asarray(sharp.real(sharp.voxels), np.float32)
    kernel = {c.name: c for c in ct_kernel_checks(sharp, hu, "sharpen", "hann").items}["kernel"]
    assert kernel.status == "warned" and "already reconstructed with a sharp kernel (EDGE)" in kernel.reason
    assert statuses(ct_kernel_checks(sharp, hu, "smooth", "edge").items)["kernel"] == "passed"
    engine = KernelConversionEngine()
    engine.load("cpu")
    result = engine.predict({"image_path": ct_pair, "direction": "smooth"})
    assert any(line.startswith("kernel: the series is already reconstructed with a soft kernel (HANN)")
               for line in warning_lines(result))


def test_mr_is_refused_for_kernel_conversion(mni_t1):
    engine = KernelConversionEngine()
    engine.load("cpu")
    with pytest.raises(InputRefused, match="needs a CT; this series is MR"):
        engine.predict({"image_path": Path(get_testdata_file("MR_small.dcm"))})
    with pytest.raises(InputRefused, match="judged from its values"):
        engine.predict({"image_path": mni_t1})


def test_air_far_from_minus_1000_hu_warns(ct_pair):
    volume = load_series(scan_dicom(ct_pair).image_series()[0])
    shifted = dataclasses.replace(volume, intercept=volume.intercept + 250.0)  # air now reads about -750 HU
    engine = KernelConversionEngine()
    engine.load("cpu")
    result = engine.predict({"volume": shifted, "direction": "sharpen"})
    line = [w for w in warning_lines(result) if w.startswith("hu-range")][0]
    assert "not -1000" in line


@pytest.mark.parametrize("tag, expected", [("B30f", "soft"), ("B70f", "sharp"), ("Br40d\\3", "soft"),
                                           ("STANDARD", "soft"), ("BONEPLUS", "sharp"), ("LUNG", "sharp"),
                                           ("FC13", "soft"), ("FC51", "sharp"), ("HANN", "soft"), ("EDGE", "sharp"),
                                           ("YA", "sharp"), ("FOO", None)])
def test_kernel_sharpness_of_vendor_kernels(tag, expected):
    assert kernel_sharpness(tag) == expected
