"""Train the cover embedding with sparse binary hash codes (seed 4 [14]) on the rendered chorale versions
(scripts/music_lab/render_cover_versions.py), then evaluate hash lookup and exhaustive search on the held-out
pieces through the engine's own inference path (CoverEmbeddingEngine.embed_pooled).

Each step: a mini-batch of pieces, every version randomly cropped and stretched in time -> embeddings; the
class means choose each piece's k_s-bit code (eq. 5, exact, assign_codes); the loss is the triplet loss with
semi-hard negatives on the distance over the union of the two codes' active dimensions, plus a loss on the full
L1 distance (weight --dense: the same triplet loss, or the supervised contrastive loss over the batch) so that
unseen pieces still land near their versions, plus optionally a code term (--code-weight: each clip's assigned
bits its largest values) and a bucket-balance term (--spread). With --balance the balance layer's statistics are
set on whole training clips after training (calibrate_balance).

Wall-clock budget, one torch thread by default, resumable safetensors checkpoint under
.training/music_lab-cover-embed/ (engines.core.training.TrainingRun: arguments, seed, threads, budget across
resumes, steps/s log; ignored by git):

    nohup flock /tmp/csi-training.lock .venv/bin/python scripts/music_lab/train_cover_embedding.py --minutes 15 \
        --fresh --classes 32 --dense-loss contrastive --dense 1 --balance --depth 3 --code-weight 1.5 --beta 30 \
        > build/music_lab/train_cover_embed.log 2>&1 &

(the shipped model; docs/music_lab.md section 4). Without --balance / --depth the network is the first model's.
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

from engines.music_lab.cover_embed import ARCH, WEIGHTS, assign_codes, embed_net, masked_l1, sparse_code  # noqa: E402
from engines.music_lab.covers import pooled_chroma  # noqa: E402


def load(folder: Path, split: str) -> list[tuple[str, np.ndarray, str]]:
    clips = []
    for f in sorted(folder.glob(f"{split}_*.npz")):
        with np.load(f) as d:
            clips.append((str(d["piece"]), pooled_chroma(d["chroma"]), f.stem))
    return clips


def augment(x: np.ndarray, length: int, rng: np.random.Generator, stretch_range: float = 1.25) -> np.ndarray:
    """A random tempo change (1/stretch_range .. stretch_range, log-uniform, linear interpolation of frames),
    a random crop of ``length`` frames (zero frames pad a short clip), a random transposition and a little
    noise."""
    stretch = float(np.exp(rng.uniform(-np.log(stretch_range), np.log(stretch_range))))
    n = max(2, int(round(len(x) * stretch)))
    pos = np.linspace(0, len(x) - 1, n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    w = (pos - lo)[:, None]
    y = (1 - w) * x[lo] + w * x[hi]
    if len(y) > length:
        a = int(rng.integers(0, len(y) - length + 1))
        y = y[a:a + length]
    else:
        y = np.concatenate([y, np.zeros((length - len(y), 12))])
    y = np.roll(y, int(rng.integers(12)), axis=1) + rng.normal(0, 0.03, y.shape) * (y.sum(1, keepdims=True) > 0)
    y = np.maximum(y, 0)
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def semihard_triplet(d, labels, margin: float):
    """Triplet loss with semi-hard negatives (FaceNet's rule, as in TF's triplet_semihard_loss): for each
    anchor-positive pair the closest negative farther than the positive; where there is none, the farthest."""
    import torch

    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos = same & ~eye
    neg = ~same
    a, p = torch.nonzero(pos, as_tuple=True)
    dap = d[a, p]
    dan = d[a]  # (pairs, B)
    big = torch.finfo(d.dtype).max
    semi = neg[a] & (dan > dap[:, None])
    closest = torch.where(semi, dan, torch.full_like(dan, big)).amin(dim=1)
    farthest = torch.where(neg[a], dan, torch.full_like(dan, -big)).amax(dim=1)
    chosen = torch.where(semi.any(dim=1), closest, farthest)
    return torch.relu(dap - chosen + margin).mean()


def contrastive(d, labels, tau: float):
    """Supervised contrastive loss (all versions of a piece positives, every other clip of the batch a
    negative) with the logits -d / tau of the L1 distance ``d`` (B, B)."""
    import torch

    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    logits = (-d / tau).masked_fill(eye, float("-inf"))
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = same & ~eye
    return -(log_p.masked_fill(~pos, 0.0).sum(1) / pos.sum(1).clamp(min=1)).mean()


def spread_loss(f, beta: float):
    """Bucket balance over a batch: log(dim) minus the entropy of the batch's mean soft code (a softmax of the
    embedding values, sharp enough to stand for the k_s largest); zero when every bit is used equally often."""
    import math

    import torch

    p = torch.softmax(beta * f, dim=1).mean(0)
    return math.log(f.shape[1]) + (p * torch.log(p.clamp(min=1e-12))).sum()


def calibrate_balance(net, clips: list[np.ndarray]) -> None:
    """Set the balance layer's statistics to those of the head's outputs on whole training clips, with every
    other layer in inference mode (the running averages of training mode are taken on crops and with the
    batch's own normalisation; here the same path as at inference)."""
    import torch

    if getattr(net, "balance", None) is None:
        return
    net.eval()
    outs = []
    hook = net.head.register_forward_hook(lambda _m, _i, o: outs.append(o.detach()))
    with torch.no_grad():
        for c in clips:
            net(torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))[None])
    hook.remove()
    h = torch.cat(outs)
    net.balance.running_mean.copy_(h.mean(0))
    net.balance.running_var.copy_(h.var(0, unbiased=False))


