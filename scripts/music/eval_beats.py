"""Beats and downbeats on arranged songs with exact labels, and on real songs with a charted tempo map:
engines/music/beats.py beside a naive baseline (librosa's beats, a downbeat every fourth beat from the first).

    OMP_NUM_THREADS=1 flock /tmp/csi-training.lock .venv/bin/python scripts/music/eval_beats.py \
        --seeds 0:40 --seconds 30 --real /out/real/fretsonfire-songs-sectoid,/out/real/fretsonfire-songs-muldjord

--arranged-dir evaluates songs already rendered by `scripts/music/render_arranged.py --keep-audio` (NAME.flac beside
NAME_v0.npz with its labels: e.g. the held-out split, rendered with the two held-out soundfonts) instead of
rendering (--seeds 0:0 to skip the rendered ones).

Arranged songs are rendered with FluidSynth (the FluidR3 GM bank, or --soundfont) through the produced-recording
effects chain of scripts/music/render_arranged.py (renders are cached under --cache, so repeated runs measure
the estimator, not FluidSynth). The beat estimator is classical (nothing was trained), so the soundfont is no
leak. Metrics (mir_eval, 70 ms window): beat F-measure, beat AMLt (continuity at any metrical level: double,
half or off-beat tracking is not an error there), downbeat F-measure, and meter accuracy (3 vs 4 beats per
bar, 6/8 songs left out), meter accuracy over all three meters (the estimate's time signature against the
label: 4/4, 3/4 or 6/8, whose beats are 2 dotted quarters a bar; swung songs are 4/4 or 3/4), 6/8 recall and how
many other songs were called 6/8, and the tempo octave: the estimated tempo within 4% of the label's, at half
or at double it.

Real songs (--real, a folder searched for Frets on Fire song folders: song.ogg beside notes.mid): the chart's
tempo map (its MIDI tempo and bar grid, made by the charter to keep the game in time with the audio) is the
reference; excerpts of --real-seconds from --real-offset. A chart has one metrical level the charter chose, so
AMLt is the fairer beat number there.

Prints one JSON line per song, a JSON summary and the estimator's cost in seconds per minute of audio (timed
after a warm-up call, so numba's compilation is not counted).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.audio import SR  # noqa: E402
from engines.music.beats import estimate_beats  # noqa: E402


def cached_render(seed: int, soundfont: Path, seconds: float, fx: bool, cache: Path | None) -> dict:
    """The rendered song's samples and labels, from the cache when it is there."""
    key = f"{soundfont.stem}_{seed}_{seconds:g}_{'fx' if fx else 'dry'}.npz"
    if cache is not None and (cache / key).exists():
        with np.load(cache / key) as z:
            return {k: (z[k] if z[k].ndim else z[k].item()) for k in z.files}
    from scripts.music.render_arranged import render_song

    song, y, _ = render_song(seed, soundfont, seconds, fx=fx)
    rec = {"y": y.astype(np.float32), "beats": np.asarray(song.beats), "downbeats": np.asarray(song.downbeats),
           "meter": song.meter, "style": song.style, "bpm": float(song.bpm), "swing": bool(song.swing)}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / key, **rec)
    return rec


def rendered_songs(folder: Path):
    """(name, record) of each song render_arranged.py --keep-audio wrote to ``folder``: NAME.flac + NAME_v0.npz."""
    from engines.music.audio import load_audio

    for audio in sorted(folder.glob("*.flac")):
        labels = audio.with_name(f"{audio.stem}_v0.npz")
        if not labels.exists():
            continue
        with np.load(labels) as z:
            rec = {k: (z[k] if z[k].ndim else z[k].item()) for k in ("beats", "downbeats", "meter", "style", "bpm",
                                                                    "swing")}
        rec["y"] = load_audio(audio, SR).samples
        yield audio.stem, rec


def tempo_octave(est_bpm: float, ref_bpm: float) -> str:
    """"ok" within 4% of the reference tempo, "half" or "double" within 4% of those, else "other"."""
    for name, ratio in (("ok", 1.0), ("half", 0.5), ("double", 2.0)):
        if abs(est_bpm / (ref_bpm * ratio) - 1.0) < 0.04:
            return name
    return "other"


def real_songs(root: Path, offset: float, seconds: float):
    """(name, samples, chart beats, chart downbeats) of each charted song under ``root``, as an excerpt."""
    import pretty_midi

    from engines.music.audio import load_audio

    for chart in sorted(root.rglob("notes.mid")):
        audio = chart.with_name("song.ogg")
        if not audio.exists():
            continue
        midi = pretty_midi.PrettyMIDI(str(chart))
        y = load_audio(audio, SR).samples[int(offset * SR):int((offset + seconds) * SR)]
        beats, downbeats = midi.get_beats() - offset, midi.get_downbeats() - offset
        keep = lambda t: t[(t >= 0) & (t < len(y) / SR)]  # noqa: E731
        yield chart.parent.name, y, keep(beats), keep(downbeats)


