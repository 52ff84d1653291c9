"""Describe a file or folder for `csi-workstation inspect` and for the shell's file routing.

Each kind has a describer, imported only when needed. A domain package may override or add describers
with a ``DESCRIBERS`` dict (kind -> "module:function") in ``engines/<domain>/describers.py``; a describer takes a Path and returns a JSON-able dict with
optional "findings" (list of plain-language problems) and raises ``EngineError`` for unreadable input.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from engines.core.engine import EngineError
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


DOMAINS = ("radiology", "pathology", "music", "textvqa", "radiology_ai", "music_lab")


def _describer(kind: str):
    target = DESCRIBERS.get(kind)
    for domain in DOMAINS:
        try:
            module = importlib.import_module(f"engines.{domain}.describers")
        except ModuleNotFoundError as exc:
            if exc.name != f"engines.{domain}.describers":
                raise
            continue
        target = getattr(module, "DESCRIBERS", {}).get(kind, target)
    if not target:
        return None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


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
