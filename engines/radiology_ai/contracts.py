"""Input contracts of the radiology AI engines, checked before inference from the DICOM tags and cheap statistics.

* DWI lesion models: the volume must be a diffusion-weighted MR (b-value, ImageType DIFFUSION/TRACEW,
  an echo-planar ``ep_b`` sequence name, a DWI series description); a CT, an ADC map, or an MR whose tags name
  another sequence (T1, T2, FLAIR, ...) is refused; a file without tags (NIfTI/NRRD/MHA) is a warning, and the
  brain's intensity profile is checked too (white matter brightest, as on T1, is a warning).
* Kernel conversion: a CT (an MR is refused), air at about -1000 HU, and the ConvolutionKernel tag against the
  chosen direction (sharpening a series that is already sharp, or smoothing a soft one, is a warning).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from engines.core.checks import Checks

DIFFUSION_IMAGE_TYPES = {"DIFFUSION", "TRACEW", "TRACE", "DWI", "ISODWI", "ISOTROPIC", "ADC", "EADC", "FA"}
_DIFFUSION_WORDS = re.compile(r"(dwi|diffusion|(?<![a-z])diff|ep_b|(?<![a-z])b[-_ ]?=?[1-9]\d{2,3}(?!\d)|"
                              r"(?<![a-z])tracew?(?![a-z]))", re.I)
_OTHER_SEQUENCE = re.compile(r"(?<![a-z0-9])(t1w?|t2w?|t2\*|flair|mprage|mp-rage|spgr|tirm|stir|swi|pdw?|tof|"
                             r"bravo|vibe|space|cube|localizer|scout|survey)(?![a-z0-9])", re.I)
_ADC = re.compile(r"(?<![a-z])(e?adc|apparent diffusion)(?![a-z])", re.I)
BRIGHT_DEPTH_T1_LIKE = 1.25  # the brightest 15% of the brain lie deeper than this times the mean depth


def dicom_header(volume) -> Any | None:
    """The first slice's pydicom header of a DICOM-loaded Volume; None for NIfTI/MHA/NRRD."""
    series = getattr(volume, "series", None)
    if series is None or not series.slices:
        return None
    return series.slices[0].header


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        return "\\".join(str(v) for v in value)
    return str(value)


def b_value(ds) -> float | None:
    """The diffusion b-value (s/mm²) from the standard tag (0018,9087), the enhanced-MR functional groups, or the
    Siemens (0019,100C) / Philips (2001,1003) private tags; None when none is present."""
    candidates = [ds]
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(seq)
        if groups:
            diff = groups[0].get("MRDiffusionSequence")
            if diff:
                candidates.append(diff[0])
    for item in candidates:
        value = item.get("DiffusionBValue")
        if value is not None and str(value).strip() != "":
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
    for tag in (0x0019100C, 0x20011003):
        elem = ds.get(tag)
        if elem is not None:
            try:
                raw = elem.value
                return float(raw.decode() if isinstance(raw, bytes) else raw)
            except (TypeError, ValueError, UnicodeDecodeError, AttributeError):
                pass
    return None


def diffusion_tags(ds) -> dict[str, Any]:
    """What the header says about the sequence: evidence for diffusion, for an ADC map, for another sequence."""
    image_type = {v.strip().upper() for v in _text(ds, "ImageType").split("\\") if v.strip()}
    names = {kw: _text(ds, kw) for kw in ("SeriesDescription", "ProtocolName", "SequenceName")}
    b = b_value(ds)
    evidence = []
    if b is not None and b > 0:
        evidence.append(f"b-value {b:g} s/mm²")
    found = image_type & (DIFFUSION_IMAGE_TYPES - {"ADC", "EADC", "FA"})
    if found:
        evidence.append(f"ImageType {'/'.join(sorted(found))}")
    for kw, text in names.items():
        if text and _DIFFUSION_WORDS.search(text):
            evidence.append(f"{kw} '{text}'")
    adc = bool(image_type & {"ADC", "EADC", "FA"}) or any(_ADC.search(t) for t in names.values() if t)
    other = []
    for kw, text in names.items():
        m = _OTHER_SEQUENCE.search(text) if text else None
        if m:
            other.append(f"{kw} '{text}'")
    named = image_type & {"T1", "T2", "FLAIR", "PD", "SWI", "T2*", "MPRAGE"}
    if named:
        other.append(f"ImageType {'/'.join(sorted(named))}")
    return {"b_value": b, "evidence": evidence, "adc": adc, "other": other,
            "scanning_sequence": _text(ds, "ScanningSequence")}


