"""Large annotation sets in the pathology workspace: reopen a slide with N autosaved annotations, import an
N-feature GeoJSON, and draw frames, in the real window (offscreen). Run by hand, never in the test suite:

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/pathology/bench_annotations.py [--n 1000000] \
        [--json benchmarks/pathology/results-annotations.json]

Target: 1,000,000 annotations open in under 10 s (it was 103 s and 3.2 GB with one list item per annotation
built on the GUI thread). Reported: wall time to the `opened` signal, the longest the GUI thread was blocked
(measured by a 50 ms heartbeat timer), the time of one zoomed-out and one zoomed-in frame, the import time,
and peak resident memory. Uses a fresh CSI_WORKSTATION_HOME under /tmp and a generated 2048 x 1536 slide.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def features(n: int, seed: int, object_type: str = "annotation") -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(seed)
    xy = rng.uniform(10, [2030, 1520], (n, 2))
    return [{"type": "Feature", "id": f"{object_type}-{seed}-{i}", "geometry": {"type": "Polygon", "coordinates": [[
        [x - 3, y - 3], [x + 3, y - 3], [x + 3, y + 3], [x - 3, y + 3], [x - 3, y - 3]]]},
        "properties": {"objectType": object_type, "name": f"cell {i}"}} for i, (x, y) in enumerate(xy.tolist())]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--json-autosave", action="store_true",
                    help="reopen from a GeoJSON autosave (what versions before the compact .npz wrote)")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["CSI_WORKSTATION_HOME"] = tempfile.mkdtemp(prefix="csi-bench-ann-")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from engines.pathology.annotations import autosave_path
    from engines.pathology.samples import synth_ihc_canvas, write_pyramid_tiff

    app = QApplication.instance() or QApplication([])
    work = Path(os.environ["CSI_WORKSTATION_HOME"])
    canvas_img, _ = synth_ihc_canvas(2048, 1536, seed=3)
    slide = write_pyramid_tiff(work / "bench-slide.tiff", canvas_img, 0.5, levels=4)
    target = autosave_path(slide)
    target.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    feats = features(args.n, 0)
    if args.json_autosave or args.n <= 10_000:
        target.write_text(json.dumps({"schema": 1, "data": {"type": "FeatureCollection", "features": feats}}))
    else:  # what the workstation writes for a set this large: columns in an .npz
        from engines.core.autosave import encode_array_autosave
        from engines.pathology.annotations import AUTOSAVE_SCHEMA, compact_autosave_path
        from engines.pathology.geojson import parse_geojson_table

        table, _ = parse_geojson_table(json.dumps(feats))
        arrays, meta = table.to_arrays()
        target = compact_autosave_path(slide)
        target.write_bytes(encode_array_autosave(arrays, schema=AUTOSAVE_SCHEMA, meta=meta))
        del table, arrays
    del feats
    print(f"wrote the {args.n:,}-annotation autosave ({target.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t:.1f} s")

    from app.main_window import MainWindow

    win = MainWindow(detect_device=False)
    win.resize(1400, 900)
    win.show()
    view = win.switch_to("pathology")

    blocked = {"max": 0.0}
    beat = QElapsedTimer()
    beat.start()

    def heartbeat():
        blocked["max"] = max(blocked["max"], beat.restart() / 1000.0)

    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(heartbeat)
    timer.start()

    def wait_for(cond, timeout=600.0):
        end = time.perf_counter() + timeout
        while not cond() and time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.005)
        return cond()

    opened = []
    view.opened.connect(opened.append)
    t = time.perf_counter()
    blocked["max"] = 0.0
    beat.restart()
    view.open_path(slide)
    ok = wait_for(lambda: opened)
    open_s = time.perf_counter() - t
    open_blocked = blocked["max"]
    results = {"n": args.n, "autosave": target.suffix, "opened": bool(ok), "open_s": round(open_s, 2), "open_gui_blocked_max_s": round(open_blocked, 3),
               "annotations": len(view.store.items)}
    canvas = view.canvas
    for name, setup in (("frame_fit_s", canvas.fit), ("frame_40x_s", lambda: canvas.set_view(1000, 700, 2.0))):
        setup()
        t = time.perf_counter()
        canvas.repaint()
        results[name] = round(time.perf_counter() - t, 3)
        results[name.replace("_s", "_mode")] = canvas.annotation_mode
    imp = work / "import.geojson"
    imp.write_text(json.dumps(features(args.n, 1)))
    before = len(view.store.items)
    t = time.perf_counter()
    blocked["max"] = 0.0
    beat.restart()
    view.import_geojson(imp)
    wait_for(lambda: len(view.store.items) > before)
    results["import_s"] = round(time.perf_counter() - t, 2)
    results["import_gui_blocked_max_s"] = round(blocked["max"], 3)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results["target_open_under_10_s"] = ok and open_s < 10
    timer.stop()
    view.store.dirty = False  # do not time the final autosave of 2N annotations
    win.close()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
