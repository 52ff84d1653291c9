"""Cohort batches on Dask: one output per input, resumable, one bad input fails alone, same result on a cluster."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from engines.core.batch import MARKER_SUFFIX, SUMMARY_CSV, SUMMARY_JSON, run_batch  # noqa: E402

ENGINE = "otsu-segmentation"


@pytest.fixture
def cohort(tmp_path) -> list[Path]:
    from pydicom.data import get_testdata_file

    folder = tmp_path / "cohort"
    folder.mkdir()
    good = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        target = folder / name
        shutil.copyfile(get_testdata_file(name), target)
        good.append(target)
    broken = folder / "broken.dcm"
    broken.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:3000])  # cut inside the header
    return good + [broken]


def _mask(path: str) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(path))


def test_a_corrupt_input_fails_alone_and_a_rerun_skips_what_is_done(cohort, tmp_path):
    out = tmp_path / "out"
    seen = []
    summary = run_batch(ENGINE, cohort, out, workers=1, progress=lambda item, n, total: seen.append((n, total)))
    status = {Path(i.input).name: i for i in summary.items}
    assert status["CT_small.dcm"].status == "done" and status["MR_small.dcm"].status == "done"
    assert status["broken.dcm"].status == "failed"
    assert "broken.dcm" in status["broken.dcm"].reason and "\n" not in status["broken.dcm"].reason
    assert seen[-1] == (3, 3)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (output,) = status[name].outputs
        assert Path(output).exists() and _mask(output).any()
    rows = json.loads((out / SUMMARY_JSON).read_text())
    assert (rows["done"], rows["failed"]) == (2, 1)
    csv_text = (out / SUMMARY_CSV).read_text()
    assert csv_text.splitlines()[0] == "input,status,output,seconds,device,checks,reason"
    assert "broken.dcm,failed" in csv_text

    # a re-run skips the two done inputs (same engine, weights, options, bytes) and retries the broken one
    again = run_batch(ENGINE, cohort, out, workers=1)
    assert [i.status for i in again.items] == ["skipped", "skipped", "failed"]
    # a changed input is redone; an output whose marker is missing (a batch killed before it finished) is redone
    mr = cohort[1]
    mr.write_bytes(mr.read_bytes() + b"\0")
    marker = next(Path(status["CT_small.dcm"].outputs[0]).parent.glob(f"*{MARKER_SUFFIX}"))
    marker.unlink()
    third = run_batch(ENGINE, cohort[:2], out, workers=1)
    assert [i.status for i in third.items] == ["done", "done"]


def test_identical_results_on_a_running_cluster_and_a_clear_line_for_a_bad_address(cohort, tmp_path):
    from distributed import LocalCluster

    good = cohort[:2]
    local = run_batch(ENGINE, good, tmp_path / "local", workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        remote = run_batch(ENGINE, good, tmp_path / "remote", scheduler=cluster.scheduler_address)
    assert "2 workers" in remote.scheduler
    for a, b in zip(local.items, remote.items):
        assert a.status == b.status == "done"
        assert np.array_equal(_mask(a.outputs[0]), _mask(b.outputs[0]))

    from engines.core.engine import EngineError

    with pytest.raises(EngineError, match="could not reach the Dask scheduler"):
        run_batch(ENGINE, good, tmp_path / "nowhere", scheduler="tcp://127.0.0.1:9")


def test_cli_batch_exit_status_and_summary(cohort, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "cli"
    assert main(["batch", ENGINE, *map(str, cohort), "--out", str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "2 done, 0 skipped (already done), 1 failed" in captured.out
    assert "failed:" in captured.err and "broken.dcm" in captured.err
    assert main(["batch", ENGINE, *map(str, cohort[:2]), "--out", str(out), "--workers", "1"]) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out


def test_a_batch_worker_keeps_to_one_torch_thread(cohort, tmp_path, monkeypatch):
    """Workers share the cores: the engines' thread policy must not give each of them every idle core (two workers
    of a torch engine were slower than one before)."""
    from engines.core import batch
    from engines.core.threads import choose_threads

    monkeypatch.delenv("CSI_TORCH_THREADS", raising=False)
    monkeypatch.delenv("CSI_BATCH_THREADS", raising=False)
    row = batch.run_one(ENGINE, str(cohort[0]), str(tmp_path / "out"), {}, key="k")
    assert row["status"] == "done"
    assert os.environ.get("CSI_TORCH_THREADS") == "1" and choose_threads(cores=16, load=0.0) == 1
    monkeypatch.delenv("CSI_TORCH_THREADS")