def brain_bright_depth(real: np.ndarray, spacing_kji: tuple[float, float, float]) -> float | None:
    """Mean depth (distance inside the head outline) of the brightest 15% of the foreground over the mean depth
    of the foreground. On b=1000 DWI the brightest tissue is cortex (shallow, ratio about 0.65-1.0); on T1 it is
    white matter (deep, about 1.5). None when there is no foreground to measure."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    v = np.asarray(real, np.float32)
    step = max(1, int(np.ceil((v.size / 2.0e6) ** (1 / 3))))  # at most ~2 M voxels
    v = v[::step, ::step, ::step]
    if v.size < 1000 or float(v.max()) <= float(v.min()):
        return None
    t = threshold_otsu(v[::2, ::2, ::2])
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(v > 0.5 * t, iterations=2))
    lab, n = ndimage.label(mask)
    if n == 0:
        return None
    if n > 1:
        mask = lab == int(np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    if mask.sum() < 500:
        return None
    depth = ndimage.distance_transform_edt(mask, sampling=[s * step for s in spacing_kji])
    fg, d = v[mask], depth[mask]
    bright = fg >= np.percentile(fg, 85)
    return float(d[bright].mean() / max(float(d.mean()), 1e-6))


def dwi_checks(volume, real: np.ndarray | None = None) -> Checks:
    """The DWI lesion models' contract; raises InputRefused (an EngineError) for a CT, an ADC map, or an MR whose
    tags name another sequence."""
    checks = Checks()
    name = str(volume.meta.get("series_description") or "the volume")
    modality = (volume.modality or "").upper()
    if modality == "CT":
        checks.refuse("modality", "this is a CT; the lesion model was trained on diffusion-weighted MR")
    if modality and modality != "MR":
        checks.refuse("modality", f"this series is {modality}; the lesion model was trained on diffusion-weighted "
                                  f"MR")
    ds = dicom_header(volume)
    if ds is None:
        checks.warn("sequence", f"cannot confirm this is diffusion-weighted: {name} carries no acquisition tags "
                                f"(NIfTI/NRRD/MHA); the lesion model was trained on b=1000 DWI only")
    else:
        tags = diffusion_tags(ds)
        checks.passed("modality", "MR")
        if tags["adc"]:
            checks.refuse("sequence", "this is an ADC (or other derived diffusion) map, where infarcts are dark; the "
                                      "lesion model was trained on b=1000 diffusion-weighted images, where they "
                                      "are bright: open the b=1000 / TRACEW series")
        elif tags["evidence"]:
            b = tags["b_value"]
            if b is not None and b < 500:
                checks.warn("sequence", f"the b-value is {b:g} s/mm²; the lesion model was trained on b=1000-like "
                                        f"images (a b=0 image shows no diffusion restriction)")
            else:
                checks.passed("sequence", "diffusion-weighted: " + "; ".join(tags["evidence"]))
        elif tags["other"]:
            checks.refuse("sequence", f"the DICOM tags say this MR is another sequence ({'; '.join(tags['other'])}), "
                                      f"not diffusion-weighted; the lesion model was trained on b=1000 DWI and "
                                      f"would call normal bright tissue a lesion")
        else:
            seq = tags["scanning_sequence"] or "not recorded"
            checks.warn("sequence", f"the DICOM tags do not say this MR is diffusion-weighted (no b-value, no "
                                    f"DIFFUSION/TRACEW image type, ScanningSequence {seq}); the lesion model was "
                                    f"trained on b=1000 DWI only, so its lesions are unreliable here")
    if real is None:
        real = np.asarray(volume.real(volume.voxels), dtype=np.float32)
    ratio = brain_bright_depth(real, tuple(float(s) for s in volume.geometry.spacing[::-1]))
    if ratio is None:
        checks.warn("intensity", "no head outline was found to check the intensity profile")
    elif ratio > BRIGHT_DEPTH_T1_LIKE:
        checks.warn("intensity", f"the brightest tissue lies deep in the brain (depth ratio {ratio:.2f}): white "
                                 f"matter brighter than cortex, as on T1, not as on b=1000 DWI")
    else:
        checks.passed("intensity", f"brightest tissue near the cortex (depth ratio {ratio:.2f}), as on DWI")
    return checks


# -- kernel conversion ---------------------------------------------------------------------------------
_SOFT_WORDS = {"SOFT", "SMOOTH", "STANDARD", "STD", "HANN", "HAMMING", "BRAIN", "ABDOMEN", "BODY", "UB", "A", "B",
               "C", "FC01", "FC02", "FC03", "FC04", "FC05", "FC07", "FC08", "FC09", "FC10", "FC11", "FC12", "FC13",
               "FC14", "FC17", "FC18", "FC20", "FC21", "FC23", "FC26", "FBP_SOFT"}
_SHARP_WORDS = {"SHARP", "EDGE", "BONE", "BONEPLUS", "LUNG", "DETAIL", "RAMP", "HIGH", "ULTRA", "D", "E", "L",
                "YA", "YB", "YC", "YD", "FC30", "FC31", "FC35", "FC50", "FC51", "FC52", "FC53", "FC55", "FC56",
                "FC81", "FC86"}


def kernel_sharpness(kernel: str) -> str | None:
    """'soft', 'sharp', or None (medium or not recognised) for a ConvolutionKernel value: GE (SOFT, STANDARD,
    LUNG, BONE), Siemens (B30f, Br40, I70f: number < 50 soft, >= 50 sharp), Philips (A-C, D/E/L/Y*), Canon
    (FC), and this workstation's ladder (hann ... edge)."""
    words = [w.strip().upper() for w in re.split(r"[\\,/]", kernel or "") if w.strip()]
    for w in words:
        if w in _SHARP_WORDS:
            return "sharp"
        if w in _SOFT_WORDS:
            return "soft"
        m = re.fullmatch(r"[BHIQJTDCVSU][RSL]?(\d{2})[A-Z]?(\s*\d)?", w)
        if m:
            return "sharp" if int(m.group(1)) >= 50 else "soft"
    return None


