"""Calibrate the BTC chord engines through their own path and record it in their model cards (card JSON only).

    OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 flock /tmp/csi-training.lock timeout 900 .venv/bin/python \
        scripts/music/calibrate_chords.py [--engines chord-recognition,chord-recognition-large] \
        [--chorales 12] [--real-dir DIR] [--write]

For each engine:

1. Validation chorales (the training split's validation: BWV number mod 25 in {1, 14}, never held out),
   rendered with FluidSynth at a seeded GM program and tempo, run through the engine's own ``prepare`` and
   ``infer`` (``frame_logits``: features computed by the engine from the audio, as a user's recording is);
   the sounding frames' logits and their chordify labels fit the temperature and give the reliability
   figures (ECE before/after) with engines.core.calibration.calibrate.
2. The out-of-distribution reference: the engine's own OOD score (the median energy of a recording's sounding
   frames, ``ood_score``) on every validation chorale and, with ``--real-dir``, on 30 s excerpts of the real
   songs of the training split (Frets on Fire's Sectoid tracks other than the held-out "Feelings": no labels
   needed); its 50th/95th/99th percentiles go into ``calibration["ood"]``.
3. A card metric reproduced on a small held-out sample: mir_eval WCSR of ``predict`` on the bundled held-out
   chorale recording (resources/samples/music/bwv153.1-piano.ogg against its chordify .lab), recorded as
   ``metrics["test_sample_wcsr"]``; tests/music/test_chord_calibration.py reproduces it.

Without ``--write`` the figures are printed only. The weights (and their SHA-256) do not change.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.music.audio import SR, AudioClip  # noqa: E402
from engines.music.evaluate import held_out_sample_wcsr, update_card  # noqa: E402

REAL_HELD_OUT = ("Feelings",)  # label_real_audio.py's held-out position 1 of the Sectoid package
EXCERPT_S = 30.0


def validation_chorales(n: int, seed: int) -> list[tuple[str, AudioClip, list]]:
    from engines.music.chorales import PROGRAMS, bwv_number, chorale_names, is_held_out, render_chorale

    names = [c for c in chorale_names() if not is_held_out(c) and bwv_number(c) % 25 in (1, 14)]
    rng = random.Random(seed)
    rng.shuffle(names)
    out = []
    for name in names:
        if len(out) >= n:
            break
        try:
            r = render_chorale(name, bpm=rng.uniform(60, 110), program=rng.choice(PROGRAMS))
        except Exception as exc:  # noqa: BLE001 - a chorale music21 cannot export is skipped, and said
            print(f"skip {name}: {type(exc).__name__}: {exc}", flush=True)
            continue
        out.append((Path(name).name, AudioClip(r.samples, r.sr, f"{Path(name).name}.wav"), r.segments))
    return out


def real_excerpts(folder: Path | None, per_track: int = 3) -> list[tuple[str, AudioClip]]:
    if folder is None:
        return []
    from engines.music.audio import load_audio

    out = []
    for song in sorted(folder.rglob("song.ogg")):
        if song.parent.name in REAL_HELD_OUT:
            continue
        clip = load_audio(song)
        n = int(EXCERPT_S * SR)
        starts = np.linspace(0, max(0, len(clip.samples) - n), per_track).astype(int)
        for k, s in enumerate(starts):
            out.append((f"{song.parent.name}#{k}", AudioClip(clip.samples[s:s + n], SR, f"{song.parent.name}.ogg")))
    return out


def calibrate_engine(engine, chorales, excerpts) -> dict:
    from engines.core.calibration import calibrate, ood_reference
    from engines.music.chords import frame_labels

    vocab = "large" if len(engine.card.labels) > 25 else "majmin"
    engine.card.calibration = {}  # the logits do not depend on it; the fitted T is set below
    runs, all_logits, all_labels = [], [], []
    for name, clip, segments in chorales:
        inputs, logits = engine.frame_logits({"clip": clip})
        labels = np.array(frame_labels(segments, len(logits), inputs.feats.frame_s, vocab))
        all_logits.append(logits[~inputs.silent])
        all_labels.append(labels[~inputs.silent])
        runs.append((logits, inputs.silent))
    for name, clip in excerpts:
        inputs, logits = engine.frame_logits({"clip": clip})
        runs.append((logits, inputs.silent))
    logits, labels = np.concatenate(all_logits), np.concatenate(all_labels)
    cal = calibrate(logits, labels)
    # the OOD score depends on T: its reference is the engine's own score at the fitted temperature
    engine.card.calibration = {"temperature": cal["temperature"]}
    scores = np.array([s for s in (engine.ood_score(lg, sil) for lg, sil in runs) if s is not None])
    cal["ood"] = {**ood_reference(scores), "recordings": int(len(scores)),
                  "statistic": "median energy score of a recording's sounding frames at the fitted temperature"}
    cal["validation"] = (f"{len(chorales)} validation chorales (BWV mod 25 in 1, 14; FluidSynth, seeded GM "
                         f"program and tempo) through the engine's frame_logits, {int(len(labels))} sounding "
                         f"frames; OOD reference also on {len(excerpts)} 30 s excerpts of training-split real "
                         f"songs (unlabelled)")
    return cal


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="chord-recognition,chord-recognition-large")
    ap.add_argument("--chorales", type=int, default=12)
    ap.add_argument("--real-dir", type=Path, default=None,
                    help="a folder holding the Sectoid song.ogg files (fretsonfire-songs-sectoid)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write the figures into the model cards")
    args = ap.parse_args()
    from engines.core.threads import apply_thread_policy
    from engines.core.training import command_line, seed_everything

    seed_everything(args.seed)
    apply_thread_policy()
    from engines.core.registry import EngineRegistry

    registry = EngineRegistry.discover()
    t0 = time.time()
    chorales = validation_chorales(args.chorales, args.seed)
    excerpts = real_excerpts(args.real_dir)
    print(f"{len(chorales)} validation chorales, {len(excerpts)} real excerpts ({time.time() - t0:.0f} s)",
          flush=True)
    for engine_id in args.engines.split(","):
        engine = registry.get(engine_id)
        engine.load("cpu")
        cal = calibrate_engine(engine, chorales, excerpts)
        engine.card.calibration = cal
        sample = held_out_sample_wcsr(engine)
        summary = {k: cal[k] for k in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after", "n")}
        print(engine_id, json.dumps(summary), "ood", json.dumps(cal["ood"]), "test sample", json.dumps(sample),
              flush=True)
        if args.write:
            cal["command"] = command_line()
            update_card(engine.weights_name, calibration=cal,
                        metrics={"calibration": {**summary, "validation": cal["validation"]},
                                 "test_sample_wcsr": sample})
        engine.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