def load_estimator(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("beats_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.estimate_beats


def score(ref_b: np.ndarray, ref_d: np.ndarray, est) -> dict:
    import mir_eval

    amlt = mir_eval.beat.continuity(mir_eval.beat.trim_beats(ref_b), mir_eval.beat.trim_beats(est.beats))[3] \
        if len(est.beats) > 1 else 0.0
    return {"beat_f": round(mir_eval.beat.f_measure(ref_b, est.beats), 4), "beat_amlt": round(float(amlt), 4),
            "downbeat_f": round(mir_eval.beat.f_measure(ref_d, est.downbeats), 4),
            "naive_downbeat_f": round(mir_eval.beat.f_measure(ref_d, est.beats[::4]), 4),
            "est_bpm": round(est.bpm, 1), "est_meter": est.meter, "confidence": round(est.confidence, 3),
            "warnings": list(est.warnings)}


def main() -> int:
    from scripts.music.render_arranged import TRAIN_SOUNDFONTS

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0:40")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--soundfont", default=str(TRAIN_SOUNDFONTS["fluid-gm"]))
    ap.add_argument("--no-fx", action="store_true")
    ap.add_argument("--cache", default="/tmp/csi-beats-cache", help="rendered songs ('' for none)")
    ap.add_argument("--arranged-dir", default="", help="songs rendered by render_arranged.py --keep-audio")
    ap.add_argument("--real", default="",
                    help="folders (comma-separated) with Frets on Fire songs (song.ogg + notes.mid)")
    ap.add_argument("--real-offset", type=float, default=30.0)
    ap.add_argument("--real-seconds", type=float, default=60.0)
    ap.add_argument("--estimator", default="", help="a .py file defining estimate_beats(y, sr), to compare "
                    "another version (e.g. `git show REV:engines/music/beats.py > /tmp/old.py`)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    estimate = load_estimator(args.estimator) if args.estimator else estimate_beats
    a, b = (int(x) for x in args.seeds.split(":"))
    cache = Path(args.cache) if args.cache else None
    estimate(np.random.default_rng(0).normal(size=SR * 5).astype(np.float32) * 0.1, SR)  # warm-up
    rows, real_rows = [], []
    t_est = t_audio = 0.0
    arranged = ((str(seed), cached_render(seed, Path(args.soundfont), args.seconds, not args.no_fx, cache))
                for seed in range(a, b))
    if args.arranged_dir:
        arranged = itertools.chain(arranged, rendered_songs(Path(args.arranged_dir)))
    for name, rec in arranged:
        t0 = time.perf_counter()
        est = estimate(rec["y"], SR)
        t_est += time.perf_counter() - t0
        t_audio += len(rec["y"]) / SR
        bar = {"4/4": 4, "3/4": 3, "6/8": 2}[rec["meter"]]
        rows.append({"song": name, "style": rec["style"], "meter": rec["meter"], "swing": bool(rec["swing"]),
                     "bpm": round(float(rec["bpm"]), 1), **score(rec["beats"], rec["downbeats"], est),
                     "meter_ok": est.beats_per_bar == bar, "time_signature_ok": est.meter == rec["meter"],
                     "tempo": tempo_octave(est.bpm, float(rec["bpm"]))})
        rows[-1]["tempo_ok"] = rows[-1]["tempo"] == "ok"
        print(json.dumps(rows[-1]), flush=True)
    if args.real:
        songs = (s for root in args.real.split(",")
                 for s in real_songs(Path(root), args.real_offset, args.real_seconds))
        for name, y, ref_b, ref_d in songs:
            t0 = time.perf_counter()
            est = estimate(y, SR)
            t_est += time.perf_counter() - t0
            t_audio += len(y) / SR
            chart_bpm = 60.0 / float(np.median(np.diff(ref_b)))
            real_rows.append({"song": name, "chart_bpm": round(chart_bpm, 1), **score(ref_b, ref_d, est),
                              "tempo": tempo_octave(est.bpm, chart_bpm)})
            real_rows[-1]["tempo_ok"] = real_rows[-1]["tempo"] == "ok"
            print(json.dumps(real_rows[-1]), flush=True)

    def mean(rs, key, sel=lambda r: True):
        vals = [float(r[key]) for r in rs if sel(r)]
        return round(float(np.mean(vals)), 3) if vals else None

    summary = {"songs": len(rows), "beat_f": mean(rows, "beat_f"), "beat_amlt": mean(rows, "beat_amlt"),
               "downbeat_f": mean(rows, "downbeat_f"), "naive_downbeat_f": mean(rows, "naive_downbeat_f"),
               "meter_accuracy_34_44": mean(rows, "meter_ok", lambda r: r["meter"] != "6/8"),
               "meter_accuracy": mean(rows, "time_signature_ok"),
               "six_eight_recall": mean(rows, "time_signature_ok", lambda r: r["meter"] == "6/8"),
               "six_eight_songs": sum(r["meter"] == "6/8" for r in rows),
               "called_six_eight_wrongly": sum(r["est_meter"] == "6/8" and r["meter"] != "6/8" for r in rows),
               "downbeat_f_68": mean(rows, "downbeat_f", lambda r: r["meter"] == "6/8"),
               "tempo_ok": mean(rows, "tempo_ok"),
               "tempo_halved": sum(r["tempo"] == "half" for r in rows),
               "tempo_doubled": sum(r["tempo"] == "double" for r in rows),
               "downbeat_f_44": mean(rows, "downbeat_f", lambda r: r["meter"] == "4/4"),
               "downbeat_f_34": mean(rows, "downbeat_f", lambda r: r["meter"] == "3/4"),
               "beat_f_slow": mean(rows, "beat_f", lambda r: r["bpm"] < 90),
               "real_songs": len(real_rows), "real_beat_f": mean(real_rows, "beat_f"),
               "real_beat_amlt": mean(real_rows, "beat_amlt"), "real_downbeat_f": mean(real_rows, "downbeat_f"),
               "real_tempo_ok": mean(real_rows, "tempo_ok"),
               "real_tempo_halved": sum(r["tempo"] == "half" for r in real_rows),
               "seconds_per_minute": round(t_est / max(1e-9, t_audio) * 60, 3),
               "soundfont": Path(args.soundfont).name if b > a else None, "arranged_dir": args.arranged_dir or None, "effects": not args.no_fx, "command": " ".join(sys.argv)}
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows, "real": real_rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
