"""The headless CLI: every subcommand, and bad arguments giving one clear line and a non-zero exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

CT = get_testdata_file("CT_small.dcm")


def cli(*args, env_extra=None, timeout=600):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_clean_error_line(result):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("csi-workstation: error:") and "Traceback" not in result.stderr


def test_engines_lists_the_device_and_weights(tmp_path):
    out = cli("engines", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["device"] == "cpu" and data["device_label"].startswith("CPU, ")
    row = next(e for e in data["engines"] if e["id"] == "otsu-segmentation")
    assert row["weights_status"] == "none needed"
    text = cli("engines")
    assert text.returncode == 0 and text.stdout.startswith("Device: CPU")


def test_inspect_a_dicom_file_and_a_slide(shared_data):
    out = cli("inspect", CT, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["kind"] == "dicom" and report["workspace"] == "radiology"
    assert report["details"]["series"][0]["modality"] == "CT"
    text = cli("inspect", shared_data / "openslide-fixtures" / "small.svs")
    assert text.returncode == 0 and "opens in: pathology" in text.stdout and "aperio" in text.stdout


def test_inspect_broken_inputs(shared_data, tmp_path):
    for bad in (shared_data / "openslide-fixtures" / "unreadable.svs", tmp_path / "absent.dcm"):
        out = cli("inspect", bad)
        assert out.returncode == 1 and one_clean_error_line(out), out.stderr


def test_run_writes_a_mask_on_the_input_grid(tmp_path):
    out_path = tmp_path / "mask.nii.gz"
    out = cli("run", "otsu-segmentation", CT, "--out", out_path, "--set", "min_voxels=10")
    assert out.returncode == 0, out.stderr
    assert "wrote" in out.stdout and out_path.exists()
    mask, image = sitk.ReadImage(str(out_path)), sitk.ReadImage(CT)
    assert mask.GetSize() == image.GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(mask))) == {0, 1}
    assert "100%" in out.stderr  # the progress reached the end


@pytest.mark.parametrize("args, code", [
    (["run", "no-such-engine", CT, "--out", "x.nii.gz"], 2),
    (["run", "otsu-segmentation", "/no/such/file.dcm", "--out", "x.nii.gz"], 1),
    (["run", "otsu-segmentation", CT, "--out"], 2),
    (["run", "otsu-segmentation", "--out", "x.nii.gz"], 2),
    (["run", "otsu-segmentation", "--set", "a=1", "--out", "x.nii.gz"], 1),
    (["run", "otsu-segmentation", CT, "--out", "x.nii.gz", "--set", "novalue"], 2),
    (["inspect"], 2),
    (["engines", "--device", "tpu"], 1),
    (["screenshot", "out.jpg", "--workspace", "music"], 2),
    (["screenshot", "out.png", "--workspace", "nope"], 2),
    (["definitely-not-a-command"], 2),
    (["--workspace", "nope"], 2),
])
def test_bad_arguments_give_one_line_and_non_zero_exit(args, code, tmp_path):
    out = subprocess.run([sys.executable, "-m", "app", *map(str, args)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == code, (out.returncode, out.stderr)
    assert one_clean_error_line(out), out.stderr


def test_screenshot_renders_the_window(tmp_path):
    png = tmp_path / "shot.png"
    out = cli("screenshot", png, "--workspace", "pathology", "--size", "1400x900")
    assert out.returncode == 0, out.stderr
    from PySide6.QtGui import QImage

    image = QImage(str(png))
    assert (image.width(), image.height()) == (1400, 900)
    assert len({image.pixel(x, y) for x in range(0, 1400, 50) for y in range(0, 900, 50)}) > 3  # not blank


def test_self_test_opens_every_workspace_and_runs_every_engine():
    out = cli("self-test", "--json", timeout=900)
    data = json.loads(out.stdout)
    assert out.returncode == 0, [r for r in data["results"] if r["status"] != "ok"]
    names = {(r["kind"], r["name"]) for r in data["results"]}
    assert {("workspace", w) for w in ("radiology", "pathology", "music", "textvqa")} <= names
    assert ("engine", "otsu-segmentation") in names


def test_version():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("csi-workstation ")


def test_run_with_aliases_text_inputs_engine_options_and_no_out():
    out = cli("run", "g2p", "knight", "colonel")
    assert out.returncode == 0, out.stderr
    assert "KNIGHT\tN AY T" in out.stdout  # printed, since no --out was given
    out = cli("run", "otsu-segmentation", CT, "--min-voxels", "10")
    assert out.returncode == 0, out.stderr
    assert "binary output" in out.stdout
    out = cli("run", "g2p", "knight", "--order")
    assert out.returncode == 2 and one_clean_error_line(out) and "needs a value" in out.stderr
