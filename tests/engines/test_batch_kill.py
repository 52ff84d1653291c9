"""A batch killed with SIGKILL in the middle (the process and its Dask workers) leaves nothing half-done that
counts as done: the re-run skips exactly the inputs whose marker was written, redoes the rest, and every output
is then whole."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from engines.core.batch import MARKER_SUFFIX, run_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
N = 16


def _cohort(folder: Path) -> list[Path]:
    from pydicom.data import get_testdata_file

    folder.mkdir()
    src = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    paths = []
    for n in range(N):  # distinct inputs: a trailing pad byte count changes the content hash, not the image
        p = folder / f"ct{n:02d}.dcm"
        p.write_bytes(src + b"\0" * (2 * n))
        paths.append(p)
    return paths


def test_a_killed_batch_resumes_without_counting_half_outputs(tmp_path):
    import SimpleITK as sitk

    inputs = _cohort(tmp_path / "cohort")
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-m", "app", "batch", "otsu-segmentation", *map(str, inputs),
                             "--out", str(out), "--workers", "1"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(out.rglob(f"*{MARKER_SUFFIX}"))) >= 2:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers, wherever they are
        proc.wait(timeout=30)
    done_before = len(list(out.rglob(f"*{MARKER_SUFFIX}")))
    assert 2 <= done_before < N, f"the kill came when {done_before} of {N} were done: the test saw no mid-batch kill"

    again = run_batch("otsu-segmentation", inputs, out, workers=1)
    statuses = [i.status for i in again.items]
    print(f'killed after {done_before} of {N}')
    assert statuses.count("skipped") == done_before and statuses.count("done") == N - done_before, statuses
    first = None
    for item in again.items:
        (output,) = item.outputs
        mask = sitk.GetArrayFromImage(sitk.ReadImage(output))  # whole files only
        first = mask if first is None else first
        assert mask.any() and np.array_equal(mask, first)  # the same image in every input: the same mask