def bucket_stats(codes: np.ndarray, dim: int) -> dict:
    """How evenly codes spread over the bits: the largest bucket's share of the entries, and the perplexity of
    the bit usage (dim when perfectly even)."""
    counts = np.bincount(codes.ravel().astype(int), minlength=dim).astype(float)
    p = counts / counts.sum()
    nz = p[p > 0]
    return {"largest_bucket_share": round(float(counts.max() / len(codes)), 4),
            "bits_used": int((counts > 0).sum()), "perplexity": round(float(np.exp(-(nz * np.log(nz)).sum())), 1)}


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    rel = relevant[order]
    if rel.sum() == 0:
        return 0.0
    hits = np.cumsum(rel)
    return float((hits[rel > 0] / (np.flatnonzero(rel) + 1)).mean())


def retrieval_metrics(emb: np.ndarray, codes: np.ndarray, pieces: np.ndarray) -> dict:
    """MAP / top-1 on the held-out clips, each against all others: exhaustive full-L1 ranking, and hash lookup
    (only clips sharing an active bit are found, ranked by the union-masked L1 or by the full L1; the rest
    count as misses); how evenly the codes spread over the bits."""
    n = len(emb)
    out = {}
    for name in ("exhaustive L1", "hash lookup", "hash lookup, full L1"):
        aps, top1, touched = [], [], []
        for i in range(n):
            mask = np.arange(n) != i
            rel = (pieces[mask] == pieces[i]).astype(float)
            full = -np.abs(emb[mask] - emb[i]).sum(1)
            if name == "exhaustive L1":
                s = full
            else:
                hit = np.isin(codes[mask], codes[i]).any(1)
                near = full if name.endswith("full L1") else -masked_l1(emb[i], codes[i], emb[mask], codes[mask])
                s = np.where(hit, near, -np.inf)
                touched.append(hit.mean())
            aps.append(average_precision(s, rel))
            top1.append(float(rel[int(np.argmax(s))]) if np.isfinite(s).any() else 0.0)
        out[name] = {"MAP": round(float(np.mean(aps)), 4), "top1": round(float(np.mean(top1)), 4)}
        if touched:
            out[name]["share_of_catalog_scored"] = round(float(np.mean(touched)), 4)
    out["codes"] = bucket_stats(codes, emb.shape[1])
    return out


