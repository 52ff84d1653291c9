"""Bundled samples: small real files in resources/samples, or generated deterministically on first use.

``SAMPLES`` maps a sample id to "module:function"; the function receives an empty folder and returns the
path to open (file or folder). Generation happens once, into the user data folder, and is marked complete
only after it succeeded, so a crash mid-way never leaves a half sample behind.

Domain packages add their own samples through their manifest (``DomainManifest.samples`` names a dict of the
same form, id -> "module:function"; see engines.core.domains); ids must be unique across domains.
"""
from __future__ import annotations

import importlib
import shutil
import threading
from pathlib import Path

from engines.core.atomic import atomic_write_text
from engines.core.errors import EngineError
from engines.core.paths import samples_dir

SAMPLES: dict[str, str] = {
    "ct-slice": "engines.core.samples:make_ct_slice",
}
_lock = threading.Lock()


def make_ct_slice(dest: Path) -> Path:
    """pydicom's CT_small.dcm: a real 128 x 128 CT slice, shipped inside the pydicom wheel."""
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm")
    if src is None:
        raise EngineError("pydicom's test data is missing: reinstall pydicom")
    target = dest / "CT_small.dcm"
    shutil.copyfile(src, target)
    return target


def all_samples() -> dict[str, str]:
    """Core samples plus those every registered domain offers (a domain's id never replaces a core one)."""
    from engines.core.domains import domains

    return {**domains().samples(), **SAMPLES}


def sample_path(sample_id: str) -> Path:
    """Return the sample's path, generating it on first use."""
    known = all_samples()
    if sample_id not in known:
        raise EngineError(f"no sample '{sample_id}' (known: {', '.join(sorted(known))})")
    root = samples_dir() / sample_id
    marker = root / ".complete"
    with _lock:
        if marker.exists():
            return root / marker.read_text(encoding="utf-8").strip()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        module, _, attr = known[sample_id].partition(":")
        made = Path(getattr(importlib.import_module(module), attr)(root))
        rel = made.relative_to(root)
        atomic_write_text(marker, str(rel) + "\n")
        return made
