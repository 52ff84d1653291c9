"""Train the melody harmonizer (BLSTM over bars, seed 6.1) and its baselines (HMM, per-bar DNN) on the chorale
bar cache, evaluate all of them on the held-out chorales (BWV ending in 3/7), and save one safetensors file
with a model card to resources/models/music_lab/.

    .venv/bin/python scripts/music_lab/extract_chorale_bars.py --out build/music_lab/chorale_bars.npz
    nohup .venv/bin/python scripts/music_lab/train_harmonizer.py > build/music_lab/train_harmonizer.log 2>&1 &

One CPU thread; about 2-4 minutes on our shared 2-core machine.
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

from engines.music_lab.dataset import DEFAULT_CACHE, load_chorales, save_subset, split  # noqa: E402
from engines.music_lab.decode import ChordHMM  # noqa: E402
from engines.music_lab.harmonizer import evaluate_models  # noqa: E402
from engines.music_lab.melody import normalize_pc  # noqa: E402


def batches(chorales, bs, rng):
    order = rng.permutation(len(chorales))
    for i in range(0, len(order), bs):
        group = [chorales[j] for j in order[i:i + bs]]
        T = max(len(c.chord) for c in group)
        x = np.zeros((len(group), T, 12), np.float32)
        y = np.full((len(group), T), -100, np.int64)
        for k, c in enumerate(group):
            x[k, :len(c.chord)] = normalize_pc(c.pc)
            lab = c.chord.copy()
            y[k, :len(c.chord)] = np.where(lab < 24, lab, -100)
        yield x, y


def train_seq(model, train, val, epochs, lr, seed, per_bar: bool, log):
    import torch

    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    lossf = torch.nn.CrossEntropyLoss(ignore_index=-100)
    best, best_state, best_ep = -1.0, None, 0
    for ep in range(epochs):
        model.train()
        tot = 0.0
        for x, y in batches(train, 8, rng):
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            if per_bar:
                x = x + 0.0
            logits = model(x)
            loss = lossf(logits.reshape(-1, 24), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tot += float(loss)
        model.eval()
        acc = seq_accuracy(model, val)
        if acc > best:
            best, best_ep = acc, ep
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(f"  epoch {ep + 1} loss {tot:.2f} val acc {acc:.3f}")
    model.load_state_dict(best_state)
    return best, best_ep + 1


def seq_accuracy(model, chorales):
    import torch

    ok = n = 0
    with torch.no_grad():
        for c in chorales:
            p = model(torch.from_numpy(normalize_pc(c.pc))[None])[0].argmax(-1).numpy()
            m = c.chord < 24
            ok += int((p[m] == c.chord[m]).sum())
            n += int(m.sum())
    return ok / max(n, 1)


def main() -> int:
    import torch

    from engines.core.weights import ModelCard, WeightsStore
    from engines.music_lab.nets import BarBLSTM, BarDNN

    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/music_lab")
    ap.add_argument("--fixture", type=Path, default=ROOT / "tests/music_lab/data/heldout_bars.npz")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    parts = split(load_chorales(args.cache))
    n_bars = {k: int(sum((c.chord < 24).sum() for c in v)) for k, v in parts.items()}
    log(f"chorales: { {k: len(v) for k, v in parts.items()} } labelled bars: {n_bars}")

    hmm = ChordHMM.fit([(c.pc, c.chord) for c in parts["train"] + parts["val"]])
    blstm_args = {"n_in": 12, "hidden": 128, "layers": 2, "n_out": 24, "dropout": 0.2}
    dnn_args = {"n_in": 12, "hidden": 256, "n_out": 24, "dropout": 0.3}
    blstm, dnn = BarBLSTM(**blstm_args), BarDNN(**dnn_args)
    log("training the BLSTM")
    b_val, b_ep = train_seq(blstm, parts["train"], parts["val"], args.epochs, 2e-3, args.seed, False, log)
    log("training the DNN")
    d_val, d_ep = train_seq(dnn, parts["train"], parts["val"], args.epochs, 2e-3, args.seed, True, log)

    tensors = {f"blstm.{k}": v for k, v in blstm.state_dict().items()}
    tensors.update({f"dnn.{k}": v for k, v in dnn.state_dict().items()})
    tensors.update({k: torch.from_numpy(v.astype(np.float32)) for k, v in hmm.tensors().items()})
    metrics = evaluate_models(tensors, blstm_args, dnn_args, parts["test"])
    metrics["val_accuracy"] = {"blstm": round(b_val, 4), "dnn": round(d_val, 4)}
    metrics["best_epoch"] = {"blstm": b_ep, "dnn": d_ep}
    metrics["bars"] = n_bars
    metrics["chorales"] = {k: len(v) for k, v in parts.items()}
    log(json.dumps(metrics, indent=1))
    card = ModelCard(
        name="music_lab-harmonizer", architecture="bar-blstm-harmonizer@1",
        arch_args={"blstm": blstm_args, "dnn": dnn_args, "hmm": "24-state, add-1 smoothed transitions, "
                   "multinomial pitch-class emission"},
        task="melody harmonization: one major/minor chord per bar (seed 6.1, Lim et al. 2017)",
        labels=[f"{['C','C#','D','Eb','E','F','F#','G','Ab','A','Bb','B'][i // 2]}:{'min' if i % 2 else 'maj'}"
                for i in range(24)],
        inputs={"per_bar": "12-d duration-weighted pitch-class vector of the melody, scaled to sum 1",
                "key": "melody transposed to C major / A minor (Krumhansl-Schmuckler on the melody) before the "
                       "model; chords transposed back"},
        training_data=f"music21 corpus: four-part Bach chorales, soprano vs chordify() per bar (longest slice, "
                      f"majmin), keys normalized. Train {len(parts['train'])} chorales, validation (BWV ending 9) "
                      f"{len(parts['val'])}, held-out test (BWV ending 3/7) {len(parts['test'])}.",
        training_command="python scripts/music_lab/extract_chorale_bars.py --out build/music_lab/chorale_bars.npz "
                         f"&& python scripts/music_lab/train_harmonizer.py --epochs {args.epochs} --seed {args.seed}",
        metrics=metrics,
        limits="Trained on 18th-century chorale harmony only (major/minor triads per bar; sevenths and diminished "
               "chords are folded into maj/min); other styles get chorale-like chords. Half-bar mode applies the "
               "bar model to half bars. Research use only.",
    )
    WeightsStore.save(args.out, "music_lab-harmonizer", tensors, card)
    save_subset(parts["test"][:40], args.fixture)
    log(f"saved to {args.out}; fixture {args.fixture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
