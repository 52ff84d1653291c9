"""Start-up time: seconds from process start to a visible main window (no workspace, no torch imported).

    .venv/bin/python benchmarks/shell/startup.py [--runs 7] [--platform offscreen|xcb]

Each run is a fresh process (`csi-workstation` with CSI_STARTUP_EXIT=1, which prints the time from the
process's start, read from /proc, to the first event-loop turn after show(), then quits). Reports the median,
min and max, plus the wall time of the whole process as measured from outside.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--platform", default="offscreen", help="Qt platform: offscreen, or xcb under xvfb-run")
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("csi-workstation")
    inside, outside, shown = [], [], []
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, CSI_STARTUP_EXIT="1", CSI_WORKSTATION_HOME=home, QT_QPA_PLATFORM=args.platform)
        for _ in range(args.runs + 1):  # the first run warms the file cache and is dropped
            t0 = time.perf_counter()
            out = subprocess.run([str(exe), "--workspace", "radiology"], env=env, capture_output=True, text=True,
                                 timeout=120)
            wall = time.perf_counter() - t0
            lines = dict(l.split() for l in out.stdout.splitlines() if l.endswith(tuple("0123456789"))
                         and l.split()[0] in ("window-visible-s", "workspace-shown-s"))
            if out.returncode != 0 or len(lines) != 2:
                print(out.stdout, out.stderr, file=sys.stderr)
                return 1
            inside.append(float(lines["window-visible-s"]))
            shown.append(float(lines["workspace-shown-s"]))
            outside.append(wall)
    inside, outside, shown = inside[1:], outside[1:], shown[1:]
    print(f"platform={args.platform} runs={args.runs}")
    print(f"process start -> window visible: median {statistics.median(inside):.3f} s "
          f"(min {min(inside):.3f}, max {max(inside):.3f})")
    print(f"process start -> radiology view shown: median {statistics.median(shown):.3f} s")
    print(f"whole process incl. shutdown:     median {statistics.median(outside):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
