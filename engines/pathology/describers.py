"""Pathology describers for `csi-workstation inspect`: GeoJSON annotation files are validated, not just named."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from engines.core.engine import EngineError

DESCRIBERS = {"annotations": "engines.pathology.describers:describe_geojson"}

MAX_FINDINGS = 20


def describe_geojson(path: Path) -> dict[str, Any]:
    """Counts of features, geometry and object types and classes; each unusable or repaired feature is a
    finding. A file that is not GeoJSON, not a FeatureCollection / Feature / list of Features, or that holds
    no usable feature raises EngineError with the reason."""
    import json

    from engines.pathology.geojson import feature_list, parse_geojson

    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EngineError(f"{path.name}: not a readable GeoJSON file ({exc})") from None
    features = feature_list(raw, path.name)
    if not features:
        raise EngineError(f"{path.name}: the GeoJSON holds no features")
    parsed = parse_geojson(raw, path.name)
    geometry = Counter(f["geometry"].get("type") for f in features
                       if isinstance(f, dict) and isinstance(f.get("geometry"), dict))
    findings = [f"{path.name}: {p}" for p in parsed.problems[:MAX_FINDINGS]]
    if len(parsed.problems) > MAX_FINDINGS:
        findings.append(f"{path.name}: and {len(parsed.problems) - MAX_FINDINGS:,} more problems")
    return {
        "format": "GeoJSON (QuPath conventions, level-0 pixels)",
        "features": len(features),
        "usable_objects": len(parsed.annotations),
        "features_left_out": parsed.skipped,
        "geometry_types": dict(sorted((str(k), v) for k, v in geometry.items())),
        "object_types": dict(Counter(a.object_type for a in parsed.annotations)),
        "classes": dict(Counter(a.cls or "(none)" for a in parsed.annotations).most_common(20)),
        "findings": findings,
    }
