"""The import contracts in pyproject.toml ([tool.importlinter]) hold: engines/ never imports Qt or app/, app/
imports no imaging, audio or model library itself, the domains build on engines.core and not on each other,
and engines.core has no import cycle. `lint-imports` checks every import, lazy ones inside functions too."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = (
    "engines/ never imports Qt or the app layer",
    "app/ imports no imaging, audio or model library itself",
    "engines/: the domains build on engines.core and are independent of each other",
    "engines.core: no import cycle among its modules",
)


def _lint_imports(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    beside = Path(sys.executable).with_name("lint-imports")
    command = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert command, "lint-imports is missing: install the test extras (pip install -e .[test])"
    return subprocess.run([command, "--no-logo", "--cache-dir", str(tmp_path / "cache"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=240)


def test_every_import_contract_is_kept(tmp_path):
    run = _lint_imports(tmp_path)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    for name in CONTRACTS:
        assert f"{name} KEPT" in report, report
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in report, report


def test_a_broken_contract_fails_the_run(tmp_path):
    # radiology_ai really builds on radiology: forbidding it must break, or the check above proves nothing
    config = tmp_path / "broken.ini"
    config.write_text("[importlinter]\nroot_packages =\n    engines\n\n"
                      "[importlinter:contract:no-radiology]\nname = radiology_ai without radiology\n"
                      "type = forbidden\nsource_modules =\n    engines.radiology_ai\n"
                      "forbidden_modules =\n    engines.radiology\n", encoding="utf-8")
    run = _lint_imports(tmp_path, str(config))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "radiology_ai without radiology BROKEN" in run.stdout and "engines.radiology_ai." in run.stdout
