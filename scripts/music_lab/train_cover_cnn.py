"""Train the cover / not-cover CNN on cross-similarity matrices of the rendered chorale versions
(scripts/music_lab/render_cover_versions.py), then evaluate CNN, Qmax and Dmax on the held-out pieces with
no transposition handling, OTI, and the patch-wise correction: MAP and top-1 over all queries.

    nohup .venv/bin/python scripts/music_lab/train_cover_cnn.py > build/music_lab/train_cover.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.music_lab.covers import (TRANSPOSITIONS, cnn_input, cross_similarity, dmax,  # noqa: E402
                                      pooled_chroma, qmax)


def load(folder: Path, split: str):
    clips = []
    for f in sorted(folder.glob(f"{split}_*.npz")):
        d = np.load(f)
        clips.append((str(d["piece"]), pooled_chroma(d["chroma"]), f.stem))
    return clips


MIN_CROP = 0.6


def crop(x: np.ndarray, rng) -> np.ndarray:
    n = len(x)
    keep = max(8, int(n * rng.uniform(MIN_CROP, 1.0)))
    a = int(rng.integers(0, n - keep + 1))
    return x[a:a + keep]


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    order = np.argsort(-scores)
    rel = relevant[order]
    if rel.sum() == 0:
        return 0.0
    hits = np.cumsum(rel)
    return float((hits[rel > 0] / (np.flatnonzero(rel) + 1)).mean())


def main() -> int:
    import torch

    from engines.core.weights import ModelCard, WeightsStore
    from engines.music_lab.covers import cnn_net

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "build/music_lab/covers")
    ap.add_argument("--pairs", type=int, default=1600)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-crop", type=float, default=0.6, help="shortest random crop, as a share of a clip")
    ap.add_argument("--pos-share", type=float, default=0.5, help="share of cover pairs among the training matrices")
    ap.add_argument("--name", default="music_lab-cover-cnn")
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/music_lab")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    global MIN_CROP
    MIN_CROP = args.min_crop
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    train, test = load(args.data, "train"), load(args.data, "test")
    log(f"clips: train {len(train)} ({len({c[0] for c in train})} pieces), test {len(test)} "
        f"({len({c[0] for c in test})} pieces)")
    pool = []
    pos = [(i, j) for i in range(len(train)) for j in range(len(train)) if i != j and train[i][0] == train[j][0]]
    for k in range(args.pairs):
        if rng.random() < args.pos_share:
            i, j = pos[int(rng.integers(len(pos)))]
        else:
            while True:
                i, j = (int(v) for v in rng.integers(len(train), size=2))
                if train[i][0] != train[j][0]:
                    break
        mode = "patch" if rng.random() < 0.7 else "oti"
        cs = cross_similarity(crop(train[i][1], rng), crop(train[j][1], rng), mode)
        pool.append((cnn_input(cs), float(train[i][0] == train[j][0])))
    log(f"{len(pool)} training matrices ready")
    net_args = {"channels": 16}
    net = cnn_net(net_args)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    lossf = torch.nn.BCEWithLogitsLoss()
    for ep in range(args.epochs):
        net.train()
        order = rng.permutation(len(pool))
        tot, ok = 0.0, 0
        for step, i in enumerate(order):  # one matrix per step (sizes differ); gradients accumulated over 16
            x, y = pool[i]
            if rng.random() < 0.5:
                x = x.transpose(0, 2, 1)
            logit = net(torch.from_numpy(np.ascontiguousarray(x))[None])
            loss = lossf(logit, torch.tensor([y])) / 16
            loss.backward()
            tot += float(loss.detach()) * 16
            ok += int((float(logit.detach()[0]) > 0) == (y > 0.5))
            if (step + 1) % 16 == 0:
                opt.step()
                opt.zero_grad()
        opt.step()
        opt.zero_grad()
        log(f"epoch {ep + 1} loss {tot / len(pool):.4f} train acc {ok / len(pool):.3f}")
    net.eval()
    metrics = evaluate(net, test, log)
    metrics["training_matrices"] = len(pool)
    metrics["clips"] = {"train": len(train), "test": len(test)}
    log(json.dumps(metrics, indent=1))
    card = ModelCard(
        name="music_lab-cover-cnn", architecture="cover-csm-cnn@1", arch_args=net_args,
        task="cover song identification: cover / not cover from a chroma cross-similarity matrix (seed 6.2)",
        labels=["not cover", "cover"],
        inputs={"chroma": "the music workspace's log-CQT folded to 12 bins, 4 frames pooled (~2.7 /s), sqrt, unit "
                          "length", "matrix": "2 channels: cosine cross-similarity (standardized per matrix) and "
                          "the binary mutual-10%-nearest-neighbour matrix of 5-frame stacks, transposition corrected "
                          "patch-wise (16x16) or by OTI"},
        training_data=f"FluidSynth renderings of the first 8 bars of {len({c[0] for c in train})} Bach chorales "
                      f"(music21 corpus, BWV not ending in 3/7), 3 versions each (GM instrument, 60-110 bpm, "
                      f"transposition -5..+6, some with a modulation half way or a quarter removed); "
                      f"{len(pool)} random crops of cover and non-cover pairs.",
        training_command="python scripts/music_lab/render_cover_versions.py --out build/music_lab/covers --train 40 "
                         f"--test 20 --versions 3 && python scripts/music_lab/train_cover_cnn.py --pairs {args.pairs} "
                         f"--epochs {args.epochs} --seed {args.seed} --min-crop {args.min_crop} --pos-share {args.pos_share}",
        metrics=metrics,
        limits="Trained on synthesized chorale excerpts (about 20-40 s): real recordings, vocals, live covers and "
               "long songs are outside what it has seen; probabilities are not calibrated on real music. "
               "Research use only.")
    WeightsStore.save(args.out, args.name, net.state_dict(), card)
    log("saved")
    return 0


def evaluate(net, test, log) -> dict:
    import torch

    n = len(test)
    scores = {f"{m} / {t}": np.full((n, n), -np.inf) for m in ("cnn", "qmax", "dmax") for t in TRANSPOSITIONS}
    for i in range(n):
        for j in range(i + 1, n):
            for t in TRANSPOSITIONS:
                cs = cross_similarity(test[i][1], test[j][1], t)
                with torch.no_grad():
                    p = float(torch.sigmoid(net(torch.from_numpy(cnn_input(cs))[None]))[0])
                    p2 = float(torch.sigmoid(net(torch.from_numpy(np.ascontiguousarray(
                        cnn_input(cs).transpose(0, 2, 1)))[None]))[0])
                for name, v in (("cnn", (p + p2) / 2), ("qmax", qmax(cs.binary)[0]), ("dmax", dmax(cs.binary)[0])):
                    scores[f"{name} / {t}"][i, j] = scores[f"{name} / {t}"][j, i] = v
        if i % 10 == 0:
            log(f"evaluated query {i}/{n}")
    pieces = np.array([c[0] for c in test])
    out = {}
    for name, S in scores.items():
        aps, top1 = [], []
        for i in range(n):
            mask = np.arange(n) != i
            rel = (pieces[mask] == pieces[i]).astype(float)
            aps.append(average_precision(S[i, mask], rel))
            top1.append(float(rel[int(np.argmax(S[i, mask]))]))
        out[name] = {"MAP": round(float(np.mean(aps)), 4), "top1": round(float(np.mean(top1)), 4)}
        if name.startswith("cnn"):
            iu = np.triu_indices(n, 1)
            same = pieces[iu[0]] == pieces[iu[1]]
            pr = S[iu]
            out[name]["pair_accuracy_at_0.5_balanced"] = round(
                float(0.5 * ((pr[same] > 0.5).mean() + (pr[~same] <= 0.5).mean())), 4)
    out["queries"] = n
    out["pieces"] = int(len(set(pieces)))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