def ct_kernel_checks(volume, hu: np.ndarray, direction: str, source_kernel: str) -> Checks:
    """Kernel conversion's contract: a CT (anything else is refused), air at about -1000 HU, and the recorded
    kernel against the direction."""
    checks = Checks()
    modality = (volume.modality or "").upper()
    ds = dicom_header(volume)
    if modality and modality != "CT":
        detail = "" if ds is not None else " (judged from its values: no air at about -1000 HU)"
        checks.refuse("modality", f"kernel conversion needs a CT; this series is {modality}{detail}")
    sample = hu[:: max(1, hu.shape[0] // 16), ::2, ::2] if hu.ndim == 3 else hu
    if sample.size == 0 or float(sample.min()) > -500:
        checks.refuse("hu-range", "this image does not look like a CT in Hounsfield units (no air below -500 HU); "
                                  "kernel conversion works on CT only")
    inside = sample[sample >= -1200]  # scanners pad outside the field of view with -2048 or -3024
    air = float(np.percentile(inside, 1)) if inside.size else float(sample.min())
    top = float(np.percentile(sample, 99.9))
    if not -1150 <= air <= -850:
        checks.warn("hu-range", f"air reads about {air:.0f} HU, not -1000: the rescale slope/intercept may be "
                                f"missing or wrong, and the networks were trained on calibrated HU")
    elif top > 4000:
        checks.warn("hu-range", f"values reach {top:.0f} HU (metal or unscaled data); the networks were trained "
                                f"on -1024..3071 HU")
    else:
        checks.passed("hu-range", f"air at about {air:.0f} HU")
    kernel = _text(ds, "ConvolutionKernel") if ds is not None else ""
    if not kernel:
        checks.passed("kernel", "the input's reconstruction kernel is not recorded, so it is not checked")
        return checks
    sharpness = kernel_sharpness(kernel)
    if direction == "sharpen" and sharpness == "sharp":
        checks.warn("kernel", f"the series is already reconstructed with a sharp kernel ({kernel}); the sharpen "
                              f"network expects a smooth ({source_kernel}-like) input and would amplify noise "
                              f"again: use direction=smooth")
    elif direction == "smooth" and sharpness == "soft":
        checks.warn("kernel", f"the series is already reconstructed with a soft kernel ({kernel}); the smooth "
                              f"network expects a sharp ({source_kernel}-like) input and would blur it further: "
                              f"use direction=sharpen")
    elif sharpness is None:
        checks.passed("kernel", f"kernel {kernel} (medium or not recognised): not checked against the direction")
    else:
        checks.passed("kernel", f"kernel {kernel} is {sharpness}, as the {direction} direction expects")
    return checks
