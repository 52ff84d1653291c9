"""Small generated samples for the radiology AI engines (no download; deterministic).

``ct-kernel-pair``: 3 axial CT slices (256 x 256, 1.4 mm) of the radiology phantom, scanned by simulation
(radon, Poisson noise) and reconstructed with the smooth 'hann' kernel, as a DICOM series on pydicom-data's
real CT header (693_UNCI.dcm) with new UIDs; the same scan reconstructed with the sharp 'edge' kernel is
written beside it (``reference-edge/``) to compare with the conversion.

``dwi-lesions``: a simulated DWI subject (held-out seed 1001; MNI152 anatomy from nilearn) as a DICOM MR
series of 56 slices of 96 x 96 on pydicom's MR_small.dcm header (``dwi_series`` also returns the true lesion
mask, on the same [k, j, i] grid as the loaded volume; the tests use it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from engines.core.engine import EngineError

SAMPLES: dict[str, str] = {
    "ct-kernel-pair": "engines.radiology_ai.samples:make_ct_kernel_pair",
    "dwi-lesions": "engines.radiology_ai.samples:make_dwi_lesions",
}


def _header(name: str):
    import pydicom
    from pydicom.data import get_testdata_file

    src = get_testdata_file(name)
    if src is None:
        raise EngineError(f"pydicom's test file {name} is missing: reinstall pydicom and pydicom-data")
    ds = pydicom.dcmread(src, stop_before_pixels=True)
    for kw in ("LargestImagePixelValue", "SmallestImagePixelValue", "WindowCenterWidthExplanation",
               "PixelPaddingValue", "ReferencedImageSequence", "SourceImageSequence", "AcquisitionNumber",
               "SliceLocation"):
        if kw in ds:
            delattr(ds, kw)
    return ds


def write_series(dest: Path, stored_kji: np.ndarray, *, spacing_xyz: Sequence[float], origin_lps: Sequence[float],
                 modality: str, description: str, header: str, slope: float = 1.0, intercept: float = 0.0,
                 series_number: int = 5, kernel: str | None = None,
                 tags: dict[str, object] | None = None) -> list[Path]:
    """Write int16 slices ``[k, j, i]`` as an axial DICOM series (rows along +y, columns along +x, LPS)."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = _header(header)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    sop_class = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
    paths = []
    for k, plane in enumerate(stored_kji):
        ds = base.copy()
        ds.file_meta = base.file_meta.copy()
        sop = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPInstanceUID, ds.SOPClassUID = sop, sop_class
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series_uid, study_uid, frame_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "CSI^Simulation", "CSI-SIM-0005", ""
        ds.StudyDescription = "Simulated study (radiology AI sample)"
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.Modality = modality
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(origin_lps[0]), float(origin_lps[1]), float(origin_lps[2] + k * spacing_xyz[2])]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [float(spacing_xyz[1]), float(spacing_xyz[0])]
        ds.SliceThickness = float(spacing_xyz[2])
        ds.Rows, ds.Columns = int(plane.shape[0]), int(plane.shape[1])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.WindowCenter, ds.WindowWidth = 40, 400
            if kernel:
                ds.ConvolutionKernel = kernel
        for keyword, value in (tags or {}).items():
            setattr(ds, keyword, value)
        ds.PixelData = np.ascontiguousarray(plane, dtype=np.int16).tobytes()
        ds["PixelData"].VR = "OW"
        path = dest / f"IM{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def ct_kernel_scan(n_slices: int = 3, size: int = 256, seed: int = 9500, photons: float = 2e5,
                   kernels: Sequence[str] = ("hann", "edge")) -> dict[str, np.ndarray]:
    """Held-out physics scans of the radiology phantom: {kernel: HU [k, j, i]} (phantom seeds 9500+)."""
    from engines.radiology_ai import kernels as K

    rng = np.random.default_rng(seed)
    stacks: dict[str, list] = {k: [] for k in kernels}
    for n in range(n_slices):
        hu = K.anatomy_phantom(size, -150.0 + 2.5 * n, seed + n)
        recon = K.simulate_pair_set(hu, rng, K.ScanSettings(photons=photons), kernels)
        for k in kernels:
            stacks[k].append(recon[k])
    return {k: np.stack(v) for k, v in stacks.items()}


