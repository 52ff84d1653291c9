"""Which window a CT opens with when the default soft-tissue window would hide what matters: head CT.

A head CT read in the soft-tissue window (W 400 L 40) shows grey and white matter as one flat grey, and a thin
subdural collection vanishes against the skull; radiologists read it in the brain window (W 80 L 40) and look
again in a subdural window (W 200 L 80). :func:`choose_ct_window` decides, without Qt:

1. from the DICOM tags when they speak: CT, and the body part, protocol, series or study description says
   head / brain / skull (and not a chest, abdomen or neck study);
2. otherwise from the image itself (:func:`head_ct_from_image`): on axial slices through the upper head, a
   closed ring of bone (> 300 HU) encloses a region 8-22 cm across that is mostly brain-density tissue
   (0-90 HU) - a chest slice has air-filled lungs inside open ribs and is wider than any head.

The tag check is a few string tests (the GUI thread may run it); the image check reads a handful of slices
(run it in a worker for large series).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BRAIN_WINDOW = (80.0, 40.0)  # width, level (HU)
SUBDURAL_WINDOW = (200.0, 80.0)
HEAD_WORDS = ("HEAD", "BRAIN", "SKULL", "CRANI", "CEREBR", "NEUROCRAN", "KOPF", "SCHAEDEL", "CRANE", "CABEZA")
OTHER_WORDS = ("CHEST", "THORAX", "LUNG", "ABDOMEN", "PELVIS", "NECK", "SPINE", "CARDIAC", "HEART", "LIVER",
               "KIDNEY", "ABD", "BODY", "WHOLEBODY", "EXTREMITY", "KNEE")
BONE_HU = 300.0
BRAIN_HU = (0.0, 90.0)


@dataclass(frozen=True)
class WindowChoice:
    """The window to open with (None: keep the volume's own), whether the volume is a head CT, and why."""

    window: tuple[float, float] | None
    head: bool | None  # None: undecided (no tags said it; the image was not looked at yet)
    reason: str


def _tag_texts(volume) -> list[str]:
    texts = []
    series = getattr(volume, "series", None)
    header = series.slices[0].header if series is not None and series.slices else None
    if header is not None:
        for key in ("BodyPartExamined", "ProtocolName", "SeriesDescription", "StudyDescription",
                    "RequestedProcedureDescription"):
            try:
                texts.append(str(header.get(key, "") or ""))
            except Exception:  # noqa: BLE001 - a damaged header element says nothing about the body part
                continue
    texts += [str(volume.meta.get(k) or "") for k in ("body_part", "protocol", "series_description",
                                                       "study_description")]
    return [t.upper().replace("_", " ") for t in texts if t.strip()]


def head_ct_from_tags(volume) -> tuple[bool | None, str]:
    """(True/False/None, reason): whether the tags say head CT; None when they say nothing either way."""
    if str(getattr(volume, "modality", "")).upper() != "CT":
        return False, "not a CT"
    texts = _tag_texts(volume)
    name = [t for t in texts if t.endswith(".NRRD") or t.endswith(".NII") or t.endswith(".NII.GZ")
            or t.endswith(".MHA")]
    texts = [t for t in texts if t not in name]  # a file name standing in for a description says nothing
    head = [t for t in texts if any(w in t for w in HEAD_WORDS)]
    other = [t for t in texts if any(w in t.replace(" ", "") or w in t.split() for w in OTHER_WORDS)]
    if head and not other:
        return True, f"the tags say head ({head[0].strip().title()})"
    if other:
        return False, f"the tags say {other[0].strip().title()}"
    return None, "the tags do not name the body part"


def head_ct_from_image(hu: np.ndarray, spacing_ijk, *, n_slices: int = 12) -> tuple[bool, str]:
    """Whether a CT (real HU ``[k, j, i]``, axial slices, ``spacing_ijk`` mm) looks like a head: on at least
    a quarter of the sampled slices (and two), bone forms a closed ring around a region 8-22 cm across of
    which most is brain-density tissue."""
    from scipy import ndimage

    nk = hu.shape[0]
    if hu.ndim != 3 or nk < 2 or min(hu.shape[1:]) < 16:
        return False, "too small to be a head CT"
    px = float(np.sqrt(spacing_ijk[0] * spacing_ijk[1]))
    ks = np.unique(np.linspace(0, nk - 1, min(nk, n_slices)).round().astype(int))
    step = max(1, int(round(1.0 / px)))  # about 1 mm pixels are enough to see a skull ring
    ringed = 0
    for k in ks:
        sl = np.asarray(hu[k, ::step, ::step], dtype=np.float32)
        p = px * step
        bone = sl > BONE_HU
        if bone.sum() * p * p < 300.0:  # < 3 cm^2 of bone: no skull in this slice
            continue
        bone = ndimage.binary_closing(bone, iterations=1)
        inside = ndimage.binary_fill_holes(bone) & ~bone
        lab, n = ndimage.label(inside)
        if n == 0:
            continue
        sizes = ndimage.sum(inside, lab, index=np.arange(1, n + 1))
        region = lab == int(np.argmax(sizes)) + 1
        area_cm2 = float(region.sum()) * p * p / 100.0
        rows, cols = np.nonzero(region)
        extent_cm = max(np.ptp(rows) + 1, np.ptp(cols) + 1) * p / 10.0
        if not (30.0 <= area_cm2 <= 400.0 and 8.0 <= extent_cm <= 22.0):
            continue
        brain = float(((sl >= BRAIN_HU[0]) & (sl <= BRAIN_HU[1]))[region].mean())
        body = sl > -300.0
        width_cm = max(np.ptp(np.nonzero(body.any(0))[0]) + 1, np.ptp(np.nonzero(body.any(1))[0]) + 1) * p / 10.0
        if brain >= 0.6 and width_cm <= 26.0:
            ringed += 1
    need = max(2, int(np.ceil(0.25 * len(ks))))
    if ringed >= need:
        return True, f"a skull ring around brain-density tissue on {ringed} of {len(ks)} sampled slices"
    return False, f"no skull ring around brain tissue ({ringed} of {len(ks)} sampled slices)"


def choose_ct_window(volume, *, look: bool = True) -> WindowChoice:
    """The window ``volume`` should open with: the brain window for a head CT (decided from the tags, else,
    with ``look``, from the image), None (keep its own) otherwise."""
    head, reason = head_ct_from_tags(volume)
    if head is None and look:
        if is_axial(volume):  # only the sampled slices become real values (a whole CT would be 100s of MB)
            ks = np.unique(np.linspace(0, volume.shape[0] - 1, min(volume.shape[0], 12)).round().astype(int))
            head, reason = head_ct_from_image(volume.real(volume.voxels[ks]), volume.geometry.spacing,
                                              n_slices=len(ks))
        else:
            head, reason = False, "not an axial series"
    return WindowChoice(BRAIN_WINDOW if head else None, head, reason)


def is_axial(volume) -> bool:
    """Whether the volume's slices (its k axis) run head-foot."""
    d = np.asarray(volume.geometry.direction, float)
    return bool(abs(d[2, 2]) > 0.8)


def review_window(engine: str = "", findings=()) -> tuple[float, float] | None:
    """The window a findings review starts in: the brain window for a head CT haemorrhage review."""
    words = (engine or "").lower() + " " + " ".join(str(getattr(f, "type", "")).lower() for f in findings)
    if "haemorrhage" in words or "hemorrhage" in words or "head-ct" in words:
        return BRAIN_WINDOW
    return None
