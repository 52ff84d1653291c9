"""Render an offline cover-song collection: several "versions" of the opening of each Bach chorale (different
GM instrument, tempo, key, sometimes a modulation half way, sometimes a structure edit) with FluidSynth, and
store their chroma (the music workspace's log-CQT folded to 12 bins) in one .npz per version.

Versions of the same chorale are covers; different chorales are not. Train pieces: BWV not ending in 3/7;
test pieces: BWV ending in 3/7 (the same held-out split as everywhere in the music workspace).

    nohup flock /tmp/csi-data.lock .venv/bin/python scripts/music_lab/render_cover_versions.py \
        --out build/music_lab/covers --train 296 --train-versions 4 --segments 2 --test 20 --versions 3 \
        > build/music_lab/render_covers.log 2>&1 &
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.music.audio import SR, chroma_from_log_cqt, log_cqt, render_midi  # noqa: E402
from engines.music.chorales import PROGRAMS, chorale_midi, chorale_names, is_held_out, parse_chorale  # noqa: E402


def version_midi(score, rng: random.Random, v: int, bars: int, segment: int = 0):
    """One version: ``bars`` bars (the first ones, or the ``segment``-th group of ``bars`` bars), with an
    instrument/tempo/key and maybe a modulation or an edit."""
    import pretty_midi

    measures = list(score.parts[0].getElementsByClass("Measure"))
    n = min(bars, len(measures))
    excerpt = score.measures(0, n) if segment == 0 else score.measures(segment * bars + 1, (segment + 1) * bars)
    program = rng.choice(PROGRAMS)
    bpm = rng.uniform(60, 110)
    transpose = 0 if v == 0 else rng.randint(-5, 6)
    pm = chorale_midi(excerpt, bpm, program, transpose)
    first = min((nt.start for inst in pm.instruments for nt in inst.notes), default=0.0)
    for inst in pm.instruments:  # a later segment starts at 0 s too
        for nt in inst.notes:
            nt.start, nt.end = nt.start - first, nt.end - first
    kind = "plain"
    end = max((nt.end for inst in pm.instruments for nt in inst.notes), default=0.0)
    if v > 0 and rng.random() < 0.35 and end > 4:  # modulation half way: the second half up 1-3 semitones
        half, step = end / 2, rng.choice((1, 2, 3, -2))
        for inst in pm.instruments:
            for nt in inst.notes:
                if nt.start >= half:
                    nt.pitch += step
        kind = f"modulation {step:+d} at half"
    elif v > 0 and rng.random() < 0.4 and end > 8:  # structure edit: drop a quarter of the excerpt
        a = rng.uniform(0.2, 0.6) * end
        b = a + end / 4
        for inst in pm.instruments:
            kept = []
            for nt in inst.notes:
                if nt.end <= a:
                    kept.append(nt)
                elif nt.start >= b:
                    kept.append(pretty_midi.Note(nt.velocity, nt.pitch, nt.start - (b - a), nt.end - (b - a)))
            inst.notes = kept
        kind = "structure edit (a quarter removed)"
    vel = rng.randint(60, 100)
    for inst in pm.instruments:
        for nt in inst.notes:
            nt.velocity = vel
    return pm, {"program": program, "bpm": bpm, "transpose": transpose, "kind": kind}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "build/music_lab/covers")
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--train-versions", type=int, default=None,
                    help="versions of each training piece (default: --versions; the held-out pieces keep --versions)")
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--segments", type=int, default=1,
                    help="training pieces: also render bars 9-16, 17-24, ... as pieces of their own (when the "
                         "chorale is that long); held-out pieces are always the first --bars bars")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--audio", type=Path, default=None, help="also keep the audio (.ogg) of the first test pieces")
    ap.add_argument("--keep-audio", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    names = chorale_names()
    rng.shuffle(names)
    train = [n for n in names if not is_held_out(n)][: args.train]
    test = [n for n in names if is_held_out(n)][: args.test]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    kept = 0
    for split, group in (("test", test), ("train", train)):
        versions = args.versions if split == "test" else (args.train_versions or args.versions)
        segments = 1 if split == "test" else args.segments
        for k, name in enumerate(group):
            stem = Path(name).name
            pieces = [stem] + [f"{stem}-s{s}" for s in range(1, segments)]
            if all((args.out / f"{split}_{p}_v{v}.npz").exists() for p in pieces for v in range(versions)):
                continue
            try:
                score = parse_chorale(name)
                n_bars = len(list(score.parts[0].getElementsByClass("Measure")))
            except Exception as exc:  # noqa: BLE001
                print(f"skip {name}: {exc}", flush=True)
                continue
            for segment, piece in enumerate(pieces):
                if segment and n_bars < (segment + 1) * args.bars:
                    break
                for v in range(versions):
                    target = args.out / f"{split}_{piece}_v{v}.npz"
                    if target.exists():
                        continue
                    vr = random.Random(f"{args.seed}-{name}-{v}" + (f"-s{segment}" if segment else ""))
                    try:
                        pm, meta = version_midi(score, vr, v, args.bars, segment)
                        y, how = render_midi(pm, SR)
                    except Exception as exc:  # noqa: BLE001
                        print(f"skip {piece} v{v}: {type(exc).__name__}: {exc}", flush=True)
                        continue
                    if how != "FluidSynth":
                        raise SystemExit("FluidSynth and fluid-soundfont-gm are needed")
                    chroma = chroma_from_log_cqt(log_cqt(y))
                    np.savez_compressed(target, chroma=chroma.astype(np.float32), piece=piece, split=split,
                                        duration=len(y) / SR, **{k2: str(v2) for k2, v2 in meta.items()})
                    if args.audio and split == "test" and kept < args.keep_audio:
                        import soundfile as sf

                        args.audio.mkdir(parents=True, exist_ok=True)
                        sf.write(str(args.audio / f"{stem}_v{v}.ogg"), y[: SR * 15], SR, format="OGG",
                                 subtype="VORBIS")
                        if v == versions - 1:
                            kept += 1
            print(f"{split} {k + 1}/{len(group)} {name} {time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
