"""`csi-workstation run` makes damage visible: warning lines, a summary beside the output, --strict refuses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel
import numpy as np
import pytest

from app import cli
from engines.core.checks import Checks
from engines.core.engine import Engine, EngineInfo
from engines.core.registry import EngineRegistry
from engines.radiology.samples import write_ct_series



def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def ct_series(folder: Path, n: int = 8) -> list[Path]:
    return write_ct_series(folder, n_slices=n, rows=48, cols=48, pixel_mm=8.0, slice_mm=12.0)


def test_a_truncated_slice_is_a_warning_in_the_output_and_the_summary(tmp_path):
    paths = ct_series(tmp_path / "ct")
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) - 2000])  # this slice is shown blank
    out = tmp_path / "labels.nii.gz"
    done = run_cli("run", "ct-tissue-threshold", tmp_path / "ct", "--out", out)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and any("could not be decoded" in w and paths[3].name in w for w in warnings)
    summary = json.loads((tmp_path / "labels.nii.gz.summary.json").read_text())
    assert summary["status"] == "ok" and summary["engine"] == "ct-tissue-threshold"
    assert any(paths[3].name in f["message"] for f in summary["findings"])
    assert str(out) in summary["outputs"] and out.exists()

    strict_out = tmp_path / "strict.nii.gz"
    refused = run_cli("run", "ct-tissue-threshold", tmp_path / "ct", "--out", strict_out, "--strict")
    assert refused.returncode == cli.STRICT_REFUSED
    assert not strict_out.exists()  # nothing written but the summary, which says why
    summary = json.loads((tmp_path / "strict.nii.gz.summary.json").read_text())
    assert summary["status"] == "refused" and summary["outputs"] == [] and summary["findings"]


def test_a_clean_series_has_no_warning_and_strict_passes(tmp_path):
    ct_series(tmp_path / "ct")
    out = tmp_path / "labels.nii.gz"
    done = run_cli("run", "ct-tissue-threshold", tmp_path / "ct", "--out", out, "--strict")
    assert done.returncode == 0, done.stderr
    assert "warning:" not in done.stderr and out.exists()
    summary = json.loads((tmp_path / "labels.nii.gz.summary.json").read_text())
    assert summary["findings"] == [] and summary["warnings"] == [] and summary["status"] == "ok"


def test_a_truncated_nifti_input_is_one_error_line(tmp_path):
    arr = (np.random.default_rng(0).random((24, 24, 24)) * 1000 - 1000).astype(np.int16)
    nibabel.save(nibabel.Nifti1Image(arr, np.eye(4)), tmp_path / "ct.nii.gz")
    data = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "ct.nii.gz").write_bytes(data[: len(data) // 2])
    done = run_cli("run", "ct-tissue-threshold", tmp_path / "ct.nii.gz", "--out", tmp_path / "x.nii.gz")
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors == [errors[0]] and errors[0].startswith("csi-workstation: error: ct.nii.gz: the file is truncated")
    assert not (tmp_path / "x.nii.gz").exists()


class CheckedEngine(Engine):
    """An engine whose result carries input-contract checks (one passed, one warned) and a finding."""

    id = "checked-test"
    input_key = "path"

    def info(self) -> EngineInfo:
        return EngineInfo(id=self.id, title="checked", task="test", workspace="radiology", inputs="a file",
                          outputs="a text file", extra={"self_test_out": "out.txt"})

    def predict(self, request, *, progress=None, cancel=None) -> dict[str, Any]:
        checks = Checks()
        checks.passed("modality", "CT")
        checks.warn("pixel size", "pixels of 3 mm; the model was trained on 0.5 to 1 mm")
        return {"text": "done", "checks": checks, "findings": ["slice 4 is blank"]}

    def write_result(self, result, out: Path) -> list[Path]:
        Path(out).write_text(result["text"])
        return [Path(out)]


@pytest.fixture
def checked_registry(monkeypatch):
    registry = EngineRegistry()
    registry.register(CheckedEngine)
    monkeypatch.setattr(EngineRegistry, "discover", classmethod(lambda cls, group=None: registry))


def test_checks_and_findings_become_warning_lines_and_summary_dicts(tmp_path, checked_registry, capsys):
    (tmp_path / "in.txt").write_text("x")
    out = tmp_path / "out.txt"
    assert cli.main(["run", "checked-test", str(tmp_path / "in.txt"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: slice 4 is blank" in err
    assert "warning: pixel size: pixels of 3 mm; the model was trained on 0.5 to 1 mm" in err
    assert "warning: modality" not in err  # a passed check is no warning
    summary = json.loads((tmp_path / "out.txt.summary.json").read_text())
    assert summary["checks"] == [{"name": "modality", "status": "passed", "reason": "CT"},
                                 {"name": "pixel size", "status": "warned",
                                  "reason": "pixels of 3 mm; the model was trained on 0.5 to 1 mm"}]
    assert summary["findings"] == [{"source": "reader", "message": "slice 4 is blank"}]
    out.unlink()
    assert cli.main(["run", "checked-test", str(tmp_path / "in.txt"), "--out", str(out), "--strict"]) == 3
    assert not out.exists()
    assert "refused (--strict): 2 warning(s)" in capsys.readouterr().err


def test_help_says_where_the_summary_goes(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "OUT.summary.json" in text and "written atomically" in text and "--strict" in text