def main() -> int:
    import torch

    from engines.core.training import TrainingRun, command_line, parser
    from engines.core.weights import ModelCard, WeightsStore
    from engines.music_lab.cover_embed import CoverEmbeddingEngine

    ap = parser(__doc__.splitlines()[0], minutes=8.0, seed=0)
    ap.set_defaults(threads=1, device="cpu")
    ap.add_argument("--minutes", dest="max_minutes", type=float, default=argparse.SUPPRESS,
                    help="same as --max-minutes")
    ap.add_argument("--fresh", dest="no_resume", action="store_true", default=argparse.SUPPRESS,
                    help="same as --no-resume")
    ap.add_argument("--data", type=Path, default=ROOT / "build/music_lab/covers")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--k-s", type=int, default=2)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--classes", type=int, default=16, help="pieces per mini-batch (all their versions)")
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--penalty", type=float, default=0.5, help="orthogonality penalty of the code assignment")
    ap.add_argument("--dense", type=float, default=0.5, help="weight of the full-L1 term")
    ap.add_argument("--dense-loss", choices=("triplet", "contrastive"), default="triplet",
                    help="the full-L1 term: semi-hard triplet, or the supervised contrastive loss over the batch")
    ap.add_argument("--tau", type=float, default=1.0, help="temperature of the contrastive term (L1 units)")
    ap.add_argument("--depth", type=int, default=2, help="temporal convolutions (dilations 1, 2, 4, ...)")
    ap.add_argument("--balance", action="store_true", help="bucket balance: the embedding's values are "
                                                             "batch-normalised before the unit length")
    ap.add_argument("--code-weight", type=float, default=0.0,
                    help="weight of the code term: each clip's assigned bits made its largest values (a softmax "
                         "of beta x the embedding, cross-entropy on the piece's k_s bits)")
    ap.add_argument("--spread", type=float, default=0.0, help="weight of the bucket-balance term")
    ap.add_argument("--beta", type=float, default=20.0, help="sharpness of the balance term's soft codes")
    ap.add_argument("--stretch", type=float, default=1.25, help="time stretch of the augmentation, 1/x .. x")
    ap.add_argument("--crop", default="32,80", help="crop lengths in pooled frames, min,max")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--render-args", default="--out build/music_lab/covers --train 296 --train-versions 4 "
                                             "--segments 2 --test 20 --versions 3",
                    help="how the data was rendered (written into the model card)")
    ap.add_argument("--out", type=Path, default=ROOT / "resources/models/music_lab")
    args = ap.parse_args()
    run = TrainingRun.from_args(WEIGHTS, args)
    os.environ["CSI_TORCH_THREADS"] = str(run.threads)  # the engine's evaluation keeps the run's thread count
    log = logging.getLogger("csi.training").info

    train, test = load(args.data, "train"), load(args.data, "test")
    pieces = sorted({c[0] for c in train})
    by_piece = {p: [c[1] for c in train if c[0] == p] for p in pieces}
    log(f"clips: train {len(train)} ({len(pieces)} pieces), test {len(test)} ({len({c[0] for c in test})} pieces)")
    net_args = {"dim": args.dim, "channels": args.channels, "k_s": args.k_s}
    if args.depth != 2 or args.balance:  # the shipped model's arguments stay as they were otherwise
        net_args.update({"depth": args.depth, "balance": bool(args.balance)})
    crop_lo, crop_hi = (int(v) for v in args.crop.split(","))
    net = embed_net(net_args)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    step = run.resume(net, opt)
    if step and run.resumed_extra.get("net_args") != net_args:
        raise SystemExit(f"the checkpoint in {run.checkpoint_dir} was trained with {run.resumed_extra.get('net_args')}"
                         f", not {net_args}: pass --no-resume to start again")
    spent = float(run.resumed_extra.get("seconds", 0.0)) if step else 0.0  # the budget covers every resumed run
    rng = np.random.default_rng(args.seed + step)  # a resumed run does not replay the first batches
    share = float("nan")
    net.train()
    while run.time_left() > spent:
        chosen = rng.choice(len(pieces), size=min(args.classes, len(pieces)), replace=False)
        length = int(rng.integers(crop_lo, crop_hi))
        xs, ys = [], []
        for c in chosen:
            for clip in by_piece[pieces[c]]:
                xs.append(augment(clip, length, rng, args.stretch))
                ys.append(int(c))
        x = torch.from_numpy(np.stack(xs))
        y = torch.tensor(ys)
        f = net(x)
        with torch.no_grad():  # the discrete step: each piece's code from its class mean (eq. 5)
            means = torch.stack([f[y == c].mean(0) for c in chosen]).numpy()
            z = assign_codes(means, args.k_s, args.penalty)
            h = torch.zeros(len(chosen), args.dim)
            h[torch.arange(len(chosen))[:, None], torch.from_numpy(z).long()] = 1
            slot = {int(c): i for i, c in enumerate(chosen)}
            h = h[torch.tensor([slot[int(v)] for v in ys])]
            union = torch.clamp(h[:, None] + h[None], max=1)  # (B, B, dim)
        diff = (f[:, None] - f[None]).abs()
        d_hash = (union * diff).sum(-1)
        d_full = diff.sum(-1)
        dense = (contrastive(d_full, y, args.tau) if args.dense_loss == "contrastive"
                 else semihard_triplet(d_full, y, 2 * args.margin))
        loss = semihard_triplet(d_hash, y, args.margin) + args.dense * dense
        if args.code_weight:
            log_p = torch.log_softmax(args.beta * f, dim=1)
            loss = loss - args.code_weight * (log_p * h).sum(1).mean() / args.k_s
        if args.spread:
            loss = loss + args.spread * spread_loss(f, args.beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:  # how many clips land on their piece's own code
            with torch.no_grad():
                codes = sparse_code(f.detach().numpy(), args.k_s)
            share = float(np.mean([set(codes[i]) == set(z[slot[int(ys[i])]]) for i in range(len(ys))]))
        run.log_step(step, loss=float(loss.detach()), own_code_share=share)
        run.checkpoint_maybe(step, net, opt, extra={"seconds": spent + run.elapsed_s, "net_args": net_args})
    spent += run.elapsed_s
    run.checkpoint(step, net, opt, extra={"seconds": spent, "net_args": net_args})
    log(f"trained {step} steps in {spent:.0f} s")

    # evaluation through the engine's own inference path, on the network in memory
    calibrate_balance(net, [c[1] for c in train])
    net.eval()
    card = ModelCard(
        name=WEIGHTS, architecture=ARCH, arch_args=net_args, version="2" if args.balance else "1",
        task="cover song identification at catalog scale: an embedding whose k_s largest values are its hash "
             "buckets (seed 4 [14] on seed 6.2)",
        labels=[],
        inputs={"chroma": "the music workspace's log-CQT folded to 12 bins, 4 frames pooled (~2.7 /s), sqrt, unit "
                          "length (the cover-id engine's features); any length of at least 8 frames",
                "code": f"indices of the {args.k_s} largest of the {args.dim} unit-length embedding values",
                "distance": "L1 over the union of the two codes' active dimensions (the hash term); the full L1 "
                            "ranks a catalog's candidates"},
        training_data=f"FluidSynth renderings of 8-bar excerpts of Bach chorales (music21 corpus, BWV not ending "
                      f"in 3/7): {len(pieces)} pieces ({sum(1 for p in pieces if '-s' in p)} of them bars 9-16 of "
                      f"a chorale whose first 8 bars are another piece), {len(train)} clips "
                      f"({len(train) / max(1, len(pieces)):.1f} versions a piece: GM instrument, 60-110 bpm, "
                      f"transposition -5..+6, some with a modulation half way or a quarter removed); random crops "
                      f"of {crop_lo}-{crop_hi} frames, time stretch {1 / args.stretch:.2f}-{args.stretch:.2f}, "
                      f"random transposition.",
        training_command=f"python scripts/music_lab/render_cover_versions.py {args.render_args} && {command_line()}",
        metrics={}, limits="")
    engine = CoverEmbeddingEngine().attach_network(net, card, "cpu")
    embedded = [engine.embed_pooled(c[1]) for c in test]
    emb = np.stack([e for e, _ in embedded])
    codes = np.stack([k for _, k in embedded])
    metrics = retrieval_metrics(emb, codes, np.array([c[0] for c in test]))
    metrics.update({"queries": len(test), "pieces": len({c[0] for c in test}), "steps": step,
                    "training_seconds": round(spent), "held_out": "BWV ending in 3 or 7"})
    log(json.dumps(metrics, indent=1))
    card.metrics = metrics
    card.limits = (f"Trained on synthesized chorale excerpts (about 20-40 s, {len(pieces)} pieces): real recordings, vocals, "
                   "live covers and long songs are outside what it has seen. Stage 1 finds a cover only when one "
                   "of its active bits is among the query's probed values (multi-probe); the catalog query "
                   "re-ranks the best candidates with the cross-similarity CNN. Research use only.")
    WeightsStore.save(args.out, WEIGHTS, net.state_dict(), card)
    log("saved")
    run.done(step)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
