"""`csi-workstation inspect` for DICOM: series sorted by position, geometry and every finding."""
from __future__ import annotations

from pathlib import Path
from typing import Any

DESCRIBERS: dict[str, str] = {
    "dicom": "engines.radiology.describers:describe_dicom_study",
    "dicom-folder": "engines.radiology.describers:describe_dicom_study",
    "dicom-seg": "engines.radiology.describers:describe_dicom_study",
}


def describe_dicom_study(path: Path) -> dict[str, Any]:
    """Headers only: series (sorted along the slice normal), their geometry, and the findings."""
    from engines.radiology.reader import scan_dicom

    scan = scan_dicom(path)
    return {"series": [s.summary() for s in scan.series], "image_series": len(scan.image_series()),
            "findings": scan.all_findings()}
