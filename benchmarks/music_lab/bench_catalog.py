"""Cover catalog at scale: hash-table lookup vs exhaustive pairwise scoring.

On the held-out rendered covers (scripts/music_lab/render_cover_versions.py; BWV ending in 3/7, 3 versions each)
through the engines' own inference paths:

1. every held-out pair scored exhaustively with the cross-similarity CNN, Qmax and Dmax (patch-wise
   transposition) - the peers, and the per-pair cost of exhaustive search;
2. the catalog of the held-out clips (leave-one-out queries): MAP / top-1 of hash lookup alone, of hash lookup
   with the CNN re-ranking the best ``--rerank`` candidates, and of exhaustive CNN / Qmax / Dmax / embedding L1;
3. catalogs of 1,000 / 10,000 / 100,000 entries: the real held-out embeddings plus synthetic pieces (centres =
   a real held-out piece's mean embedding plus Gaussian noise with the real between-piece spread per dimension,
   versions = centre plus a real within-piece residual): memory, file size and load time, stage-1 query time,
   share of the catalog scored, MAP / top-1 / recall of the real covers among the distractors, and the re-ranked
   MAP with each synthetic candidate given the CNN probability of a random real non-cover pair (simulated: the
   synthetic entries have no audio). Speed-up = N x (one pair's CNN score) / (stage 1 + rerank x one pair).

    .venv/bin/python benchmarks/music_lab/bench_catalog.py [--data build/music_lab/covers] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def average_precision(order_relevance: np.ndarray, n_relevant: int) -> float:
    """AP of a ranked list of 0/1 relevance; relevant items never retrieved count as misses."""
    if n_relevant == 0:
        return 0.0
    hits = np.cumsum(order_relevance)
    return float((hits[order_relevance > 0] / (np.flatnonzero(order_relevance) + 1)).sum() / n_relevant)


def ranked_metrics(rankings: list[np.ndarray], relevant: list[set]) -> dict:
    aps, top1 = [], []
    for order, rel in zip(rankings, relevant):
        r = np.array([1.0 if int(i) in rel else 0.0 for i in order])
        aps.append(average_precision(r, len(rel)))
        top1.append(float(len(r) > 0 and r[0] > 0))
    return {"MAP": round(float(np.mean(aps)), 4), "top1": round(float(np.mean(top1)), 4)}


def main() -> int:
    import torch

    from engines.music_lab.catalog import CoverCatalog
    from engines.music_lab.cover_embed import CoverEmbedding, CoverEmbeddingEngine, masked_l1, sparse_code
    from engines.music_lab.covers import CoverIdEngine, cross_similarity, dmax, pooled_chroma, qmax

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "build/music_lab/covers")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--rerank", type=int, default=10)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    files = sorted(args.data.glob("test_*.npz"))
    if len(files) < 6:
        raise SystemExit("render the collection first (scripts/music_lab/render_cover_versions.py)")
    clips = []
    for f in files:
        with np.load(f) as d:
            clips.append((str(d["piece"]), pooled_chroma(d["chroma"])))
    pieces = np.array([c[0] for c in clips])
    n = len(clips)
    report: dict = {"queries": n, "pieces": int(len(set(pieces)))}
    embedder, cnn = CoverEmbeddingEngine(), CoverIdEngine()
    embedder.load("cpu")
    cnn.load("cpu")
    t = time.perf_counter()
    emb_codes = [embedder.embed_pooled(c[1]) for c in clips]
    report["embed_seconds_per_clip"] = round((time.perf_counter() - t) / n, 4)
    emb = np.stack([e[0] for e in emb_codes])
    codes = np.stack([e[1] for e in emb_codes])

    # 1. exhaustive pairwise scores (the re-ranker's own call: cross_similarity 'patch' + CoverIdEngine.probability)
    P, Q, D = (np.full((n, n), -np.inf) for _ in range(3))
    pair_t = {"cnn (matrix + net)": [], "qmax": [], "dmax": []}
    for i in range(n):
        for j in range(i + 1, n):
            t0 = time.perf_counter()
            cs = cross_similarity(clips[i][1], clips[j][1], "patch")
            p = cnn.probability(cs)
            t1 = time.perf_counter()
            q = qmax(cs.binary)[0]
            t2 = time.perf_counter()
            d = dmax(cs.binary)[0]
            t3 = time.perf_counter()
            pair_t["cnn (matrix + net)"].append(t1 - t0)
            pair_t["qmax"].append(t2 - t1 + (t1 - t0) * 0)  # on the same matrix
            pair_t["dmax"].append(t3 - t2)
            P[i, j] = P[j, i] = p
            Q[i, j] = Q[j, i] = q
            D[i, j] = D[j, i] = d
        print(f"pairs: query {i + 1}/{n}", flush=True)
    pair_s = float(np.mean(pair_t["cnn (matrix + net)"]))
    report["pair_seconds"] = {k: round(float(np.mean(v)), 4) for k, v in pair_t.items()}
    relevant = [set(np.flatnonzero((pieces == pieces[i]) & (np.arange(n) != i)).tolist()) for i in range(n)]
    others = [np.array([j for j in range(n) if j != i]) for i in range(n)]
    exhaustive = {}
    for name, S in (("CNN", P), ("Qmax", Q), ("Dmax", D)):
        exhaustive[name] = ranked_metrics([o[np.argsort(-S[i, o], kind="stable")] for i, o in enumerate(others)],
                                          relevant)
    exhaustive["embedding L1"] = ranked_metrics(
        [o[np.argsort(np.abs(emb[o] - emb[i]).sum(1), kind="stable")] for i, o in enumerate(others)], relevant)
    report["exhaustive (held-out, leave one out)"] = exhaustive

    # 2. the held-out catalog, through CoverCatalog.search
    def catalog_of(e, c, paths):
        items = [CoverEmbedding(p, e[k], c[k], 0.0, "", "m") for k, p in enumerate(paths)]
        return CoverCatalog.from_entries(items, {"sha256": "m", "k_s": c.shape[1], "dim": e.shape[1]})

    real = catalog_of(emb, codes, [f"real/{k}" for k in range(n)])
    noncover = P[np.triu_indices(n, 1)][(pieces[np.triu_indices(n, 1)[0]] != pieces[np.triu_indices(n, 1)[1]])]

    def run_queries(cat, real_ids, simulate_cnn: bool):
        hash_rank, rerank_rank, scored, times, rerank_pairs = [], [], [], [], []
        for i in range(n):
            t0 = time.perf_counter()
            found, sc = cat.search(emb[i], codes[i], top=max(args.top, args.rerank) + 1)
            times.append(time.perf_counter() - t0)
            scored.append(sc)
            order = [m.index for m in found if m.index != i][: max(args.top, args.rerank)]
            hash_rank.append(np.array(order[: args.top]))
            head, tail = order[: args.rerank], order[args.rerank:]
            probs = []
            for j in head:
                if j in real_ids:
                    probs.append(P[i, j])
                else:  # a synthetic entry has no audio: a real non-cover pair's probability stands in
                    probs.append(float(rng.choice(noncover)) if simulate_cnn else -np.inf)
            rerank_pairs.append(len(head))
            head = [head[k] for k in np.argsort(-np.array(probs), kind="stable")] if head else []
            rerank_rank.append(np.array((head + tail)[: args.top]))
        return hash_rank, rerank_rank, np.array(scored), np.array(times)

    h, r, sc, tm = run_queries(real, set(range(n)), False)
    report["held-out catalog"] = {"size": n, "hash lookup": ranked_metrics(h, relevant),
                                  f"hash + CNN re-rank of {args.rerank}": ranked_metrics(r, relevant),
                                  "share scored": round(float(sc.mean() / n), 4)}
    print(json.dumps(report, indent=1), flush=True)

    # 3. large catalogs with synthetic pieces around the real ones
    piece_ids = sorted(set(pieces))
    means = np.stack([emb[pieces == p].mean(0) for p in piece_ids])
    between = means.std(0)
    residuals = np.concatenate([emb[pieces == p] - means[k] for k, p in enumerate(piece_ids)])
    scale = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        extra = size - n
        n_syn = -(-extra // 3)
        centres = means[rng.integers(len(means), size=n_syn)] + rng.normal(0, 1, (n_syn, emb.shape[1])) * between
        syn = np.repeat(centres, 3, axis=0)[:extra] + residuals[rng.integers(len(residuals), size=extra)]
        syn /= np.linalg.norm(syn, axis=1, keepdims=True)
        all_emb = np.concatenate([emb, syn]).astype(np.float32)
        all_codes = np.concatenate([codes, sparse_code(syn, codes.shape[1])])
        t0 = time.perf_counter()
        cat = catalog_of(all_emb, all_codes, [f"real/{k}" for k in range(n)] + [f"synthetic/{k}" for k in range(extra)])
        build_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            path = cat.save(Path(tmp) / "catalog.npz")
            t0 = time.perf_counter()
            cat = CoverCatalog.load(path)
            load_s = time.perf_counter() - t0
            file_mb = path.stat().st_size / 1e6
        h, r, sc, tm = run_queries(cat, set(range(n)), True)
        t0 = time.perf_counter()
        for i in range(min(n, 10)):  # an exhaustive scan of the embeddings, for reference
            masked_l1(emb[i], codes[i], cat.embeddings, cat.codes)
        scan_s = (time.perf_counter() - t0) / min(n, 10)
        stage1 = float(tm.mean())
        query_s = stage1 + args.rerank * pair_s
        recall = np.mean([len(set(map(int, hr)) & rel) / len(rel) for hr, rel in zip(h, relevant)])
        syn_dist = masked_l1(emb[0], codes[0], syn[:2000], sparse_code(syn[:2000], codes.shape[1]))
        real_dist = masked_l1(emb[0], codes[0], emb[pieces != pieces[0]], codes[pieces != pieces[0]])
        scale[str(size)] = {
            "memory_MB": round(cat.memory_bytes() / 1e6, 2), "file_MB": round(file_mb, 2),
            "build_s": round(build_s, 3), "load_s": round(load_s, 3),
            "stage1_query_ms": round(stage1 * 1000, 2), "stage1_query_ms_max": round(float(tm.max()) * 1000, 2),
            "share_scored": round(float(sc.mean() / size), 4),
            "exhaustive_embedding_scan_ms": round(scan_s * 1000, 2),
            "query_s_with_rerank (stored chroma)": round(query_s, 3),
            "exhaustive_pairwise_s (estimated)": round(size * pair_s, 1),
            "speed_up_vs_exhaustive_pairwise": round(size * pair_s / query_s, 1),
            "hash lookup": ranked_metrics(h, relevant),
            f"recall of covers in the top {args.top}": round(float(recall), 4),
            f"hash + CNN re-rank of {args.rerank} (synthetic candidates simulated)": ranked_metrics(r, relevant),
            "calibration: median distance query 0 -> synthetic / -> real non-covers":
                [round(float(np.median(syn_dist)), 3), round(float(np.median(real_dist)), 3)],
        }
        print(size, json.dumps(scale[str(size)], indent=1), flush=True)
    report["scale"] = scale
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
