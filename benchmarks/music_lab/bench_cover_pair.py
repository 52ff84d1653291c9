"""Time one cover comparison of two ~50-s clips (chroma given): cross-similarity with each transposition mode,
Qmax, Dmax and the CNN. FIELD-NOTES' peer figure: Essentia Qmax/Dmax 0.4-0.8 s per pair of 50 s clips.

    .venv/bin/python benchmarks/music_lab/bench_cover_pair.py [--data build/music_lab/covers]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import torch

    from engines.music_lab.covers import CoverIdEngine, cross_similarity, dmax, pooled_chroma, qmax

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "build/music_lab/covers")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = sorted(args.data.glob("test_*.npz"))
    if len(files) < 4:
        raise SystemExit("render the collection first (scripts/music_lab/render_cover_versions.py)")
    # two ~50-s clips: two renderings each, concatenated
    a = pooled_chroma(np.concatenate([np.load(files[0])["chroma"], np.load(files[3])["chroma"]]))
    b = pooled_chroma(np.concatenate([np.load(files[1])["chroma"], np.load(files[4])["chroma"]]))
    engine = CoverIdEngine()
    engine.load("cpu")
    print(f"frames: {len(a)} x {len(b)} (~{len(a) * 0.3715:.0f} s x {len(b) * 0.3715:.0f} s)")
    for mode in ("none", "oti", "patch"):
        t = {"matrix": [], "qmax": [], "dmax": [], "cnn": []}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            cs = cross_similarity(a, b, mode)
            t1 = time.perf_counter()
            qmax(cs.binary)
            t2 = time.perf_counter()
            dmax(cs.binary)
            t3 = time.perf_counter()
            engine.probability(cs)
            t4 = time.perf_counter()
            for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[k].append(v)
        print(f"{mode:6s} " + "  ".join(f"{k} {np.median(v) * 1000:6.1f} ms" for k, v in t.items())
              + f"  total {sum(np.median(v) for v in t.values()) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
