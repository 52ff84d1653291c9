"""Fetch the real sample files that are too large to keep in git, once, from the Python package registry.

Called by ``scripts/setup.sh``; never at run time. Today: the chest CT ``lung1`` with its real nodule mask
from the pyradiomics 3.0.1 source distribution (BSD-3-Clause, Harvard Medical School), written to
``resources/samples/radiology/lung1/`` (ignored by git). The download is checked against the SHA-256 that
PyPI publishes for the file; a failure leaves the workstation working with its generated samples.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LUNG1_DIR = ROOT / "resources" / "samples" / "radiology" / "lung1"
SDIST = ("https://files.pythonhosted.org/packages/1b/35/c7f7fb7affd302fd8107dcee6b6e7aaf3708b75ad69d5f9a3dfc"
         "adb73eaa/pyradiomics-3.0.1.tar.gz")
SDIST_SHA256 = "47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5"
MEMBERS = {
    "pyradiomics-3.0.1/data/lung1_image.nrrd": "lung1_image.nrrd",
    "pyradiomics-3.0.1/data/lung1_label.nrrd": "lung1_label.nrrd",
    "pyradiomics-3.0.1/LICENSE.txt": "LICENSE-pyradiomics.txt",
}


def fetch_lung1(dest: Path = LUNG1_DIR) -> bool:
    if all((dest / name).exists() for name in MEMBERS.values()):
        return True
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "pyradiomics-3.0.1.tar.gz"
        try:
            with urllib.request.urlopen(SDIST, timeout=120) as resp, open(archive, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except OSError as exc:
            print(f"[samples] could not fetch the real chest CT sample (pyradiomics lung1): {exc}", file=sys.stderr)
            return False
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            print("[samples] the downloaded pyradiomics archive does not match its published SHA-256; ignored",
                  file=sys.stderr)
            return False
        staging = Path(tmp) / "lung1"
        staging.mkdir()
        with tarfile.open(archive, "r:gz") as tar:
            for member, name in MEMBERS.items():
                src = tar.extractfile(member)
                if src is None:
                    print(f"[samples] {member} is missing from the archive", file=sys.stderr)
                    return False
                (staging / name).write_bytes(src.read())
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(staging), dest)
    print(f"[samples] real chest CT sample (pyradiomics lung1, BSD-3) in {dest}", file=sys.stderr)
    return True


if __name__ == "__main__":
    sys.exit(0 if fetch_lung1() else 0)  # never fail setup: the generated samples still work
