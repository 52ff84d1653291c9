"""Train the chord-conditioned melody CVAE (seed 3.3 [13]) on chorale sopranos over their bar chords, evaluate
it on held-out progressions (4-bar windows of the chorales with BWV ending in 3/7) against the real melodies and
a random walk over chord tones, and save safetensors + model card to resources/models/music_lab/.

    nohup .venv/bin/python scripts/music_lab/train_melody_cvae.py > build/music_lab/train_cvae.log 2>&1 &

One CPU thread by default; --max-minutes (or --minutes) bounds the training time (default 8); the harness
(engines.core.training.TrainingRun) seeds, logs steps/s and keeps a resumable checkpoint under
.training/music_lab-melody-cvae/. The card's melody statistics come from the engine's own predict
(engines.music_lab.generator.evaluate_generator on the network in memory, attached to the engine).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.music_lab.dataset import DEFAULT_CACHE, load_chorales, split  # noqa: E402
from engines.music_lab.generator import (ARCH, N_TOKENS, PITCH_HI, PITCH_LO, START, WEIGHTS,  # noqa: E402
                                         evaluate_generator, heldout_windows)

log = logging.getLogger("csi.training").info
windows = heldout_windows  # the same 4-bar windows for training and evaluation


def shift_window(tok, ch, prev, s):
    tok = tok.copy()
    m = tok >= 2
    p = tok[m] - 2 + PITCH_LO + s
    if p.min(initial=PITCH_LO) < PITCH_LO or p.max(initial=PITCH_HI) > PITCH_HI:
        s, p = 0, tok[m] - 2 + PITCH_LO
    tok[m] = p - PITCH_LO + 2
    ch = ((ch // 2 + s) % 12) * 2 + ch % 2
    if prev >= 2 and prev < START:
        prev = int(np.clip(prev + s, 2, N_TOKENS - 1))
    return tok, ch, prev


def main() -> int:
    import torch

    from engines.core.training import TrainingRun, command_line, parser
    from engines.core.weights import ModelCard, WeightsStore
    from engines.music_lab.generator import MelodyGeneratorEngine
    from engines.music_lab.nets import MelodyCVAE

    ap = parser(__doc__.splitlines()[0], minutes=8.0, seed=0)
    ap.set_defaults(threads=1, device="cpu")
    ap.add_argument("--minutes", dest="max_minutes", type=float, default=argparse.SUPPRESS,
                    help="same as --max-minutes")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/music_lab")
    args = ap.parse_args()
    run = TrainingRun.from_args(WEIGHTS, args)
    os.environ["CSI_TORCH_THREADS"] = str(run.threads)  # the engine's evaluations keep the run's thread count
    dev = run.device

    parts = split(load_chorales(args.cache))
    train = windows(parts["train"] + parts["val"])
    test = windows(parts["test"])
    log(f"windows: train {len(train)}, held-out {len(test)}")
    net_args = {"n_tokens": N_TOKENS, "n_chords": 24, "hidden": 128, "latent": 16, "emb": 32}
    net = MelodyCVAE(**net_args).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    bs = 64
    step = run.resume(net, opt)
    first_epoch = int(run.resumed_extra.get("epoch", 0))
    rng = np.random.default_rng(args.seed + step)  # a resumed run does not replay the first batches
    free_bits = 0.1
    ep = first_epoch - 1
    for ep in range(first_epoch, args.epochs):
        net.train()
        order = rng.permutation(len(train))
        tot = [0.0, 0.0]
        for i in range(0, len(order), bs):
            batch = [shift_window(*train[j], int(rng.integers(-5, 7))) for j in order[i:i + bs]]
            tok = torch.from_numpy(np.stack([b[0] for b in batch])).long().to(dev)
            ch = torch.from_numpy(np.stack([b[1] for b in batch])).long().to(dev)
            prev0 = torch.tensor([b[2] for b in batch]).long().to(dev)
            prev = torch.cat([prev0[:, None], tok[:, :-1]], 1)
            mu_q, lv_q = net.posterior(tok, ch)
            mu_p, lv_p = net.prior(ch)
            z = mu_q + torch.exp(0.5 * lv_q) * torch.randn_like(mu_q)
            logits = net.decode_logits(z, ch, prev)
            rec = torch.nn.functional.cross_entropy(logits.reshape(-1, N_TOKENS), tok.reshape(-1), reduction="sum") / len(batch)
            kl = 0.5 * (lv_p - lv_q + (torch.exp(lv_q) + (mu_q - mu_p) ** 2) / torch.exp(lv_p) - 1)
            kl = torch.clamp(kl.mean(0), min=free_bits).sum()
            beta = min(1.0, step / 200)
            loss = rec + beta * kl
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            tot[0] += float(rec.detach()) * len(batch)
            tot[1] += float(kl.detach()) * len(batch)
            run.log_step(step, rec=float(rec.detach()), kl=float(kl.detach()))
        log(f"epoch {ep + 1} rec/window {tot[0] / len(train):.2f} kl {tot[1] / len(train):.2f} beta {beta:.2f}")
        run.checkpoint_maybe(step, net, opt, extra={"epoch": ep + 1})
        if not run.keep_going(step):
            log("time budget reached")
            break
    run.checkpoint(step, net, opt, extra={"epoch": ep + 1})
    net = net.cpu().eval()
    # held-out teacher-forced reconstruction NLL per step: a training diagnostic (the posterior network is not
    # part of what users run), not a figure of the generation path
    with torch.no_grad():
        tok = torch.from_numpy(np.stack([t[0] for t in test])).long()
        ch = torch.from_numpy(np.stack([t[1] for t in test])).long()
        prev = torch.cat([torch.tensor([t[2] for t in test]).long()[:, None], tok[:, :-1]], 1)
        mu_q, _ = net.posterior(tok, ch)
        mu_p, _ = net.prior(ch)
        nll_post = float(torch.nn.functional.cross_entropy(net.decode_logits(mu_q, ch, prev).reshape(-1, N_TOKENS), tok.reshape(-1)))
        nll_prior = float(torch.nn.functional.cross_entropy(net.decode_logits(mu_p, ch, prev).reshape(-1, N_TOKENS), tok.reshape(-1)))
    card = ModelCard(
        name=WEIGHTS, architecture=ARCH, arch_args=net_args,
        task="melody generation over a chord progression (seed 3.3 [13], conditional VAE)",
        labels=["rest", "hold"] + [f"midi {p}" for p in range(PITCH_LO, PITCH_HI + 1)],
        inputs={"chords": "one of 24 major/minor chord classes per 16th-note step (bars of 4/4, 4-bar windows)",
                "latent": "z = prior mean + distance x prior sigma x N(0, I); 16 dimensions"},
        training_data=f"soprano lines of music21's four-part Bach chorales over their bar chords (chordify, longest "
                      f"slice, majmin), keys normalized to C/Am then randomly transposed -5..+6 per batch; "
                      f"{len(train)} 4-bar windows from the train+validation chorales; held-out = BWV ending 3/7.",
        training_command=command_line(),
        metrics={},
        limits="Chorale-soprano style only (mostly quarter and eighth notes, stepwise, range about a tenth); "
               "one chord per bar or half bar; 4/4 only; windows of 4 bars are generated one after another. "
               f"Training bounded to {args.max_minutes} minutes on {run.threads} CPU thread(s). Research use only.")
    engine = MelodyGeneratorEngine().attach_network(net, card, "cpu")
    metrics = evaluate_generator(engine, test, log=log)
    metrics["heldout_token_nll"] = {"posterior_mean_z": round(nll_post, 4), "prior_mean_z": round(nll_prior, 4)}
    metrics["windows"] = {"train": len(train), "heldout": len(test)}
    metrics["epochs"] = ep + 1
    log(json.dumps(metrics, indent=1))
    card.metrics = metrics
    WeightsStore.save(args.out, WEIGHTS, net.state_dict(), card)
    log("saved")
    run.done(step)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
