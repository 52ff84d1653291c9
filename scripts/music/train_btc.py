"""Train BTC on rendered chorales (scripts/music/make_chorale_dataset.py) under a wall-clock budget.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/music/train_btc.py --data /tmp/music/train \
        --vocab majmin --layers 4 --minutes 22 --out resources/models/music --name btc-majmin

The file list is re-read every epoch, so training may start while the dataset is still being rendered.
Validation: 8 % of the training chorales (by BWV number), never the held-out test chorales.
Augmentation: pitch shift by -5..+6 semitones as a shift of the CQT by 2 bins per semitone (labels moved
alike). One CPU thread. Weights go out as safetensors with a model card through WeightsStore.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.audio import FRAME_S, N_BINS  # noqa: E402
from engines.music.chords import VOCABS, ChordTrack, frame_labels, shift_index  # noqa: E402
from engines.music.chorales import bwv_number  # noqa: E402

FLOOR = float(np.log(1e-6))


def load_dir(data: Path, vocab: str, cache: dict) -> dict:
    for f in sorted(data.glob("*_v*.npz")):
        if f.name.endswith(".tmp.npz") or f in cache:
            continue
        try:
            with np.load(f, allow_pickle=False) as z:
                x = z["logcqt"].astype(np.float32)
                lab = str(z["lab"])
                name = str(z["name"])
        except Exception as exc:  # noqa: BLE001 - a file still being written
            print("skip", f.name, exc)
            continue
        segs = ChordTrack.from_lab_text(lab).segments
        y = np.array(frame_labels(segs, len(x), FRAME_S, vocab), dtype=np.int64)
        cache[f] = (name, x, y)
    return cache


def is_val(name: str) -> bool:
    return bwv_number(name) % 25 in (1, 14)


def shift_batch(x: np.ndarray, y: np.ndarray, s: int, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if s == 0:
        return x, y
    out = np.full_like(x, FLOOR)
    k = 2 * s
    if k > 0:
        out[:, k:] = x[:, :-k]
    else:
        out[:, :k] = x[:, -k:]
    return out, table[s + 5][y]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--vocab", choices=tuple(VOCABS), default="majmin")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=22.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    from engines.core.weights import ModelCard, WeightsStore
    from engines.music.btc_model import DEFAULT_ARGS, build

    labels = VOCABS[args.vocab]
    n_classes = len(labels)
    table = np.array([[shift_index(i, s, args.vocab) for i in range(n_classes)] for s in range(-5, 7)])
    arch = {**DEFAULT_ARGS, "layers": args.layers, "hidden": args.hidden, "heads": args.heads,
            "n_classes": n_classes, "filter": args.hidden}
    model = build(arch)
    L = arch["seq_len"]
    cache: dict = {}
    load_dir(args.data, args.vocab, cache)
    train = [v for v in cache.values() if not is_val(v[0])]
    allx = np.concatenate([v[1] for v in train])
    model.feat_mean.copy_(torch.from_numpy(allx.mean(0)))
    model.feat_std.copy_(torch.from_numpy(allx.std(0) + 1e-3))
    del allx
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60
    t0 = time.time()
    step, best, best_state, history = 0, -1.0, None, []
    last_eval = t0

    def evaluate() -> float:
        val = [v for v in cache.values() if is_val(v[0])]
        from engines.music.btc_model import predict_frames

        correct = total = 0
        for _, x, y in val:
            p = predict_frames(model, x).argmax(1)
            correct += int((p == y).sum())
            total += len(y)
        model.train()
        return correct / max(total, 1)

    model.train()
    while True:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        if step % 200 == 0:
            load_dir(args.data, args.vocab, cache)
            train = [v for v in cache.values() if not is_val(v[0])]
        lr = args.lr * min(1.0, (step + 1) / 200) * (0.5 * (1 + np.cos(np.pi * min(1.0, elapsed / budget))))
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ys = [], []
        for _ in range(args.batch):
            _, x, y = rng.choice(train)
            s0 = rng.randint(0, max(0, len(x) - L))
            xb, yb = x[s0:s0 + L], y[s0:s0 + L]
            if len(xb) < L:
                pad = L - len(xb)
                xb = np.concatenate([xb, np.full((pad, N_BINS), FLOOR, np.float32)])
                yb = np.concatenate([yb, np.full(pad, n_classes - 1)])
            xb, yb = shift_batch(xb, yb, rng.randint(-5, 6), table)
            xs.append(xb)
            ys.append(yb)
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys))
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, n_classes), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} files {len(train)} {elapsed:.0f}s", flush=True)
        if time.time() - last_eval > 150 or time.time() - t0 > budget:
            acc = evaluate()
            last_eval = time.time()
            history.append({"step": step, "seconds": round(time.time() - t0), "val_frame_acc": round(acc, 4)})
            print(f"val frame accuracy {acc:.4f} at step {step}", flush=True)
            if acc > best:
                best = acc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    acc = evaluate()
    history.append({"step": step, "seconds": round(time.time() - t0), "val_frame_acc": round(acc, 4)})
    if acc > best:
        best, best_state = acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
    n_train = len({v[0] for v in cache.values() if not is_val(v[0])})
    n_renders = len([v for v in cache.values() if not is_val(v[0])])
    card = ModelCard(
        name=args.name, architecture="btc",
        arch_args=arch,
        task="chord recognition (frame-wise chord classes from log-CQT)",
        labels=list(labels),
        inputs={"sample_rate": 22050, "channels": "mono", "feature": "log(|CQT| + 1e-6)", "n_bins": 144,
                "bins_per_octave": 24, "fmin": "C1 (32.70 Hz)", "hop_length": 2048, "frames_per_second": 10.77,
                "sequence_frames": arch["seq_len"], "normalization": "per-bin mean/std stored in the weights"},
        training_data=(f"{n_train} Bach chorales from music21's corpus ({n_renders} renderings), rendered with "
                       f"FluidSynth + FluidR3_GM at random GM programs (piano, harpsichord, organ, guitar, "
                       f"strings, choir, clarinet, flute, brass, e-piano), tempos 60-110 bpm and transpositions "
                       f"-5..+6; labels from music21 chordify (repeats expanded, slices under an eighth and "
                       f"unnamed slices keep the previous chord). Held out: every chorale whose BWV number ends "
                       f"in 3 or 7 (never seen); validation: BWV number mod 25 in {{1, 14}}. Augmentation: CQT "
                       f"shift of -5..+6 semitones."),
        training_command=("OMP_NUM_THREADS=1 .venv/bin/python scripts/music/train_btc.py --data /tmp/music/train "
                          f"--vocab {args.vocab} --layers {args.layers} --hidden {args.hidden} --heads {args.heads} "
                          f"--batch {args.batch} --lr {args.lr} --minutes {args.minutes} --seed {args.seed} "
                          f"--out {args.out} --name {args.name}  (data: scripts/music/make_chorale_dataset.py "
                          f"--split train --versions 1, shards 0/2 and 1/2)"),
        metrics={"validation_frame_accuracy": round(best, 4), "steps": step, "history": history,
                 "train_seconds": round(time.time() - t0)},
        limits=(f"Scaled down from the paper to fit a {args.minutes:.0f}-minute single-thread CPU budget: "
                f"{args.layers} layers instead of 8, AdamW lr {args.lr} with cosine decay instead of Adam 1e-4, "
                f"{step} steps of batch {args.batch}. Trained only on synthesized four-part chorales: expect "
                f"lower accuracy on real recordings, drums, vocals and non-classical harmony. Inversions "
                f"(slash basses) are not predicted."),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    WeightsStore.save(args.out, args.name, best_state, card)
    print(f"saved {args.out / args.name}.safetensors: best val frame accuracy {best:.4f}, {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
