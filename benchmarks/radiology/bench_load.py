"""Open a generated 300 x 512² CT series: the workstation reader vs SimpleITK ImageSeriesReader vs naive pydicom.

    .venv/bin/python benchmarks/radiology/bench_load.py [--slices 300] [--repeat 3] [--folder /tmp/csi-bench-ct300]

Each method runs in a fresh process (imports done before the clock starts); peak memory is the process'
resident high-water mark during the load minus its resident size just before it (Linux clear_refs reset),
compared with the stored voxel bytes (slices x 512 x 512 x 2). Libraries are imported before the clock
starts (in the app, pydicom is already loaded when the shell classifies the dropped folder). The files are in the page cache for every
method (they were just written or read), so this measures decoding and assembly, not the disk.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, sys, time
from pathlib import Path
folder, method = Path(sys.argv[1]), sys.argv[2]

def rss_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

import numpy as np
if method == "workstation":
    import pydicom  # the shell has imported it already when it classified the folder
    from engines.radiology import reader
elif method == "simpleitk":
    import SimpleITK as sitk
else:
    import pydicom
open("/proc/self/clear_refs", "w").write("5")
base = rss_kb("VmRSS:")
t0 = time.perf_counter()
first = None
if method == "workstation":
    preview = reader.quick_preview(folder)
    first = time.perf_counter() - t0
    scan = reader.scan_dicom(folder)
    marks = {}
    vol = reader.load_series(scan.image_series()[0],
                             on_first_slice=lambda a, v: marks.setdefault("mid", time.perf_counter() - t0))
    shape, dtype = vol.voxels.shape, str(vol.voxels.dtype)
    extra = {"middle_slice_s": marks["mid"]}
elif method == "simpleitk":
    r = sitk.ImageSeriesReader()
    names = r.GetGDCMSeriesFileNames(str(folder))
    r.SetFileNames(names)
    img = r.Execute()
    arr = sitk.GetArrayViewFromImage(img)
    shape, dtype = arr.shape, str(arr.dtype)
    first = time.perf_counter() - t0  # SimpleITK returns the whole volume or nothing
    extra = {}
else:
    files = sorted(folder.iterdir())
    dss = []
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f)
        if n == 0:
            a0 = ds.pixel_array
            first = time.perf_counter() - t0
        dss.append(ds)
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    vol = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    shape, dtype = vol.shape, str(vol.dtype)
    extra = {}
total = time.perf_counter() - t0
peak = rss_kb("VmHWM:")
print(json.dumps({"method": method, "first_slice_s": first, "full_volume_s": total, "shape": list(shape),
                  "dtype": dtype, "peak_extra_mb": (peak - base) / 1024, **extra}))
'''


def run(folder: Path, method: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), method], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", default="/tmp/csi-bench-ct300")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    folder = Path(args.folder)
    if not (folder.exists() and len(list(folder.iterdir())) == args.slices):
        from engines.radiology.samples import write_ct_series

        print(f"generating {args.slices} x 512² slices in {folder} ...", flush=True)
        t = time.perf_counter()
        write_ct_series(folder, n_slices=args.slices, slice_mm=1.0, z0=-150.0)
        print(f"  {time.perf_counter() - t:.1f} s", flush=True)
    stored_mb = args.slices * 512 * 512 * 2 / 2**20
    for f in folder.iterdir():  # warm the page cache equally for everyone
        f.read_bytes()
    results: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for method in ("workstation", "simpleitk", "pydicom-naive"):
            results.setdefault(method, []).append(run(folder, method))
    print(f"\n{args.slices} slices x 512 x 512 int16 = {stored_mb:.0f} MiB stored voxels; median of {args.repeat}")
    print(f"{'method':<15}{'first slice s':>15}{'middle slice s':>16}{'full volume s':>15}{'peak extra MiB':>16}"
          f"{'x stored':>10}  dtype")
    for method, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("first_slice_s", "full_volume_s", "peak_extra_mb")}
        mid = statistics.median(r["middle_slice_s"] for r in rows) if "middle_slice_s" in rows[0] else float("nan")
        print(f"{method:<15}{med['first_slice_s']:>15.3f}{mid:>16.3f}{med['full_volume_s']:>15.3f}"
              f"{med['peak_extra_mb']:>16.0f}{med['peak_extra_mb'] / stored_mb:>10.2f}  {rows[0]['dtype']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
