"""Batch throughput on Dask: N inputs through one engine with 1 and 2 local workers, the per-task overhead,
and the same run against a scheduler with two workers started on loopback (``dask scheduler`` /
``dask worker`` as separate processes, as a user would start them).

    .venv/bin/python benchmarks/batch/bench_batch.py [--n 50] [--engine otsu-segmentation] [--json out.json]

Inputs are N copies of pydicom's CT_small.dcm, each with one private byte changed so each has its own content
hash (nothing is skipped). The per-task overhead is the wall time per input minus the engine's own time
(the seconds each row reports), with one worker.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make_inputs(folder: Path, n: int) -> list[Path]:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    paths = []
    for k in range(n):
        ds.InstanceNumber = k + 1
        path = folder / f"ct_{k:03d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def timed(engine: str, inputs, out: Path, **kw) -> dict:
    from engines.core.batch import run_batch

    t0 = time.perf_counter()
    summary = run_batch(engine, inputs, out, **kw)
    wall = time.perf_counter() - t0
    engine_s = sum(i.seconds for i in summary.items)
    return {"wall_s": round(wall, 2), "per_input_s": round(wall / len(inputs), 3),
            "engine_s_per_input": round(engine_s / len(inputs), 3), "done": summary.count("done"),
            "failed": summary.count("failed"), "scheduler": summary.scheduler}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--engine", default="otsu-segmentation")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="csi-bench-batch-"))
    try:
        inputs = make_inputs(tmp / "in", args.n) if (tmp / "in").mkdir() is None else []
        results = {"n": args.n, "engine": args.engine}
        results["local_1_worker"] = timed(args.engine, inputs, tmp / "w1", workers=1)
        results["local_2_workers"] = timed(args.engine, inputs, tmp / "w2", workers=2)
        results["throughput_ratio_2_over_1"] = round(results["local_1_worker"]["wall_s"]
                                                     / results["local_2_workers"]["wall_s"], 2)
        one = results["local_1_worker"]
        results["per_task_overhead_s"] = round(one["per_input_s"] - one["engine_s_per_input"], 3)
        results["rerun_all_skipped"] = timed(args.engine, inputs, tmp / "w1", workers=1)
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", str(port), "--dashboard-address", ":0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        time.sleep(3)
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT)))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        del dask
        try:
            results["scheduler_2_workers"] = timed(args.engine, inputs, tmp / "cluster", scheduler=address)
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
        print(json.dumps(results, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
