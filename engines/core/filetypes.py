"""What a file or folder is, cheaply: by magic bytes and extension, reading as little as possible."""
from __future__ import annotations

import os
from pathlib import Path

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
SLIDE_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".opus")
MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".musicxml", ".mxl", ".xml")
TEXT_SUFFIXES = (".txt",)
WEIGHTS_SUFFIXES = (".safetensors",)
ANNOTATION_SUFFIXES = (".geojson",)

# DICOM SOP classes that are not images to show as a volume
WSI_SOP = "1.2.840.10008.5.1.4.1.1.77.1.6"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."

FOLDER_SCAN_LIMIT = 2000


def display_name(path: str | os.PathLike, full: bool = False) -> str:
    """A file's name (or whole path) safe to print, log and show in Qt: bytes that are not UTF-8 (a name
    made on another system) appear as ``\\xff`` escapes instead of lone surrogates that cannot be encoded."""
    text = os.fspath(path) if full else Path(path).name
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def is_dicom_file(path: Path) -> bool:
    """True for a Part-10 file (preamble + 'DICM') or a DICOMDIR; reads 132 bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _dicom_sop_class(path: Path) -> str:
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["SOPClassUID"])
        return str(ds.get("SOPClassUID", ""))
    except Exception:  # noqa: BLE001 - an unreadable header is classified as plain DICOM and reported later
        return ""


def classify(path: str | os.PathLike) -> str:
    """Return a kind: dicom, dicom-seg, dicom-rtstruct, dicom-sr, dicom-slide, dicom-folder, volume, slide,
    image, image-folder, audio, audio-folder, midi, score, text, weights, missing, empty, unknown."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        return _classify_folder(path)
    if path.stat().st_size == 0:
        return "empty"
    if is_dicom_file(path) or path.name.upper() == "DICOMDIR" or _preamble_less_dicom(path):
        sop = _dicom_sop_class(path)
        if sop == WSI_SOP:
            return "dicom-slide"
        if sop == SEG_SOP:
            return "dicom-seg"
        if sop == RTSTRUCT_SOP:
            return "dicom-rtstruct"
        if sop.startswith(SR_PREFIX):
            return "dicom-sr"
        return "dicom"
    if has_suffix(path, VOLUME_SUFFIXES):
        return "volume"
    if has_suffix(path, (".tif", ".tiff")):
        return "slide" if _openslide_vendor(path) else "image"
    if has_suffix(path, SLIDE_SUFFIXES):
        return "slide"
    if has_suffix(path, IMAGE_SUFFIXES):
        return "image"
    if has_suffix(path, AUDIO_SUFFIXES):
        return "audio"
    if has_suffix(path, MIDI_SUFFIXES):
        return "midi"
    if has_suffix(path, SCORE_SUFFIXES):
        return "score"
    if has_suffix(path, TEXT_SUFFIXES):
        return "text"
    if has_suffix(path, WEIGHTS_SUFFIXES):
        return "weights"
    if has_suffix(path, ANNOTATION_SUFFIXES):
        return "annotations"
    return "unknown"


def _preamble_less_dicom(path: Path) -> bool:
    """A .dcm file written without the 128-byte preamble (older writers): parse its header to be sure."""
    if not path.name.lower().endswith(".dcm"):
        return False
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["SOPClassUID"])
        return "SOPClassUID" in ds
    except Exception:  # noqa: BLE001 - not DICOM after all
        return False


def _openslide_vendor(path: Path) -> str | None:
    try:
        import openslide

        return openslide.OpenSlide.detect_format(str(path))
    except Exception:  # noqa: BLE001 - no OpenSlide or an unreadable file: not a slide
        return None


def _classify_folder(path: Path) -> str:
    counts = {"dicom": 0, "audio": 0, "image": 0, "slide": 0, "volume": 0}
    for n, file in enumerate(f for f in path.rglob("*") if f.is_file()):
        if n >= FOLDER_SCAN_LIMIT:
            break
        if is_dicom_file(file) or file.name.upper() == "DICOMDIR":
            counts["dicom"] += 1
        elif has_suffix(file, AUDIO_SUFFIXES):
            counts["audio"] += 1
        elif has_suffix(file, VOLUME_SUFFIXES):
            counts["volume"] += 1
        elif has_suffix(file, IMAGE_SUFFIXES):
            counts["image"] += 1
        elif has_suffix(file, SLIDE_SUFFIXES):
            counts["slide"] += 1
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        return "unknown"
    return {"dicom": "dicom-folder", "audio": "audio-folder", "image": "image-folder",
            "slide": "slide-folder", "volume": "volume-folder"}[best]
