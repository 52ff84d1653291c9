"""WCSR (mir_eval.chord: root, majmin, sevenths) of the chord engines on the held-out rendered chorales.

    .venv/bin/python scripts/music/evaluate_chords.py --data /tmp/music/test --json /tmp/music/eval.json \
        [--engines chord-recognition,chord-templates] [--update-card]

Data: scripts/music/make_chorale_dataset.py --split test (BWV numbers ending in 3 or 7; never trained on).
Scores are duration-weighted over all chorales (MIREX WCSR). With --update-card the BTC model card's
"metrics" gets the held-out table (the weights, and so their SHA-256, do not change).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.audio import SR, AudioClip, Features, chroma_from_log_cqt  # noqa: E402
from engines.music.chords import ChordTrack  # noqa: E402
from engines.music.evaluate import METRICS, wcsr  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--engines", default="chord-recognition,chord-templates")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="engine option KEY=VALUE for all engines")
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from engines.core.registry import EngineRegistry

    registry = EngineRegistry.discover()
    files = sorted(args.data.glob("*_v*.npz"))
    files = [f for f in files if not f.name.endswith(".tmp.npz")]
    if args.limit:
        files = files[: args.limit]
    options = {}
    for pair in args.set:
        k, v = pair.split("=", 1)
        options[k] = json.loads(v) if v[:1].isdigit() or v in ("true", "false") else v
    results = {}
    for engine_id in args.engines.split(","):
        engine = registry.get(engine_id)
        engine.load("cpu")
        totals = {m: 0.0 for m in METRICS}
        weights = {m: 0.0 for m in METRICS}
        seconds = 0.0
        audio_s = 0.0
        per_file = []
        for f in files:
            with np.load(f, allow_pickle=False) as z:
                logcqt = z["logcqt"].astype(np.float32)
                lab = str(z["lab"])
                duration = float(z["duration"])
                name = str(z["name"])
            feats = Features(logcqt, chroma_from_log_cqt(logcqt))
            clip = AudioClip(np.zeros(int(duration * SR), np.float32), SR, name)
            t0 = time.perf_counter()
            track = engine.predict({"clip": clip, "features": feats, **options})
            seconds += time.perf_counter() - t0
            audio_s += duration
            ref = ChordTrack.from_lab_text(lab, duration)
            scores, dur = wcsr(ref.segments, track.segments)
            for m in METRICS:
                if not np.isnan(scores[m]):
                    totals[m] += scores[m] * dur
                    weights[m] += dur
            per_file.append({"chorale": name, **{m: round(scores[m], 4) for m in METRICS}})
        table = {m: round(totals[m] / max(weights[m], 1e-9), 4) for m in METRICS}
        table["chorales"] = len(files)
        table["audio_minutes"] = round(audio_s / 60, 2)
        table["model_seconds_per_audio_minute"] = round(seconds / max(audio_s / 60, 1e-9), 3)
        results[engine_id] = {"wcsr": table, "per_file": per_file}
        print(f"{engine_id:20s} " + "  ".join(f"{m} {table[m]:.3f}" for m in METRICS)
              + f"  ({len(files)} chorales, {table['audio_minutes']} min)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.update_card:
        from engines.core.atomic import atomic_write_text
        from engines.core.weights import ModelCard, WeightsStore

        for engine_id in results:
            name = getattr(registry.get(engine_id), "weights_name", None)
            if not name:
                continue
            _, card_path = WeightsStore.default().paths(name)
            card = ModelCard.from_json(card_path.read_text(encoding="utf-8"))
            card.metrics["held_out_wcsr"] = {k: {"wcsr": v["wcsr"]} for k, v in results.items()}
            card.metrics["held_out_command"] = (
                f".venv/bin/python scripts/music/evaluate_chords.py --data /tmp/music/test --engines "
                f"{args.engines} --update-card  (test data: make_chorale_dataset.py --split test --versions 1 "
                f"--seed 7, shards 0/2 and 1/2: 68 held-out chorales)")
            atomic_write_text(card_path, card.to_json())
            print(f"updated {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