def make_ct_kernel_pair(dest: Path) -> Path:
    scans = ct_kernel_scan()
    pixel = 1.4
    n = scans["hann"].shape[1]
    origin = (-(n - 1) / 2 * pixel, -(n - 1) / 2 * pixel, -150.0)
    for kernel, folder in (("hann", "ct-hann"), ("edge", "reference-edge")):
        stored = np.clip(np.rint(scans[kernel] + 1024), -32768, 32767).astype(np.int16)
        write_series(Path(dest) / folder, stored, spacing_xyz=(pixel, pixel, 2.5), origin_lps=origin, modality="CT",
                     description=f"Simulated CT, {kernel} kernel (research sample)", header="693_UNCI.dcm",
                     intercept=-1024.0, series_number=2 if kernel == "hann" else 3, kernel=kernel.upper())
    return Path(dest) / "ct-hann"


def dwi_series(dest: Path, seed: int = 1001) -> tuple[Path, np.ndarray]:
    """Write simulated DWI subject ``seed`` as a DICOM MR series; returns (folder, lesion mask [k, j, i])."""
    from engines.radiology_ai.dwi_sim import SPACING_IJK, simulate_subject

    sub = simulate_subject(seed)
    # RAS voxel grid -> LPS: flip i and j so that rows run anterior->posterior and columns right->left
    dwi = sub.dwi[:, ::-1, ::-1]
    lesions = sub.lesions[:, ::-1, ::-1]
    aff = sub.affine_ras
    last = aff @ np.array([SHAPE_I - 1, SHAPE_J - 1, 0, 1.0])
    origin_lps = (-float(last[0]), -float(last[1]), float(aff[2, 3]))
    scale = 1000.0 / max(1e-6, float(np.percentile(dwi, 99.5)))
    stored = np.clip(np.rint(dwi * scale), 0, 32767).astype(np.int16)
    write_series(dest, stored, spacing_xyz=SPACING_IJK, origin_lps=origin_lps, modality="MR",
                 description="Simulated DWI b1000 (research sample)", header="MR_small.dcm", series_number=4,
                 tags=DWI_TAGS)
    return Path(dest), np.ascontiguousarray(lesions)


SHAPE_I, SHAPE_J = 96, 96
#: what a scanner records for a b=1000 trace image (MR_small.dcm's header is a spin echo without them)
DWI_TAGS = {"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"], "ScanningSequence": "EP",
            "SequenceVariant": "SK\\SP", "SequenceName": "*ep_b1000t", "DiffusionBValue": 1000.0,
            "ProtocolName": "ep2d_diff_b1000 (simulated)"}


def make_dwi_lesions(dest: Path) -> Path:
    folder, lesions = dwi_series(Path(dest) / "dwi")
    return folder


def dwi_volume(seed: int):
    """Simulated DWI subject ``seed`` as an in-memory MR Volume on the same LPS grid ``dwi_series`` writes
    (no DICOM tags, so the contract warns that it cannot confirm diffusion), with its lesion mask [k, j, i]."""
    from engines.radiology.geometry import Geometry
    from engines.radiology.reader import Volume
    from engines.radiology_ai.dwi_sim import SPACING_IJK, simulate_subject

    sub = simulate_subject(seed)
    aff = sub.affine_ras
    last = aff @ np.array([SHAPE_I - 1, SHAPE_J - 1, 0, 1.0])
    origin_lps = (-float(last[0]), -float(last[1]), float(aff[2, 3]))
    dwi = np.ascontiguousarray(sub.dwi[:, ::-1, ::-1]) * 1000.0
    volume = Volume(dwi.astype(np.float32), Geometry(tuple(SPACING_IJK), origin_lps, np.eye(3)), modality="MR",
                    meta={"series_description": f"simulated DWI b1000, subject {seed}"})
    return volume, np.ascontiguousarray(sub.lesions[:, ::-1, ::-1])
