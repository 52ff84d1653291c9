"""Beats and downbeats on arranged songs with exact labels: engines/music/beats.py beside a naive baseline
(librosa's beats, a downbeat every fourth beat from the first).

    flock /tmp/csi-training.lock .venv/bin/python scripts/music/eval_beats.py --seeds 0:24 --seconds 40

Songs are rendered with FluidSynth (the FluidR3 GM bank, or --soundfont) through the produced-recording effects
chain of scripts/music/render_arranged.py. The beat estimator is classical (nothing was trained), so the
soundfont is no leak. Metrics: mir_eval beat F-measure (70 ms window) of beats and of downbeats, and meter
accuracy (3 vs 4 beats per bar; 6/8 songs are counted as 2 beats of dotted quarters and scored as meter 3/4 or
4/4 = wrong unless the estimate found their 6 eighths as 3+3). Prints a JSON summary and a markdown row.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.audio import SR  # noqa: E402
from engines.music.beats import estimate_beats  # noqa: E402


def main() -> int:
    import mir_eval

    from scripts.music.render_arranged import TRAIN_SOUNDFONTS, render_song

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0:24")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--soundfont", default=str(TRAIN_SOUNDFONTS["fluid-gm"]))
    ap.add_argument("--no-fx", action="store_true")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    a, b = (int(x) for x in args.seeds.split(":"))
    rows = []
    t_est = t_audio = 0.0
    for seed in range(a, b):
        song, y, applied = render_song(seed, Path(args.soundfont), args.seconds, fx=not args.no_fx)
        t0 = time.perf_counter()
        est = estimate_beats(y, SR)
        t_est += time.perf_counter() - t0
        t_audio += len(y) / SR
        ref_b, ref_d = np.asarray(song.beats), np.asarray(song.downbeats)
        naive_d = est.beats[::4]
        bar = {"4/4": 4, "3/4": 3, "6/8": 2}[song.meter]
        rows.append({
            "seed": seed, "style": song.style, "meter": song.meter, "bpm": round(song.bpm, 1),
            "beat_f": mir_eval.beat.f_measure(ref_b, est.beats),
            "downbeat_f": mir_eval.beat.f_measure(ref_d, est.downbeats),
            "naive_downbeat_f": mir_eval.beat.f_measure(ref_d, naive_d),
            "meter_ok": est.beats_per_bar == bar, "est_meter": est.beats_per_bar,
            "est_bpm": round(est.bpm, 1), "confidence": round(est.confidence, 3), "warnings": list(est.warnings)})
        print(json.dumps(rows[-1]), flush=True)

    def mean(key, sel=lambda r: True):
        vals = [float(r[key]) for r in rows if sel(r)]
        return round(float(np.mean(vals)), 3) if vals else None

    summary = {"songs": len(rows), "beat_f": mean("beat_f"), "downbeat_f": mean("downbeat_f"),
               "naive_downbeat_f": mean("naive_downbeat_f"),
               "meter_accuracy_34_44": mean("meter_ok", lambda r: r["meter"] != "6/8"),
               "downbeat_f_44": mean("downbeat_f", lambda r: r["meter"] == "4/4"),
               "downbeat_f_34": mean("downbeat_f", lambda r: r["meter"] == "3/4"),
               "seconds_per_minute": round(t_est / max(1e-9, t_audio) * 60, 3),
               "soundfont": Path(args.soundfont).name, "effects": not args.no_fx, "command": " ".join(sys.argv)}
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
