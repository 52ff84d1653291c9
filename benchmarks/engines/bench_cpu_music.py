"""CPU speed of the chord-recognition engines: seconds per minute of audio, features included (issue 13's row).

    OMP_NUM_THREADS=1 flock /tmp/csi-training.lock .venv/bin/python benchmarks/engines/bench_cpu_music.py \
        [--audio PATH] [--seconds 180] [--repeats 3] [--threads 1 2] [--cold] \
        [--json benchmarks/engines/results-cpu-music.json]

The recording: ``--audio``, else "Feelings" by Sectoid (Debian package fretsonfire-songs-sectoid, a real mixed
song, 44.1 kHz stereo Ogg Vorbis; ``apt-get download fretsonfire-songs-sectoid && dpkg -x ... DIR`` and pass
DIR/usr/share/games/fretsonfire/data/songs/sectoid/Feelings/song.ogg), cut to its first ``--seconds`` and
written as FLAC; without it, the bundled 40 s excerpt of the same song repeated to ``--seconds`` (said in the
row). Every timed call goes through the engine as a user runs it, ``predict({"audio_path": ...})``, with an
empty feature cache (a fresh workstation home per call), after one warm-up call in the same process:

* one row per engine and thread count: the whole call (decode, resample, log-CQT, input checks, network,
  Viterbi, key) in seconds per audio minute, median of ``--repeats``; target < 0.5 s per minute;
* ``stages``: the same path split into its parts (engine prepare: decode + features + checks; infer; finish);
* ``--cold``: the first call in a fresh process (imports, weights, first-call costs) for each engine.

The 1-minute load average is recorded with every row: on a shared machine figures are comparable only at
similar load. ``section_chords(repeats, threads)`` is what benchmarks/engines/bench_cpu.py can call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ENGINES = ("chord-recognition", "chord-recognition-large", "chord-templates")
FEELINGS_DEB = "/usr/share/games/fretsonfire/data/songs/sectoid/Feelings/song.ogg"
TARGET_S_PER_MIN = 0.5


def load() -> float:
    return round(os.getloadavg()[0], 2)


def prepare_recording(audio: str | None, seconds: float, work: Path) -> tuple[Path, str]:
    """A FLAC of the first ``seconds`` of the recording (its own rate and channels) and how it was made."""
    import soundfile as sf

    source = Path(audio) if audio else Path(FEELINGS_DEB)
    if source.exists():
        data, sr = sf.read(str(source), dtype="float32", always_2d=True)
        data = data[: int(seconds * sr)]
        how = f"{source.name} ({source.parent.name}), first {len(data) / sr:.0f} s, {sr} Hz, {data.shape[1]} ch"
    else:
        bundled = ROOT / "resources/samples/music/sectoid-feelings-excerpt.ogg"
        part, sr = sf.read(str(bundled), dtype="float32", always_2d=True)
        reps = int(np.ceil(seconds * sr / len(part)))
        data = np.concatenate([part] * reps)[: int(seconds * sr)]
        how = f"the bundled 40 s real excerpt repeated to {seconds:.0f} s ({source} not found), {sr} Hz"
    out = work / "recording.flac"
    sf.write(str(out), data, sr)  # FLAC: libsndfile's Vorbis writer fails on long files
    return out, how


def _fresh_home(work: Path, tag: str) -> None:
    home = Path(tempfile.mkdtemp(prefix=f"home-{tag}-", dir=work))
    os.environ["CSI_WORKSTATION_HOME"] = str(home)


def section_chords(repeats: int = 3, threads: list[int] | None = None, audio: str | None = None,
                   seconds: float = 180.0) -> list[dict[str, Any]]:
    import torch

    from engines.core.registry import EngineRegistry
    from engines.core.engine import no_progress
    from engines.core.model_engine import CancelToken

    threads = threads or [1]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path, how = prepare_recording(audio, seconds, work)
        import soundfile as sf

        minutes = sf.info(str(path)).duration / 60.0
        registry = EngineRegistry.discover()
        for engine_id in ENGINES:
            engine = registry.get(engine_id)
            engine.load("cpu")
            for n in threads:
                os.environ["CSI_TORCH_THREADS"] = str(n)
                torch.set_num_threads(n)
                _fresh_home(work, "warm")
                engine.predict({"audio_path": path})
                times, stage_times = [], []
                for r in range(repeats):
                    _fresh_home(work, f"{engine_id}-{n}-{r}")
                    t = time.perf_counter()
                    track = engine.predict({"audio_path": path})
                    times.append(time.perf_counter() - t)
                    # the same path in its three parts (a fresh cache again)
                    _fresh_home(work, f"{engine_id}-{n}-{r}-stages")
                    token = CancelToken()
                    t0 = time.perf_counter()
                    inputs = engine.prepare({"audio_path": path}, progress=no_progress, cancel=token)
                    t1 = time.perf_counter()
                    outputs = engine._run_infer(inputs, no_progress, token)
                    t2 = time.perf_counter()
                    engine.finish(outputs, inputs, {"audio_path": path})
                    t3 = time.perf_counter()
                    stage_times.append((t1 - t0, t2 - t1, t3 - t2))
                med = statistics.median(times)
                stages = np.median(np.array(stage_times), axis=0)
                rows.append({"engine": engine_id, "threads": n, "recording": how,
                             "audio_minutes": round(minutes, 2), "seconds": round(med, 3),
                             "s_per_audio_minute": round(med / minutes, 3),
                             "target_s_per_audio_minute": TARGET_S_PER_MIN,
                             "meets_target": bool(med / minutes < TARGET_S_PER_MIN),
                             "stages_s_per_audio_minute": {
                                 "prepare (decode, resample, log-CQT, input checks)": round(stages[0] / minutes, 3),
                                 "infer (network or templates)": round(stages[1] / minutes, 3),
                                 "finish (calibration, Viterbi, segments, key)": round(stages[2] / minutes, 3)},
                             "segments": len(track.segments), "load_1min": load()})
                print(json.dumps(rows[-1]), flush=True)
            engine.unload()
        os.environ.pop("CSI_TORCH_THREADS", None)
    return rows


COLD_SNIPPET = r"""
import os, sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from engines.core.registry import EngineRegistry
engine = EngineRegistry.discover().get(sys.argv[2])
track = engine.predict({"audio_path": sys.argv[3]})
print(json.dumps({"seconds": time.perf_counter() - t0, "segments": len(track.segments)}))
"""


def section_cold(audio: str | None, seconds: float) -> list[dict[str, Any]]:
    """The first call in a fresh process: imports, weights, first-call costs, features with an empty cache."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path, how = prepare_recording(audio, seconds, work)
        import soundfile as sf

        minutes = sf.info(str(path)).duration / 60.0
        for engine_id in ENGINES:
            env = dict(os.environ, CSI_WORKSTATION_HOME=tempfile.mkdtemp(dir=work), CSI_TORCH_THREADS="1")
            proc = subprocess.run([sys.executable, "-c", COLD_SNIPPET, str(ROOT), engine_id, str(path)],
                                  capture_output=True, text=True, env=env, timeout=600)
            if proc.returncode != 0:
                rows.append({"engine": engine_id, "cold": True, "error": proc.stderr.strip()[-300:]})
                continue
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"engine": engine_id, "cold": True, "recording": how, "seconds": round(out["seconds"], 2),
                         "s_per_audio_minute": round(out["seconds"] / minutes, 3), "load_1min": load()})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", default=None)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--cold", action="store_true", help="also time the first call in a fresh process")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import platform

    report: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "command": " ".join([".venv/bin/python", *sys.argv]),
                              "chords": section_chords(args.repeats, args.threads, args.audio, args.seconds)}
    if args.cold:
        report["chords_cold"] = section_cold(args.audio, args.seconds)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
