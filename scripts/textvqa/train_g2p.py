"""Train the canvas G2P on CMUdict (stress removed, 85/5/10 split by word, seed 1) and compare NSGD with
left-to-right greedy decoding on the test split.

    .venv/bin/python scripts/textvqa/train_g2p.py --minutes 20 --test-words 2000 \
        --results build/textvqa/g2p.json --ship

Training stops after ``--minutes`` (``--max-minutes``) of wall-clock time (the shared 2-core machine sets the
scale); the harness (engines/core/training.py) owns seed, threads and budget; the test figures come from the
engine's own predict (engines/textvqa/evaluation.py). The steps taken are written to the results and the card.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.textvqa import g2p_data as G  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pairs(words, d):
    gs, ps = [], []
    for w in words:
        for pron in d[w]:
            gs.append(G.encode_word(w))
            ps.append(G.encode_pron(pron))
    return np.stack(gs), np.stack(ps)


def evaluate(model, card, words, order: str) -> tuple[dict, dict]:
    """PER/WER of ``model`` through the G2P engine's own predict (engines/textvqa/evaluation.py)."""
    from engines.textvqa import evaluation as E
    from engines.textvqa.g2p_engine import G2pNsgdEngine

    engine = E.with_network(G2pNsgdEngine(), model, card, str(next(model.parameters()).device))
    entries = E.run_g2p(engine, words, order)
    model.train()
    preds = {e["word"]: e["phonemes"] for e in entries}
    d = G.load_dictionary()
    return G.score(preds, {w: d[w] for w in words}), preds


def main() -> int:
    from engines.core.training import TrainingRun, parser

    p = parser(__doc__.splitlines()[0], minutes=20.0, seed=1)
    p.add_argument("--minutes", type=float, dest="max_minutes", help="same as --max-minutes")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--test-words", type=int, default=2000, help="first N words of the (shuffled) test split")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--ship", action="store_true")
    args = p.parse_args()

    import torch

    from engines.textvqa.g2p_model import DEFAULT_ARGS, CanvasG2P, loss_fn

    run = TrainingRun.from_args("g2p-canvas-nsgd", args)  # seed, threads, budget
    d = G.load_dictionary()
    split = G.split_words()
    gtr, ptr = pairs(split["train"], d)
    gdv, pdv = pairs(split["dev"][:1000], d)
    log(f"train pairs {len(gtr)} ({len(split['train'])} words); dev {len(split['dev'])}; test {len(split['test'])}")
    model = CanvasG2P(**DEFAULT_ARGS)
    log(f"parameters {sum(p.numel() for p in model.parameters())}")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    budget = max(1e-9, run.budget_s)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    step, epoch, seen = 0, 0, 0
    history = []
    done = False
    while not done:
        order = rng.permutation(len(gtr))
        epoch += 1
        for i in range(0, len(order), args.batch):
            frac = run.elapsed_s / budget
            if not run.keep_going(step):
                done = True
                break
            for group in opt.param_groups:  # cosine decay over the time budget
                group["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0)))
            idx = order[i:i + args.batch]
            loss = loss_fn(model, torch.from_numpy(gtr[idx]), torch.from_numpy(ptr[idx]), gen)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            seen += len(idx)
            run.log_step(step, loss=loss.item())
            if step % 500 == 0:
                model.eval()
                with torch.no_grad():
                    dv = float(loss_fn(model, torch.from_numpy(gdv), torch.from_numpy(pdv),
                                       torch.Generator().manual_seed(0)))
                model.train()
                history.append({"step": step, "train_loss": loss.item(), "dev_blank_loss": dv})
                log(f"epoch {epoch} step {step} ({seen / len(gtr):.2f} epochs) loss {loss.item():.3f} dev {dv:.3f}")
    train_min = (time.time() - t0) / 60
    log(f"trained {step} steps, {seen / len(gtr):.2f} epochs in {train_min:.1f} min")
    test = split["test"][:args.test_words]
    results = {"arch": DEFAULT_ARGS, "steps": step, "epochs": seen / len(gtr), "train_minutes": train_min,
               "batch": args.batch, "lr": args.lr, "history": history,
               "split": {k: len(v) for k, v in split.items()}, "test_words": len(test)}
    from engines.core.weights import ModelCard

    eval_card = ModelCard(name="g2p-canvas-nsgd", architecture="g2p-canvas-cnn",
                          arch_args=dict(DEFAULT_ARGS, max_len=G.MAX_LEN))
    for order_name in ("nsgd", "l2r"):
        t1 = time.time()
        res, preds = evaluate(model, eval_card, test, order_name)
        res["seconds"] = time.time() - t1
        results[order_name] = res
        results[f"{order_name}_examples"] = {w: " ".join(preds[w]) for w in test[:15]}
        log(f"{order_name}: PER {res['per']:.2f}% WER {res['wer']:.2f}% on {res['words']} test words")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    if args.ship:
        from engines.core.weights import WeightsStore

        card = ModelCard(
            name="g2p-canvas-nsgd", architecture="g2p-canvas-cnn", arch_args=dict(DEFAULT_ARGS, max_len=G.MAX_LEN),
            task="grapheme-to-phoneme (ARPAbet without stress), non-sequential greedy decoding",
            labels=G.CANVAS_SYMBOLS,
            inputs={"graphemes": "lower-case a-z and apostrophe, at most 20 letters",
                    "canvas": "20 positions: 0 blank, 1 end, 2.. phonemes"},
            training_data=(f"CMU Pronouncing Dictionary from the cmudict package (cmudict.dict read directly), "
                           f"stress removed, words of a-z/' up to {G.MAX_LEN} letters and phonemes; 85/5/10 split "
                           f"by word with numpy seed {G.SPLIT_SEED}: {results['split']}; all pronunciations of a "
                           f"training word used. Random blanking (ratio ~ U(0,1) per word). {step} Adam steps of "
                           f"{args.batch} ({seen / len(gtr):.2f} epochs) in {train_min:.1f} min, lr {args.lr} "
                           f"cosine, torch.set_num_threads(1) on a shared 2-core CPU."),
            training_command=(f"python scripts/textvqa/train_g2p.py --minutes {args.max_minutes} --test-words "
                              f"{args.test_words} --results {args.results} --ship"),
            metrics={"test_words": len(test), "nsgd_per": results["nsgd"]["per"], "nsgd_wer": results["nsgd"]["wer"],
                     "l2r_per": results["l2r"]["per"], "l2r_wer": results["l2r"]["wer"],
                     "note": "WER: word wrong unless it matches any dictionary pronunciation; PER: edit distance "
                             "to the closest pronunciation / its length"},
            limits=("Scaled far down from the authors' model (256/512 channels, 5 blocks, full training) to fit a "
                    "shared CPU; American English dictionary pronunciations only; no stress; names and loan words "
                    "are often wrong. Research use only."),
        )
        out = ROOT / "resources" / "models" / "textvqa"
        out.mkdir(parents=True, exist_ok=True)
        WeightsStore.save(out, "g2p-canvas-nsgd", model.state_dict(), card)
        log("shipped g2p-canvas-nsgd")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
