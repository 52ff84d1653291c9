"""CPU speed of the C4d engines per 1,000 x 1,000 px region and of the VQA ensemble per question (issue 13's rows).

    OMP_NUM_THREADS=1 flock /tmp/csi-training.lock .venv/bin/python benchmarks/engines/bench_cpu_pathology_vqa.py \
        [--repeats 5] [--threads 1 2] [--json benchmarks/engines/results-cpu-pathology-vqa.json]

Every timed call goes through the engine as a user runs it, after one warm-up call in the same process:

* C4d: ``predict({"slide_path": ...})`` on a lossless tiled TIFF of 1,000 x 1,000 px at 1 µm/px (the CNN's
  working resolution: 1 mm², up to 9 tiles of 512 px with 32 px context, only those on tissue), cut from the IHC canvas of
  the workstation's sample slide (real tissue texture). The whole path: stain contract on the thumbnail,
  tissue mask, tiles, network (CNN) or colour deconvolution (baseline), watershed split, calibration, OOD.
  Also the network alone on the same 9 tiles (batches of 2, as the engine runs them on the CPU).
* VQA: ``predict({"image": scene, "question": ...})`` over the questions of 10 held-out test scenes
  (reading, scene check, tokens, five stacked-attention networks, calibration, OOD); seconds per question.

Median of ``--repeats``; the 1-minute load average beside every row (the machine is shared: compare figures
only at similar load). ``section_pathology_vqa(repeats, threads)`` is what bench_cpu.py can call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

REGION = 1000


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def row(configuration: str, seconds: float, per: str, threads: int, note: str = "") -> dict[str, Any]:
    return {"configuration": configuration, "seconds": round(seconds, 4), "per": per, "threads": threads,
            "load": load(), "note": note}


def section_pathology_vqa(repeats: int = 5, threads: tuple[int, ...] = (1, 2)) -> dict[str, list[dict]]:
    import torch

    from engines.pathology.c4d import C4dCnnEngine, C4dDeconvolutionEngine
    from engines.pathology.c4d_eval import write_tile
    from engines.pathology.samples import synth_ihc_canvas
    from engines.textvqa import scenes as S
    from engines.textvqa.vqa_engine import VqaMclKdEngine

    cnn, thr, vqa = C4dCnnEngine(), C4dDeconvolutionEngine(), VqaMclKdEngine()
    cnn.load("cpu")
    vqa.load("cpu")
    canvas, _ = synth_ihc_canvas(REGION, REGION, seed=5)
    asks = [(image, q.text) for i in range(10) for _, image, qs in [S.make_example("test", i)] for q in qs]
    rows: dict[str, list[dict]] = {"c4d": [], "vqa": []}
    with tempfile.TemporaryDirectory(prefix="bench-c4d-") as tmp:
        path = write_tile(Path(tmp) / "region.tiff", canvas)
        per = f"{REGION}x{REGION} px region at 1 µm/px"
        for n in threads:
            torch.set_num_threads(n)
            os.environ["CSI_TORCH_THREADS"] = str(n)  # the engines' thread policy follows the override
            result = cnn.predict({"slide_path": path})
            tiles = result.summary["tiles_analysed"]
            rows["c4d"].append(row("c4d-cnn engine, whole path", timed(lambda: cnn.predict({"slide_path": path}),
                                                                         repeats), per, n, f"{tiles} tiles"))
            rows["c4d"].append(row("c4d-deconvolution engine (classical baseline), whole path",
                                   timed(lambda: thr.predict({"slide_path": path}), repeats), per, n))
            batch = [np.random.default_rng(i).random((3, 512, 512), dtype=np.float32) for i in range(tiles)]

            def network_only():
                with torch.inference_mode():
                    cnn.forward_batches(batch)

            rows["c4d"].append(row("c4d-cnn network alone (float32, batches of 2)", timed(network_only, repeats),
                                   per, n, f"{tiles} tiles of 512²"))
            rows["vqa"].append(row("vqa-mclkd engine, whole path (5 SAN members)",
                                   timed(lambda: [vqa.predict({"image": im, "question": q}) for im, q in asks],
                                         max(1, repeats // 2)) / len(asks), "question", n,
                                   f"{len(asks)} questions of 10 test scenes"))
    os.environ.pop("CSI_TORCH_THREADS", None)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import platform

    import torch

    started = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{platform.machine()} ({os.cpu_count()} cores)",
               "torch": torch.__version__, "load_start": load()}
    rows = section_pathology_vqa(args.repeats, tuple(args.threads))
    started["load_end"] = load()
    for name, items in rows.items():
        print(f"\n**{name}**\n\n| configuration | seconds | per | threads | load | note |\n|---|---|---|---|---|---|")
        for r in items:
            print(f"| {r['configuration']} | {r['seconds']:.3f} | {r['per']} | {r['threads']} | {r['load']} | "
                  f"{r['note']} |")
    print(f"\n{json.dumps(started)}")
    if args.json:
        args.json.write_text(json.dumps({"run": started, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
