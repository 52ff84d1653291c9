"""Light describers used by `inspect`: headers only, never the full pixel data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engines.core.engine import EngineError
from engines.core.filetypes import FOLDER_SCAN_LIMIT


def describe_dicom(path: Path) -> dict[str, Any]:
    """Group DICOM files by SeriesInstanceUID from their headers; list unreadable files as findings."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())[:FOLDER_SCAN_LIMIT]
    series: dict[str, dict[str, Any]] = {}
    findings: list[str] = []
    not_dicom = 0
    for file in files:
        if file.name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except InvalidDicomError:
            not_dicom += 1
            continue
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt file is a finding, not a failure
            findings.append(f"{file.name}: unreadable DICOM ({type(exc).__name__}: {exc})")
            continue
        if "SeriesInstanceUID" not in ds or "SOPClassUID" not in ds:
            findings.append(f"{file.name}: incomplete DICOM header (truncated file?); skipped")
            continue
        uid = str(ds.SeriesInstanceUID)
        entry = series.setdefault(uid, {
            "series_uid": uid,
            "modality": str(ds.get("Modality", "")),
            "description": str(ds.get("SeriesDescription", "")),
            "patient_id": str(ds.get("PatientID", "")),
            "study_date": str(ds.get("StudyDate", "")),
            "sop_class": str(getattr(ds.get("SOPClassUID", ""), "name", ds.get("SOPClassUID", ""))),
            "files": 0,
            "frames": 0,
            "rows": int(ds.get("Rows", 0) or 0),
            "columns": int(ds.get("Columns", 0) or 0),
            "transfer_syntax": str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")),
        })
        entry["files"] += 1
        entry["frames"] += int(ds.get("NumberOfFrames", 1) or 1)
    if not_dicom:
        findings.append(f"{not_dicom} file(s) in the folder are not DICOM and were skipped")
    if not series:
        raise EngineError(f"{path}: no readable DICOM found" + (f" ({findings[0]})" if findings else ""))
    return {"series": sorted(series.values(), key=lambda s: (s["modality"], s["description"])),
            "findings": findings}


def describe_slide(path: Path) -> dict[str, Any]:
    try:
        import openslide
    except ImportError as exc:  # pragma: no cover - openslide-bin is a dependency
        raise EngineError(f"OpenSlide is not available: {exc}") from None
    try:
        slide = openslide.OpenSlide(str(path))
    except Exception as exc:  # noqa: BLE001 - OpenSlide raises several types for unreadable slides
        raise EngineError(f"{path.name}: OpenSlide cannot read this slide ({exc})") from None
    with slide:
        try:  # the header can parse while the tiles cannot be decoded: read a little from every level
            for level, (w, h) in enumerate(slide.level_dimensions):
                slide.read_region((0, 0), level, (min(w, 64), min(h, 64)))
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"{path.name}: OpenSlide opens this slide but cannot read its tiles ({exc})") from None
        props = slide.properties
        return {
            "vendor": props.get(openslide.PROPERTY_NAME_VENDOR, "unknown"),
            "dimensions": list(slide.dimensions),
            "levels": slide.level_count,
            "level_dimensions": [list(d) for d in slide.level_dimensions],
            "mpp_x": _float(props.get(openslide.PROPERTY_NAME_MPP_X)),
            "mpp_y": _float(props.get(openslide.PROPERTY_NAME_MPP_Y)),
            "objective_power": _float(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)),
            "associated_images": sorted(slide.associated_images.keys()),
        }


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def describe_volume(path: Path) -> dict[str, Any]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise EngineError(f"{path.name}: cannot read this volume ({str(exc).strip().splitlines()[-1]})") from None
    return {"size": list(reader.GetSize()), "spacing_mm": [round(s, 4) for s in reader.GetSpacing()],
            "origin_mm": [round(o, 3) for o in reader.GetOrigin()],
            "pixel_type": sitk.GetPixelIDValueAsString(reader.GetPixelID())}


def describe_image(path: Path) -> dict[str, Any]:
    """Header only: a picture that declares a huge size is called too large in one sentence, never decoded."""
    import re
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                info = {"width": img.width, "height": img.height, "mode": img.mode, "format": img.format}
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels than it can safely open"
        raise EngineError(f"{path.name}: the picture declares {size}, too large to open safely (a damaged or "
                          f"hostile file, or a whole-slide image saved as a plain picture)") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise EngineError(f"{path.name}: not a readable image ({exc})") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and info["width"] * info["height"] > limit:
        info["findings"] = [f"declares {info['width']} x {info['height']} pixels: more than the {limit:,} "
                            f"pixels a picture may have to be opened safely"]
    return info


def describe_audio(path: Path) -> dict[str, Any]:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises LibsndfileError/RuntimeError
        raise EngineError(f"{path.name}: not readable audio ({exc})") from None
    return {"samplerate": info.samplerate, "channels": info.channels, "duration_s": round(info.duration, 3),
            "format": info.format, "subtype": info.subtype}


def describe_midi(path: Path) -> dict[str, Any]:
    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # noqa: BLE001 - mido raises many types for corrupt files
        raise EngineError(f"{path.name}: not a readable MIDI file ({exc})") from None
    notes = sum(len(i.notes) for i in midi.instruments)
    findings = [] if notes else ["the MIDI file has no notes"]
    return {"instruments": len(midi.instruments), "notes": notes, "duration_s": round(midi.get_end_time(), 3),
            "findings": findings}
