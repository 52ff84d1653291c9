"""`csi-workstation batch`: one engine over a cohort, on Dask (embedded LocalCluster or a running scheduler)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "batch", help="run one engine on many inputs (Dask: this machine, or a cluster with --scheduler); "
                      "resumable; other --name VALUE options go to the engine",
        description="One output folder per input under --out, plus batch-summary.csv/.json. A re-run skips "
                    "inputs already done with the same engine, weights, options and input bytes. A folder of "
                    "sub-folders gives one input per sub-folder; a folder of DICOM files is one series.")
    p.add_argument("engine")
    p.add_argument("inputs", nargs="+", help="files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: the core count, "
                                                             "at most 4)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: one GPU per worker if any)")
    p.add_argument("--strict", action="store_true", help="count an input whose checks warn as failed")
    return p


class _Bar:
    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream, self.width = stream or sys.stderr, width
        self.tty = self.stream.isatty()

    def __call__(self, item, finished: int, total: int) -> None:
        name = Path(item.input).name
        if item.status == "failed":
            line = f"failed: {item.reason if item.reason.startswith(name) else f'{name}: {item.reason}'}"
        else:
            line = f"{item.status}: {name}"
            warned = [c for c in item.checks if c.get("status") != "passed"]
            if warned:
                line += f" (warning: {warned[0]['name']}: {warned[0]['reason']})"
        filled = int(self.width * finished / max(total, 1))
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {finished}/{total}"
        if self.tty:
            self.stream.write(f"\r\033[K{line}\n{bar}")
        else:
            self.stream.write(f"{bar} {line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def cmd_batch(args, options: dict) -> int:
    from engines.core.batch import SUMMARY_CSV, run_batch

    bar = _Bar()
    try:
        summary = run_batch(args.engine, args.inputs, args.out, options=options, scheduler=args.scheduler,
                            workers=args.workers, device=args.device, strict=args.strict, progress=bar)
    finally:
        bar.close()
    done, skipped, failed = summary.count("done"), summary.count("skipped"), summary.count("failed")
    print(f"{summary.engine}: {done} done, {skipped} skipped (already done), {failed} failed, "
          f"on {summary.scheduler} in {summary.seconds:.1f} s; summary: {Path(summary.out_dir) / SUMMARY_CSV}")
    for item in summary.failed:
        print(f"failed: {item.input}: {item.reason}", file=sys.stderr)
    return 1 if failed else 0
