"""Describe a file or folder for `csi-workstation inspect` and for the shell's file routing.

Each kind has a describer, imported only when needed. A domain package may override or add describers
through its manifest (``DomainManifest.describers`` names a dict kind -> "module:function"; see
engines.core.domains); a describer takes a Path and returns a JSON-able dict with optional "findings"
(list of plain-language problems) and raises ``EngineError`` for unreadable input.
:func:`open_path` opens a file with the reader a domain registered for its kind.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from engines.core.errors import EngineError
from engines.core.filetypes import classify

DESCRIBERS: dict[str, str] = {
    "dicom": "engines.core.describe:describe_dicom",
    "dicom-folder": "engines.core.describe:describe_dicom",
    "dicom-seg": "engines.core.describe:describe_dicom",
    "dicom-sr": "engines.core.describe:describe_dicom",
    "dicom-rtstruct": "engines.core.describe:describe_dicom",
    "dicom-slide": "engines.core.describe:describe_slide",
    "slide": "engines.core.describe:describe_slide",
    "volume": "engines.core.describe:describe_volume",
    "image": "engines.core.describe:describe_image",
    "audio": "engines.core.describe:describe_audio",
    "midi": "engines.core.describe:describe_midi",
}


def all_describers() -> dict[str, str]:
    """The core's describers with those of every registered domain over them (kind -> "module:function")."""
    from engines.core.domains import domains

    return {**DESCRIBERS, **domains().describers()}


def _describer(kind: str):
    target = all_describers().get(kind)
    if not target:
        return None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def open_path(path: str | Path, *, domain: str | None = None, **options: Any) -> Any:
    """Open ``path`` with the reader a domain registered for its kind (``domain`` picks one when several read
    it: an image is a slide to pathology and a picture to text/VQA); ``options`` go to the reader.
    Raises EngineError for a missing, empty or unreadable file, or a kind no domain reads."""
    from engines.core.domains import domains

    path = Path(path).expanduser()
    kind = classify(path)
    if kind in ("missing", "empty"):
        raise EngineError(f"{path}: " + ("no such file or folder" if kind == "missing" else "the file is empty"))
    try:
        reader = domains().reader(kind, domain)
    except ValueError as exc:
        raise EngineError(f"{path.name}: {exc}") from None
    if reader is None:
        where = f" in the {domain} domain" if domain else ""
        raise EngineError(f"{path.name}: no reader{where} opens '{kind}' files")
    return reader(path, **options)


def inspect_path(path: str | Path, workspace_for_kind=None) -> dict[str, Any]:
    """Return {path, kind, size_bytes, workspace, details, findings}; raise EngineError if unusable."""
    path = Path(path).expanduser()
    kind = classify(path)
    if kind == "missing":
        raise EngineError(f"{path}: no such file or folder")
    if kind == "empty":
        raise EngineError(f"{path}: the file is empty")
    if kind == "unknown":
        raise EngineError(f"{path}: not a file type the workstation opens (DICOM, NIfTI/MHA/NRRD, slides, "
                          f"images, audio, MIDI/MusicXML)")
    report: dict[str, Any] = {
        "path": str(path),
        "kind": kind,
        "size_bytes": (sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir()
                       else path.stat().st_size),
        "workspace": workspace_for_kind(kind) if workspace_for_kind else None,
        "details": {},
        "findings": [],
    }
    describe = _describer(kind)
    if describe is not None:
        details = describe(path)
        report["findings"] = list(details.pop("findings", []))
        report["details"] = details
    return report
