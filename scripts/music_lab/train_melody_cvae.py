"""Train the chord-conditioned melody CVAE (seed 3.3 [13]) on chorale sopranos over their bar chords, evaluate
it on held-out progressions (4-bar windows of the chorales with BWV ending in 3/7) against the real melodies and
a random walk over chord tones, and save safetensors + model card to resources/models/music_lab/.

    nohup .venv/bin/python scripts/music_lab/train_melody_cvae.py > build/music_lab/train_cvae.log 2>&1 &

One CPU thread; --minutes bounds the training time (default 8).
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

from engines.music_lab.dataset import DEFAULT_CACHE, load_chorales, split  # noqa: E402
from engines.music_lab.generator import (N_TOKENS, PITCH_HI, PITCH_LO, START, STEPS_PER_BAR, WINDOW_BARS,  # noqa: E402
                                         diversity, grid_tokens, melody_stats, notes_to_steps, random_walk,
                                         tokens_to_notes)

W = WINDOW_BARS * STEPS_PER_BAR


def windows(chorales):
    """4-bar windows of 4/4 bars: (tokens (64,), chords per step (64,), previous token)."""
    out = []
    for c in chorales:
        ok = (c.bar_len == 4.0)
        chords = c.chord.copy()
        for i in range(1, len(chords)):  # unknown bar chords take the previous one
            if chords[i] >= 24:
                chords[i] = chords[i - 1]
        tok_all = grid_tokens(c.grid, c.onset)
        for b in range(0, len(chords) - WINDOW_BARS + 1):
            if not ok[b:b + WINDOW_BARS].all() or (chords[b:b + WINDOW_BARS] >= 24).any():
                continue
            tok = tok_all[b * 16:(b + WINDOW_BARS) * 16]
            if (tok == 0).mean() > 0.5:
                continue
            prev = tok_all[b * 16 - 1] if b > 0 else START
            out.append((tok, np.repeat(chords[b:b + WINDOW_BARS], 16), int(prev)))
    return out


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

    from engines.core.weights import ModelCard, WeightsStore
    from engines.music_lab.nets import MelodyCVAE

    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/music_lab")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    parts = split(load_chorales(args.cache))
    train = windows(parts["train"] + parts["val"])
    test = windows(parts["test"])
    log(f"windows: train {len(train)}, held-out {len(test)}")
    net_args = {"n_tokens": N_TOKENS, "n_chords": 24, "hidden": 128, "latent": 16, "emb": 32}
    net = MelodyCVAE(**net_args)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    bs = 64
    step = 0
    free_bits = 0.1
    ep = 0
    for ep in range(args.epochs):
        net.train()
        order = rng.permutation(len(train))
        tot = [0.0, 0.0]
        for i in range(0, len(order), bs):
            batch = [shift_window(*train[j], int(rng.integers(-5, 7))) for j in order[i:i + bs]]
            tok = torch.from_numpy(np.stack([b[0] for b in batch])).long()
            ch = torch.from_numpy(np.stack([b[1] for b in batch])).long()
            prev0 = torch.tensor([b[2] for b in batch]).long()
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
        log(f"epoch {ep + 1} rec/window {tot[0] / len(train):.2f} kl {tot[1] / len(train):.2f} beta {beta:.2f}")
        if time.time() - t0 > args.minutes * 60:
            log("time budget reached")
            break
    net.eval()
    # held-out reconstruction NLL per step (posterior z) for the card
    with torch.no_grad():
        tok = torch.from_numpy(np.stack([t[0] for t in test])).long()
        ch = torch.from_numpy(np.stack([t[1] for t in test])).long()
        prev = torch.cat([torch.tensor([t[2] for t in test]).long()[:, None], tok[:, :-1]], 1)
        mu_q, _ = net.posterior(tok, ch)
        mu_p, _ = net.prior(ch)
        nll_post = float(torch.nn.functional.cross_entropy(net.decode_logits(mu_q, ch, prev).reshape(-1, N_TOKENS), tok.reshape(-1)))
        nll_prior = float(torch.nn.functional.cross_entropy(net.decode_logits(mu_p, ch, prev).reshape(-1, N_TOKENS), tok.reshape(-1)))
    metrics = evaluate(net, test, log)
    metrics["heldout_token_nll"] = {"posterior_mean_z": round(nll_post, 4), "prior_mean_z": round(nll_prior, 4)}
    metrics["windows"] = {"train": len(train), "heldout": len(test)}
    metrics["epochs"] = ep + 1
    log(json.dumps(metrics, indent=1))
    card = ModelCard(
        name="music_lab-melody-cvae", architecture="melody-cvae@1", arch_args=net_args,
        task="melody generation over a chord progression (seed 3.3 [13], conditional VAE)",
        labels=["rest", "hold"] + [f"midi {p}" for p in range(PITCH_LO, PITCH_HI + 1)],
        inputs={"chords": "one of 24 major/minor chord classes per 16th-note step (bars of 4/4, 4-bar windows)",
                "latent": "z = prior mean + distance x prior sigma x N(0, I); 16 dimensions"},
        training_data=f"soprano lines of music21's four-part Bach chorales over their bar chords (chordify, longest "
                      f"slice, majmin), keys normalized to C/Am then randomly transposed -5..+6 per batch; "
                      f"{len(train)} 4-bar windows from the train+validation chorales; held-out = BWV ending 3/7.",
        training_command=f"python scripts/music_lab/train_melody_cvae.py --minutes {args.minutes} --epochs "
                         f"{args.epochs} --seed {args.seed}",
        metrics=metrics,
        limits="Chorale-soprano style only (mostly quarter and eighth notes, stepwise, range about a tenth); "
               "one chord per bar or half bar; 4/4 only; windows of 4 bars are generated one after another. "
               f"Training bounded to {args.minutes} minutes on one CPU thread. Research use only.")
    WeightsStore.save(args.out, "music_lab-melody-cvae", net.state_dict(), card)
    log("saved")
    return 0


def evaluate(net, test, log, n_samples: int = 4, max_windows: int = 200) -> dict:
    import torch

    rng = np.random.default_rng(1)
    idx = rng.choice(len(test), size=min(max_windows, len(test)), replace=False)
    rows = {"real chorale sopranos": [], "cvae distance 0.5": [], "cvae distance 1.0": [], "cvae distance 2.0": [],
            "random walk over chord tones": []}
    div = {k: [] for k in rows}
    gen = torch.Generator().manual_seed(0)
    for k, i in enumerate(idx):
        tok, ch, prev = test[i]
        real = tokens_to_notes(tok)
        rows["real chorale sopranos"].append(melody_stats(notes_to_steps(real, W), ch, real))
        c = torch.from_numpy(ch).long()[None].expand(n_samples, -1).contiguous()
        for dist in (0.5, 1.0, 2.0):
            with torch.no_grad():
                mu, lv = net.prior(c)
                z = mu + dist * torch.exp(0.5 * lv) * torch.randn(mu.shape, generator=gen)
                toks = net.generate(z, c, torch.full((n_samples,), START, dtype=torch.long), 0.9, gen).numpy()
            mels = [tokens_to_notes(t) for t in toks]
            steps = [notes_to_steps(m, W) for m in mels]
            rows[f"cvae distance {dist}"] += [melody_stats(s, ch, m) for s, m in zip(steps, mels)]
            div[f"cvae distance {dist}"].append(diversity(steps))
        mels = [random_walk(ch, rng) for _ in range(n_samples)]
        steps = [notes_to_steps(m, W) for m in mels]
        rows["random walk over chord tones"] += [melody_stats(s, ch, m) for s, m in zip(steps, mels)]
        div["random walk over chord tones"].append(diversity(steps))
        if k % 50 == 0:
            log(f"evaluated {k}/{len(idx)} windows")
    out = {}
    for name, stats in rows.items():
        keys = stats[0].keys()
        out[name] = {key: round(float(np.nanmean([s[key] for s in stats])), 4) for key in keys}
        out[name]["diversity_between_samples"] = round(float(np.mean(div[name])), 4) if div[name] else None
    out["held_out_windows_evaluated"] = int(len(idx))
    out["samples_per_window"] = n_samples
    return out


if __name__ == "__main__":
    raise SystemExit(main())
