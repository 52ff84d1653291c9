"""Extract bar-level melody/chord pairs from music21's four-part Bach chorales into one compact .npz.

music21 parsing is slow (minutes for the corpus), so this runs once, in the background, and the harmonizer
and melody-generator training scripts read the cache:

    nohup .venv/bin/python scripts/music_lab/extract_chorale_bars.py --out build/music_lab/chorale_bars.npz \
        > build/music_lab/extract.log 2>&1 &

Per bar (the soprano part's measures, repeats as written, pickups kept):
  melody_pc   12-d duration-weighted pitch-class vector of the soprano, key-normalized (C major / A minor)
  chord       the bar's chord: the longest chordify() slice, mapped to 24 major/minor classes (root*2+minor);
              dim -> min and aug/7 -> maj as in the majmin vocabulary; 24 = no chord (rest / unnameable)
  beat_chord  the chord of each quarter beat (4 slots; -1 beyond the bar), same classes
  grid        the soprano on a 16th-note grid (16 slots per bar, MIDI pitch key-normalized, -1 rest,
              -2 beyond the bar), onset marks which slots start a note
Chorales are keyed by BWV number; the held-out split is engines.music.chorales.is_held_out (BWV ending in 3/7),
the same split the music workspace's chord recognizer is tested on. Chorales that raise are skipped.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

STEPS = 16  # 16th notes in a 4/4 bar


def key_shift(score) -> tuple[int, int]:
    """(semitones to add so the key becomes C major / A minor, mode 0 major 1 minor)."""
    k = score.analyze("key")
    tonic = k.tonic.pitchClass
    if k.mode == "minor":
        return (9 - tonic) % 12 if (9 - tonic) % 12 <= 6 else (9 - tonic) % 12 - 12, 1
    s = (-tonic) % 12
    return (s if s <= 6 else s - 12), 0


def chord_class(ch, shift: int = 0) -> int:
    """A chordify slice -> 0..23 (root*2 + minor) or 24 when music21 cannot name it."""
    from engines.music.chorales import _slice_chord
    from engines.music.chords import to_majmin, parse_label

    try:
        c = _slice_chord(ch)
    except Exception:  # noqa: BLE001 - music21 raises on odd slices (no root)
        return 24
    if c is None:
        return 24
    mm = parse_label(to_majmin(c.transpose(shift)))
    return mm.root * 2 + (1 if mm.quality == "min" else 0)


def extract(name: str) -> dict[str, np.ndarray] | None:
    from music21 import corpus, stream

    score = corpus.parse(name)
    if len(score.parts) != 4:
        return None
    shift, mode = key_shift(score)
    sop = score.parts[0]
    measures = list(sop.getElementsByClass(stream.Measure))
    if not measures:
        return None
    notes = [(float(n.getOffsetInHierarchy(sop)), float(n.quarterLength), int(n.pitch.midi) + shift)
             for n in sop.stripTies().flatten().notes if not n.isChord and n.quarterLength > 0]
    chords = []
    for ch in score.chordify().flatten().getElementsByClass("Chord"):
        ql = float(ch.quarterLength)
        if ql > 0:
            chords.append((float(ch.offset), ql, chord_class(ch, shift)))
    rows = []
    for m in measures:
        start = float(m.getOffsetInHierarchy(sop))
        length = float(m.duration.quarterLength)
        if length <= 0:
            continue
        end = start + length
        pc = np.zeros(12, np.float32)
        grid = np.full(STEPS, -2, np.int16)
        n_steps = min(STEPS, int(round(length * 4)))
        grid[:n_steps] = -1
        onset = np.zeros(STEPS, bool)
        for (o, d, p) in notes:
            a, b = max(o, start), min(o + d, end)
            if b <= a:
                continue
            pc[p % 12] += b - a
            s0, s1 = int(round((a - start) * 4)), int(round((b - start) * 4))
            for s in range(max(0, s0), min(n_steps, s1)):
                grid[s] = p
            if o >= start - 1e-6 and 0 <= s0 < n_steps:
                onset[s0] = True
        dur = np.zeros(25, np.float32)
        beat = np.full(4, -1, np.int16)
        beat_best = np.zeros((4, 25), np.float32)
        for (o, d, c) in chords:
            a, b = max(o, start), min(o + d, end)
            if b <= a:
                continue
            dur[c] += b - a
            for q in range(4):
                qa, qb = max(a, start + q), min(b, start + q + 1)
                if qb > qa and start + q < end:
                    beat_best[q, c] += qb - qa
        named = dur[:24]
        label = int(np.argmax(named)) if named.sum() > 0 else 24
        for q in range(4):
            if start + q < end - 1e-6:
                row = beat_best[q, :24]
                beat[q] = int(np.argmax(row)) if row.sum() > 0 else label
        rows.append((pc, label, beat, grid, onset, length))
    if not rows:
        return None
    return {
        "melody_pc": np.stack([r[0] for r in rows]),
        "chord": np.array([r[1] for r in rows], np.int16),
        "beat_chord": np.stack([r[2] for r in rows]),
        "grid": np.stack([r[3] for r in rows]),
        "onset": np.stack([r[4] for r in rows]),
        "bar_len": np.array([r[5] for r in rows], np.float32),
        "shift": shift, "mode": mode,
    }


def main() -> int:
    from engines.music.chorales import bwv_number, chorale_names

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    names = chorale_names()
    if args.limit:
        names = names[: args.limit]
    cols: dict[str, list] = {k: [] for k in ("melody_pc", "chord", "beat_chord", "grid", "onset", "bar_len")}
    piece, bwv, names_out, shifts, modes = [], [], [], [], []
    t0 = time.time()
    for k, name in enumerate(names):
        try:
            d = extract(name)
        except Exception as exc:  # noqa: BLE001 - some chorales raise in music21: skip them, say which
            print(f"skip {name}: {type(exc).__name__}: {str(exc)[:100]}", flush=True)
            continue
        if d is None:
            continue
        pid = len(names_out)
        names_out.append(str(Path(name).with_suffix("").name) if "/" in name else name)
        shifts.append(d["shift"])
        modes.append(d["mode"])
        for key in cols:
            cols[key].append(d[key])
        n = len(d["chord"])
        piece.extend([pid] * n)
        bwv.extend([bwv_number(name)] * n)
        if k % 20 == 0:
            print(f"{k + 1}/{len(names)} {name} bars={len(piece)} {time.time() - t0:.0f}s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp.npz")
    np.savez_compressed(tmp, **{k: np.concatenate(v) for k, v in cols.items()}, piece=np.array(piece, np.int32),
                        bwv=np.array(bwv, np.int32), names=np.array(names_out), shift=np.array(shifts, np.int8),
                        mode=np.array(modes, np.int8))
    tmp.replace(args.out)
    print(f"done: {len(names_out)} chorales, {len(piece)} bars in {time.time() - t0:.0f}s -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
