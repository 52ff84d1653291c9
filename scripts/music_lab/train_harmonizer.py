"""Train the melody harmonizer (BLSTM over bars, seed 6.1) and its baselines (HMM, per-bar DNN) on the chorale
bar cache, evaluate all of them on the held-out chorales (BWV ending in 3/7), and save one safetensors file
with a model card to resources/models/music_lab/.

    .venv/bin/python scripts/music_lab/extract_chorale_bars.py --out build/music_lab/chorale_bars.npz
    nohup .venv/bin/python scripts/music_lab/train_harmonizer.py > build/music_lab/train_harmonizer.log 2>&1 &

One CPU thread by default; about 2-4 minutes on our shared 2-core machine (--max-minutes bounds it; the
harness, engines.core.training.TrainingRun, seeds and logs; the run is too short to need checkpoints).
Every figure it reports - the validation accuracy that picks the best epoch and the held-out table on the
card - comes from the engine's own predict, on the network being trained attached to the engine.
Calibration: scripts/music_lab/eval_music_lab.py harmonizer --calibrate.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.music_lab.dataset import DEFAULT_CACHE, load_chorales, save_subset, split  # noqa: E402
from engines.music_lab.decode import ChordHMM  # noqa: E402
from engines.music_lab.harmonizer import evaluate_models  # noqa: E402
from engines.music_lab.melody import normalize_pc  # noqa: E402

log = logging.getLogger("csi.training").info


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


def train_seq(whole, method, train, val, epochs, lr, seed, engine, card, run):
    """Train ``whole.<method>`` (the BLSTM or the DNN); the best epoch by validation accuracy through the engine."""
    import torch

    model = getattr(whole, method)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    lossf = torch.nn.CrossEntropyLoss(ignore_index=-100)
    best, best_state, best_ep = -1.0, None, 0
    step = 0
    for ep in range(epochs):
        model.train()
        tot = 0.0
        for x, y in batches(train, 8, rng):
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            logits = model(x)
            loss = lossf(logits.reshape(-1, 24), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tot += float(loss)
            step += 1
            run.log_step(step, loss=float(loss))
        acc = engine_accuracy(engine.attach_network(whole, card, "cpu"), val, method)
        if acc > best:
            best, best_ep = acc, ep
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(f"  epoch {ep + 1} loss {tot:.2f} val acc {acc:.3f}")
        if not run.keep_going(step):
            log("  time budget reached")
            break
    model.load_state_dict(best_state)
    return best, best_ep + 1, step


def engine_accuracy(engine, chorales, method: str) -> float:
    """Exact chord per labelled bar, argmax of ``method`` through ``engine.predict`` on the key-normalized bars."""
    ok = n = 0
    for c in chorales:
        p = np.asarray(engine.predict({"bar_pitch_classes": c.pc, "shift": 0, "method": method,
                                       "trans_weight": 0.0}).chords)
        m = c.chord < 24
        ok += int((p[m] == c.chord[m]).sum())
        n += int(m.sum())
    return ok / max(n, 1)


def main() -> int:
    import torch

    from engines.core.training import TrainingRun, command_line, parser
    from engines.core.weights import ModelCard, WeightsStore
    from engines.music_lab.harmonizer import ARCH, WEIGHTS, MelodyHarmonizerEngine
    from engines.music_lab.nets import BarHarmonizers

    ap = parser(__doc__.splitlines()[0], minutes=20.0, seed=0)
    ap.set_defaults(threads=1, device="cpu")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/music_lab")
    ap.add_argument("--fixture", type=Path, default=ROOT / "tests/music_lab/data/heldout_bars.npz")
    args = ap.parse_args()
    run = TrainingRun.from_args(WEIGHTS, args)
    os.environ["CSI_TORCH_THREADS"] = str(run.threads)  # the engine's evaluations keep the run's thread count

    parts = split(load_chorales(args.cache))
    n_bars = {k: int(sum((c.chord < 24).sum() for c in v)) for k, v in parts.items()}
    log(f"chorales: { {k: len(v) for k, v in parts.items()} } labelled bars: {n_bars}")

    hmm = ChordHMM.fit([(c.pc, c.chord) for c in parts["train"] + parts["val"]])
    blstm_args = {"n_in": 12, "hidden": 128, "layers": 2, "n_out": 24, "dropout": 0.2}
    dnn_args = {"n_in": 12, "hidden": 256, "n_out": 24, "dropout": 0.3}
    whole = BarHarmonizers(blstm_args, dnn_args)  # the BLSTM, the DNN and the HMM tables, as the engine loads them
    with torch.no_grad():
        for key, table in hmm.tensors().items():
            getattr(whole.hmm, key.split(".", 1)[1]).copy_(torch.from_numpy(table.astype(np.float32)))
    card = ModelCard(
        name=WEIGHTS, architecture=ARCH,
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
                         f"&& {command_line()}",
        metrics={},
        limits="Trained on 18th-century chorale harmony only (major/minor triads per bar; sevenths and diminished "
               "chords are folded into maj/min); other styles get chorale-like chords. Half-bar mode applies the "
               "bar model to half bars. Research use only.",
    )
    engine = MelodyHarmonizerEngine()
    log("training the BLSTM")
    b_val, b_ep, b_steps = train_seq(whole, "blstm", parts["train"], parts["val"], args.epochs, 2e-3, args.seed, engine,
                            card, run)
    log("training the DNN")
    d_val, d_ep, d_steps = train_seq(whole, "dnn", parts["train"], parts["val"], args.epochs, 2e-3, args.seed, engine,
                            card, run)

    metrics = evaluate_models(engine.attach_network(whole, card, "cpu"), parts["test"])
    metrics["val_accuracy"] = {"blstm": round(b_val, 4), "dnn": round(d_val, 4)}
    metrics["best_epoch"] = {"blstm": b_ep, "dnn": d_ep}
    metrics["bars"] = n_bars
    metrics["chorales"] = {k: len(v) for k, v in parts.items()}
    log(json.dumps(metrics, indent=1))
    card.metrics = metrics
    WeightsStore.save(args.out, WEIGHTS, whole.state_dict(), card)
    save_subset(parts["test"][:40], args.fixture)
    log(f"saved to {args.out}; fixture {args.fixture}")
    run.done(b_steps + d_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
