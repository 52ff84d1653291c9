"""Bundled radiology samples, generated on first use (no download).

``ct-series``: a 512 x 512 x 96 chest-abdomen CT built on a real CT header (pydicom-data's 693_UNCI.dcm,
a 512^2 CT) with new UIDs, real slice positions and an anatomy-like phantom in Hounsfield units: body with
fat layer, lungs with vessels and a nodule, heart, contrast aorta, spine and ribs, liver with a hypodense
lesion, spleen, kidneys. File names do not sort by position and InstanceNumber runs against position, as
on many scanners, so the sample exercises the position sort.

``mr-brain``: the MNI152 2009a T1 template (197 x 233 x 189, 1 mm, a real averaged brain MR shipped inside the
nilearn wheel) with a grey/white-matter label map from its tissue probability maps (> 50 %), as NIfTI files in
one folder: the workspace opens the image and lays the label map over it.

``lung1-ct``: a real chest CT (512 x 512 x 48, 0.57 x 0.57 x 5 mm) with its real lung-nodule mask, the ``lung1``
case of the pyradiomics 3.0.1 source distribution (BSD-3-Clause), fetched once by ``scripts/setup.sh`` from the
package registry (never at run time); the workspace opens the image and lays the nodule mask over it.

``write_ct_series`` is also what the tests and the benchmark use to generate series of any size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from engines.core.engine import EngineError

SAMPLES: dict[str, str] = {
    "ct-series": "engines.radiology.samples:make_ct_series",
    "mr-brain": "engines.radiology.samples:make_mr_brain",
    "lung1-ct": "engines.radiology.samples:make_lung1_ct",
}

#: where scripts/fetch_samples.py puts the real chest CT (ignored by git)
LUNG1_DIR = Path(__file__).resolve().parents[2] / "resources" / "samples" / "radiology" / "lung1"

PIXEL_MM = 0.7
SLICE_MM = 2.5


def _header():
    import pydicom
    from pydicom.data import get_testdata_file

    src = get_testdata_file("693_UNCI.dcm") or get_testdata_file("CT_small.dcm")
    if src is None:
        raise EngineError("pydicom's test data is missing: reinstall pydicom and pydicom-data")
    ds = pydicom.dcmread(src, stop_before_pixels=True)
    for kw in ("LargestImagePixelValue", "SmallestImagePixelValue", "WindowCenterWidthExplanation",
               "PixelPaddingValue", "ReferencedImageSequence", "SourceImageSequence", "AcquisitionNumber"):
        if kw in ds:
            delattr(ds, kw)
    return ds


def ct_phantom_slice(z_mm: float, rows: int = 512, cols: int = 512, pixel_mm: float = PIXEL_MM,
                     rng: np.random.Generator | None = None, z_range: tuple[float, float] = (-240.0, 0.0)) -> np.ndarray:
    """One axial slice of the phantom in HU (float32). ``z_mm`` is the LPS z (superior positive);
    the thorax is in the upper half of ``z_range``, the abdomen in the lower half."""
    rng = rng or np.random.default_rng(0)
    x = (np.arange(cols, dtype=np.float32) - (cols - 1) / 2) * pixel_mm  # +x: patient left (screen right)
    y = (np.arange(rows, dtype=np.float32) - (rows - 1) / 2) * pixel_mm  # +y: patient posterior (down)
    X, Y = np.meshgrid(x, y)
    zlo, zhi = z_range
    t = (z_mm - zlo) / max(1e-6, zhi - zlo)  # 0 at the bottom (abdomen) .. 1 at the top (thorax)
    img = np.full((rows, cols), -1000.0, dtype=np.float32)

    def ell(cx, cy, a, b):
        return ((X - cx) / a) ** 2 + ((Y - cy) / b) ** 2 <= 1.0

    s = 1.0 - 0.08 * abs(t - 0.5)
    body = ell(0, 5, 160 * s, 115 * s)
    img[body] = -100.0  # subcutaneous fat
    img[ell(0, 5, 146 * s, 102 * s)] = 40.0  # muscle / soft tissue
    img[ell(0, 128, 170, 6) & ~body] = 150.0  # table
    thorax = t > 0.5
    if thorax:
        lung_scale = float(np.sqrt(np.clip((0.96 - t) / 0.2, 0.0, 1.0)))  # domed apices below the top
        for side in (-1, 1):
            if lung_scale <= 0:
                break
            lung = ell(side * 72, 0, 52 * lung_scale, 78 * lung_scale)
            img[lung] = -860.0
            # vessels: branching dots, deterministic per slice
            for _ in range(14):
                vx = side * 72 + rng.uniform(-40, 40) * lung_scale
                vy = rng.uniform(-60, 60) * lung_scale
                img[lung & ell(vx, vy, rng.uniform(1.5, 3.5), rng.uniform(1.5, 3.5))] = -50.0
        img[ell(18, -20, 48, 40)] = 45.0  # heart
        if abs(z_mm - (zlo + 0.7 * (zhi - zlo))) < 7:
            r = np.sqrt(max(0.0, 7 ** 2 - (z_mm - (zlo + 0.7 * (zhi - zlo))) ** 2))
            img[ell(-70, -25, r, r)] = 25.0  # a right-lung nodule (patient right = screen left)
        img[ell(-20, -55, 12, 12)] = 190.0  # ascending aorta
    else:
        img[ell(-62, -5, 78, 68)] = 62.0  # liver (patient right)
        img[ell(85, 30, 32, 38)] = 50.0  # spleen
        if t > 0.18:
            img[ell(-52, -18, 13, 13) & (abs(z_mm - (zlo + 0.35 * (zhi - zlo))) < 14)] = 18.0  # liver lesion
        if t < 0.35:
            for side in (-1, 1):
                img[ell(side * 62, 55, 22, 32)] = 150.0  # kidneys (contrast)
                img[ell(side * 58, 55, 8, 12)] = 20.0  # renal pelvis
        for gx, gy in ((30, -60), (-20, -75), (55, -45)):
            img[ell(gx, gy, 10, 7)] = -900.0  # bowel gas
    img[ell(22, 52, 11, 11)] = 180.0  # descending aorta
    # spine: cortical ring, cancellous body, canal, posterior elements
    img[ell(0, 68, 20, 17)] = 700.0
    img[ell(0, 68, 16, 13)] = 240.0
    img[ell(0, 96, 24, 12) & ~ell(0, 93, 8, 8)] = 650.0
    img[ell(0, 93, 8, 8)] = 15.0
    if thorax:  # ribs in the chest wall, in the muscle layer under the fat
        for ang in np.radians(np.r_[200:341:28, 20:161:28]):
            if abs(np.degrees(ang) - 90) < 25:
                continue  # the spine is there
            img[ell(135 * s * np.cos(ang), 5 + 96 * s * np.sin(ang), 6, 5)] = 650.0
    img += rng.normal(0.0, 12.0, img.shape).astype(np.float32)
    img[~body & (img < -500)] = -1000.0 + rng.normal(0, 3, int(np.sum(~body & (img < -500)))).astype(np.float32)
    return img


def write_ct_series(dest: Path, n_slices: int = 96, rows: int = 512, cols: int = 512, *,
                    pixel_mm: float = PIXEL_MM, slice_mm: float = SLICE_MM, z0: float = -240.0, seed: int = 7,
                    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0), description: str | None = None,
                    series_uid: str | None = None, study_uid: str | None = None, names: str = "uid",
                    instance_reversed: bool = True, progress=None) -> list[Path]:
    """Write a CT series of the phantom into ``dest``; returns the file paths in position order.

    ``names``: 'uid' (files named by SOPInstanceUID: no relation to position) or 'index' (IM0001...).
    """
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = _header()
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = generate_uid()
    row_cos = np.asarray(orientation[:3], dtype=float)
    col_cos = np.asarray(orientation[3:], dtype=float)
    normal = np.cross(row_cos, col_cos)
    zs = [z0 + k * slice_mm for k in range(n_slices)]
    z_range = (z0, z0 + (n_slices - 1) * slice_mm) if n_slices > 1 else (z0 - 1, z0 + 1)
    origin0 = -(np.array([(cols - 1) / 2 * pixel_mm, (rows - 1) / 2 * pixel_mm, 0.0]))
    paths = []
    for k, z in enumerate(zs):
        hu = ct_phantom_slice(z, rows, cols, pixel_mm, rng, z_range)
        stored = np.clip(np.rint(hu + 1024.0), -32768, 32767).astype(np.int16)
        ds = base.copy()
        ds.file_meta = base.file_meta.copy()
        sop = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPInstanceUID = sop
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName = "CSI^Phantom"
        ds.PatientID = "CSI-PHANTOM-0001"
        ds.PatientBirthDate = ""
        ds.StudyDescription = "Synthetic chest-abdomen CT"
        ds.SeriesDescription = description or "Phantom CT on a real header (research sample)"
        ds.SeriesNumber = 3
        ds.Modality = "CT"
        ds.InstanceNumber = (n_slices - k) if instance_reversed else (k + 1)
        pos = origin0 @ np.stack([row_cos, col_cos, normal]) if False else (
            row_cos * origin0[0] + col_cos * origin0[1] + normal * z)
        ds.ImagePositionPatient = [float(round(v, 4)) for v in pos]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.SliceLocation = float(round(z, 4))
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = slice_mm
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.GantryDetectorTilt = 0
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OW"
        name = f"{sop}.dcm" if names == "uid" else f"IM{k + 1:04d}.dcm"
        path = dest / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        if progress is not None:
            progress((k + 1) / n_slices, f"writing slice {k + 1}/{n_slices}")
    return paths


def make_ct_series(dest: Path) -> Path:
    folder = Path(dest) / "ct-series"
    write_ct_series(folder, n_slices=96)
    return folder


MNI_FILES = {"t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
             "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
             "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"}


def mni_data_dir() -> Path:
    """nilearn's bundled template folder, found without importing nilearn (which pulls scikit-learn)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("the MNI152 sample needs nilearn (pip install nilearn): it ships the template")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    missing = [n for n in MNI_FILES.values() if not (folder / n).exists()]
    if missing:
        raise EngineError(f"nilearn's MNI152 files are missing ({', '.join(missing)}): reinstall nilearn")
    return folder


