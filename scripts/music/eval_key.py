"""Key estimators on held-out arranged songs (and held-out chorales): the learned key model beside
Krumhansl-Schmuckler, through engines.music.keys.estimate_key_audio - what the chord engines call.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/music/eval_key.py --arranged /out/arranged/test \
        --chorales /out/chorales/test [--model key-profile] [--model /tmp/x/key-profile.safetensors] \
        [--json /out/eval/keys.json] [--update-card]

- Arranged songs (scripts/music/render_arranged.py --split test --keep-audio: seeds never trained on, the
  held-out soundfonts TimGM6mb and MuseScore General, effects on): the audio (NAME.flac) is decoded and its
  features computed as the workstation does (engines.music.audio.load_audio, compute_features); without the
  audio, the stored log-CQT. Reference: the arranger's exact global key.
- Chorales (scripts/music/make_chorale_dataset.py --split test): the reference key comes from the score
  (music21's corpus, transposed as rendered): the key signature's major key, or its relative minor, whichever
  is the root of the final chord; chorales whose final chord is neither (modal endings) are left out.
Scores: exact (tonic and mode) and mir_eval's weighted key score (fifth 0.5, relative 0.3, parallel 0.2),
mean and 95 % bootstrap interval over pieces (2,000 resamples), plus the paired difference to
Krumhansl-Schmuckler.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.keys import KEY_MODEL, estimate_key_audio  # noqa: E402
from scripts.music.eval_real import bootstrap  # noqa: E402
from scripts.music.train_key import PITCH  # noqa: E402

KS = "krumhansl-schmuckler"


def same_key(est: str, ref: str) -> bool:
    (a, am), (b, bm) = est.split(), ref.split()
    return PITCH[a] == PITCH[b] and am == bm


def arranged_pieces(folder: Path, use_audio: bool) -> list[tuple[str, np.ndarray, str]]:
    from engines.music.audio import compute_features, load_audio

    out = []
    for f in sorted(folder.glob("*_v0.npz")):
        with np.load(f, allow_pickle=False) as z:
            name, key, logcqt = str(z["name"]), str(z["key"]), z["logcqt"].astype(np.float32)
        audio = f.with_name(f"{name}.flac")
        if use_audio and audio.exists():
            logcqt = compute_features(load_audio(audio), use_cache=False).logcqt
        out.append((name, logcqt, key))
    return out


def chorale_key(name: str, transpose: int) -> str | None:
    """The key of a corpus chorale from its score: the signature's major key or its relative minor, by the
    root of the last chord; None for a modal ending."""
    from music21 import corpus

    score = corpus.parse(name)
    sigs = list(score.recurse().getElementsByClass("KeySignature"))
    if not sigs:
        return None
    major = (sigs[0].sharps * 7) % 12
    last = score.chordify().recurse().getElementsByClass("Chord")[-1]
    root = last.root().pitchClass
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    if root == major:
        return f"{names[(major + transpose) % 12]} major"
    if root == (major + 9) % 12:
        return f"{names[(major + 9 + transpose) % 12]} minor"
    return None


def chorale_pieces(folder: Path) -> tuple[list[tuple[str, np.ndarray, str]], int]:
    out, skipped = [], 0
    for f in sorted(folder.glob("*_v*.npz")):
        with np.load(f, allow_pickle=False) as z:
            name, tr, logcqt = str(z["name"]), int(z["transpose"]), z["logcqt"].astype(np.float32)
        key = chorale_key(name, tr)
        if key is None:
            skipped += 1
            continue
        out.append((name, logcqt, key))
    return out, skipped


def score(pieces, models: list[str]) -> dict:
    import mir_eval

    rows = {m: [] for m in [KS, *models]}
    for name, logcqt, ref in pieces:
        for m in rows:
            est = estimate_key_audio(logcqt, model=None if m == KS else m)
            guess = est.name if est is not None else ""
            exact = float(bool(guess) and same_key(guess, ref))
            weighted = float(mir_eval.key.weighted_score(ref, guess)) if guess else 0.0
            rows[m].append((exact, weighted, name, guess, ref))
    table = {}
    ones = np.ones(len(pieces))
    ks_exact = np.array([r[0] for r in rows[KS]])
    ks_weighted = np.array([r[1] for r in rows[KS]])
    for m, r in rows.items():
        exact, weighted = np.array([x[0] for x in r]), np.array([x[1] for x in r])
        table[m] = {"exact": bootstrap(exact, ones), "mirex_weighted": bootstrap(weighted, ones)}
        if m != KS:
            table[m]["exact_minus_ks"] = bootstrap(exact - ks_exact, ones)
            table[m]["weighted_minus_ks"] = bootstrap(weighted - ks_weighted, ones)
        table[m]["wrong"] = [f"{x[2]}: {x[3] or 'none'} (is {x[4]})" for x in r if not x[0]]
    return {"pieces": len(pieces), "table": table}


def fmt(t) -> str:
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arranged", type=Path)
    ap.add_argument("--chorales", type=Path)
    ap.add_argument("--model", action="append", help="a weights-store name or a .safetensors path "
                                                     f"(default {KEY_MODEL})")
    ap.add_argument("--stored-features", action="store_true", help="arranged: the stored log-CQT, not the audio")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--update-card", action="store_true", help=f"write the figures into {KEY_MODEL}'s card")
    args = ap.parse_args()
    models = args.model or [KEY_MODEL]
    results: dict = {}
    t0 = time.time()
    if args.arranged:
        results["arranged"] = score(arranged_pieces(args.arranged, not args.stored_features), models)
    if args.chorales:
        pieces, skipped = chorale_pieces(args.chorales)
        results["chorales"] = score(pieces, models)
        results["chorales"]["left_out_modal"] = skipped
    for split, res in results.items():
        print(f"{split} ({res['pieces']} pieces)")
        for m, t in res["table"].items():
            extra = (f"  exact-KS {fmt(t['exact_minus_ks'])}  weighted-KS {fmt(t['weighted_minus_ks'])}"
                     if "exact_minus_ks" in t else "")
            print(f"  {m:28s} exact {fmt(t['exact'])}  weighted {fmt(t['mirex_weighted'])}{extra}")
            print(f"    wrong: {'; '.join(t['wrong'])}")
    print(f"{time.time() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    if args.update_card:
        from engines.core.card_json import update_card

        cmd = "OMP_NUM_THREADS=1 .venv/bin/python scripts/music/eval_key.py " + " ".join(
            a for a in sys.argv[1:] if a != "--update-card")
        held = {"mean [95% bootstrap interval over pieces]": True, "command": cmd}
        for split, res in results.items():
            held[split] = {"pieces": res["pieces"], **{
                m: {k: [round(v, 4) for v in t[k]] for k in t if k != "wrong"} for m, t in res["table"].items()}}
        print("card:", update_card(KEY_MODEL, metrics={"held_out_eval": held}))


if __name__ == "__main__":
    main()
