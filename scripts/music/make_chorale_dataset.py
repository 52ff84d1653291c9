"""Render Bach chorales (music21 corpus) with FluidSynth and store BTC features plus chord labels.

One .npz per rendering: logcqt (frames x 144, float16), lab (the chord labels as MIREX .lab text), and the
rendering settings. Training chorales get random GM programs, tempos and transpositions; held-out chorales
(BWV number ending in 3 or 7) are rendered into a separate folder and are never trained on.

    .venv/bin/python scripts/music/make_chorale_dataset.py --out /tmp/chorales --split train --versions 1 \
        --shard 0/2
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.audio import log_cqt  # noqa: E402
from engines.music.chorales import PROGRAMS, chorale_names, is_held_out, render_chorale  # noqa: E402
from engines.music.chords import ChordTrack  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", choices=("train", "test"), required=True)
    ap.add_argument("--versions", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard", default="0/1", help="i/n: this process renders every n-th chorale from i")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    i, n = (int(x) for x in args.shard.split("/"))
    names = [c for c in chorale_names() if is_held_out(c) == (args.split == "test")]
    names = names[i::n]
    if args.limit:
        names = names[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{args.seed}-{args.split}-{i}")
    t0 = time.time()
    for k, name in enumerate(names):
        for v in range(args.versions):
            stem = f"{Path(name).name}_v{v}"
            target = args.out / f"{stem}.npz"
            if target.exists():
                continue
            program = rng.choice(PROGRAMS)
            bpm = rng.uniform(60, 110)
            transpose = 0 if args.split == "test" else rng.randint(-5, 6)
            try:
                r = render_chorale(name, bpm=bpm, program=program, transpose=transpose)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next chorale
                print(f"skip {name}: {type(exc).__name__}: {exc}", flush=True)
                break
            feats = log_cqt(r.samples)
            lab = ChordTrack(r.segments, len(r.samples) / r.sr).to_lab(transposed=False)
            tmp = target.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, logcqt=feats.astype(np.float16), lab=np.array(lab), bpm=bpm,
                                program=program, transpose=transpose, name=np.array(name),
                                duration=len(r.samples) / r.sr)
            tmp.rename(target)
        print(f"{k + 1}/{len(names)} {name} {time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