def make_mr_brain(dest: Path) -> Path:
    import shutil

    import SimpleITK as sitk

    from engines.radiology.geometry import Geometry
    from engines.radiology.overlays import LabelMap, write_label_file

    src = mni_data_dir()
    folder = Path(dest) / "mr-brain"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / MNI_FILES["t1"], folder / "mni152_t1.nii.gz")
    gm = sitk.ReadImage(str(src / MNI_FILES["gm"]))
    wm = sitk.GetArrayFromImage(sitk.ReadImage(str(src / MNI_FILES["wm"])))
    gm_arr = sitk.GetArrayFromImage(gm)
    labels = np.zeros(gm_arr.shape, dtype=np.uint8)
    labels[gm_arr > 127] = 1
    labels[(wm > 127) & (wm >= gm_arr)] = 2
    write_label_file(LabelMap(labels, Geometry.from_sitk(gm), {1: "grey matter", 2: "white matter"},
                              source="MNI152 tissue"), folder / "mni152_tissue.nii.gz")
    return folder


def make_lung1_ct(dest: Path, source: Path | None = None) -> Path:
    """The real chest CT with its nodule mask, as a folder the workspace opens as image + label layer."""
    import json
    import shutil

    src = Path(source) if source is not None else LUNG1_DIR
    if not (src / "lung1_image.nrrd").exists() or not (src / "lung1_label.nrrd").exists():
        raise EngineError("The real chest CT sample has not been fetched yet: run 'bash scripts/setup.sh install' "
                          "once (it fetches pyradiomics' lung1 case from the package registry), or open the "
                          "generated CT sample.")
    folder = Path(dest) / "lung1-chest-ct"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "lung1_image.nrrd", folder / "lung1_image.nrrd")
    shutil.copyfile(src / "lung1_label.nrrd", folder / "lung1_label.nrrd")
    (folder / "lung1_label.labels.json").write_text(json.dumps({"1": "lung nodule"}), encoding="utf-8")
    if (src / "LICENSE-pyradiomics.txt").exists():
        shutil.copyfile(src / "LICENSE-pyradiomics.txt", folder / "LICENSE-pyradiomics.txt")
    return folder
