"""Cover catalog at scale: hash-table lookup vs exhaustive pairwise scoring.

On the held-out rendered covers (scripts/music_lab/render_cover_versions.py; BWV ending in 3/7, 3 versions each)
through the engines' own inference paths:

1. every held-out pair scored exhaustively with the cross-similarity CNN, Qmax and Dmax (patch-wise
   transposition) - the peers, and the per-pair cost of exhaustive search;
2. the catalog of the held-out clips (leave-one-out queries): MAP / top-1 of hash lookup alone, of hash lookup
   with the CNN re-ranking the best ``--rerank`` candidates, and of exhaustive CNN / Qmax / Dmax / embedding L1;
3. catalogs of 1,000 / 10,000 / 100,000 entries: the real held-out embeddings plus synthetic pieces, 3 versions
   each (a centre plus a real within-piece residual), with two kinds of centres:
   - "between" (the main figures): drawn from the real pieces' spread, the mean of the held-out piece means plus
     Gaussian noise with their standard deviation per dimension - distances to them match those to real
     non-covers (the calibration quantiles are printed);
   - "around" (harder, the first version of this benchmark): a real held-out piece's mean plus that noise, so a
     twentieth of the distractors sit around the query's own piece, nearer than any real other piece;
   memory, file size and load time, stage-1 query time, share of the catalog scored, MAP / top-1 of stage 1,
   recall of the real covers among the top 10 and among the re-ranked candidates, and the re-ranked MAP with
   each synthetic candidate given the CNN probability of a random real non-cover pair (simulated: the synthetic
   entries have no audio) - next to the same simulation for exhaustive CNN scoring of the whole catalog (every
   synthetic entry a random non-cover probability), the figure the target compares with. Speed-up = N x (one
   pair's CNN score) / (stage 1 + rerank x one pair). At the largest size, a sweep of the probed bits.

    .venv/bin/python benchmarks/music_lab/bench_catalog.py [--data build/music_lab/covers] [--json out.json]
        [--weights other.safetensors]   # a model not yet installed (its card beside it), through the engine
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
    from engines.music_lab.cover_embed import CoverEmbedding, CoverEmbeddingEngine, embed_net, sparse_code
    from engines.music_lab.covers import CoverIdEngine, cross_similarity, dmax, pooled_chroma, qmax

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "build/music_lab/covers")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--rerank", type=int, default=50)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--probes", default="2,4,8,16,32", help="probed bits swept at the largest size")
    ap.add_argument("--weights", type=Path, default=None, help="embedding weights to test instead of the installed")
    ap.add_argument("--pairs-cache", type=Path, default=None,
                    help="keep the exhaustive pairwise scores (they do not depend on the embedding) in this .npz "
                         "and reuse them when the held-out clips are the same")
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
    if args.weights:
        from engines.core.weights import WeightsStore, load_state_checked

        tensors, card = WeightsStore.load_file(args.weights, expect_architecture=embedder.architecture)
        net = embed_net(card.arch_args)
        load_state_checked(net, tensors, args.weights.name)
        embedder.attach_network(net, card, "cpu")
    else:
        embedder.load("cpu")
    report["model"] = {"sha256": embedder.card.sha256, "arch_args": embedder.card.arch_args}
    cnn.load("cpu")
    t = time.perf_counter()
    emb_codes = [embedder.embed_pooled(c[1]) for c in clips]
    report["embed_seconds_per_clip"] = round((time.perf_counter() - t) / n, 4)
    emb = np.stack([e[0] for e in emb_codes])
    codes = np.stack([e[1] for e in emb_codes])
    k_s = codes.shape[1]

    # 1. exhaustive pairwise scores (the re-ranker's own call: cross_similarity 'patch' + CoverIdEngine.probability)
    key = json.dumps([f.name for f in files])
    cached = None
    if args.pairs_cache and args.pairs_cache.is_file():
        with np.load(args.pairs_cache, allow_pickle=False) as z:
            if str(z["key"][()]) == key:
                cached = {k: z[k] for k in z.files}
    if cached is not None:
        P, Q, D = cached["P"], cached["Q"], cached["D"]
        pair_t = {k: [float(v)] for k, v in zip(("cnn (matrix + net)", "qmax", "dmax"), cached["seconds"])}
        report["pairs"] = f"reused from {args.pairs_cache}"
    else:
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
                pair_t["qmax"].append(t2 - t1)  # on the same matrix
                pair_t["dmax"].append(t3 - t2)
                P[i, j] = P[j, i] = p
                Q[i, j] = Q[j, i] = q
                D[i, j] = D[j, i] = d
            if (i + 1) % 10 == 0:
                print(f"pairs: query {i + 1}/{n}", flush=True)
        if args.pairs_cache:
            args.pairs_cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.pairs_cache, key=np.array(key), P=P, Q=Q, D=D,
                     seconds=np.array([np.mean(v) for v in pair_t.values()]))
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

    iu = np.triu_indices(n, 1)
    noncover = P[iu][pieces[iu[0]] != pieces[iu[1]]]

    def run_queries(cat, rerank: int, simulate_cnn: bool, probes=None):
        hash_rank, rerank_rank, scored, times, found_r = [], [], [], [], []
        for i in range(n):
            t0 = time.perf_counter()
            found, sc = cat.search(emb[i], codes[i], top=max(args.top, rerank) + 1, probes=probes)
            times.append(time.perf_counter() - t0)
            scored.append(sc)
            order = [m.index for m in found if m.index != i][: max(args.top, rerank)]
            hash_rank.append(np.array(order[: args.top]))
            head, tail = order[:rerank], order[rerank:]
            found_r.append(len(set(head) & relevant[i]) / len(relevant[i]))
            probs = []
            for j in head:
                if j < n:
                    probs.append(P[i, j])
                else:  # a synthetic entry has no audio: a real non-cover pair's probability stands in
                    probs.append(float(rng.choice(noncover)) if simulate_cnn else -np.inf)
            head = [head[k] for k in np.argsort(-np.array(probs), kind="stable")] if head else []
            rerank_rank.append(np.array((head + tail)[: args.top]))
        return hash_rank, rerank_rank, np.array(scored), np.array(times), float(np.mean(found_r))

    real = catalog_of(emb, codes, [f"real/{k}" for k in range(n)])
    held = {"size": n}
    for r in sorted({10, args.rerank}):
        h, rr, sc, tm, _ = run_queries(real, r, False)
        held["hash lookup"] = ranked_metrics(h, relevant)
        held[f"hash + CNN re-rank of {r}"] = ranked_metrics(rr, relevant)
        held["share scored"] = round(float(sc.mean() / n), 4)
    report["held-out catalog"] = held
    print(json.dumps(report, indent=1), flush=True)

    # 3. large catalogs with synthetic pieces
    piece_ids = sorted(set(pieces))
    means = np.stack([emb[pieces == p].mean(0) for p in piece_ids])
    between = means.std(0)
    residuals = np.concatenate([emb[pieces == p] - means[k] for k, p in enumerate(piece_ids)])
    real_nc = np.concatenate([np.abs(emb[pieces != pieces[i]] - emb[i]).sum(1) for i in range(n)])

    def synthetic(extra: int, kind: str) -> np.ndarray:
        n_syn = -(-extra // 3)
        noise = rng.normal(0, 1, (n_syn, emb.shape[1])) * between
        centres = (means[rng.integers(len(means), size=n_syn)] if kind == "around" else means.mean(0)) + noise
        syn = np.repeat(centres, 3, axis=0)[:extra] + residuals[rng.integers(len(residuals), size=extra)]
        return (syn / np.linalg.norm(syn, axis=1, keepdims=True)).astype(np.float32)

    def exhaustive_cnn_map(size: int) -> dict:
        """Exhaustive CNN scoring of the whole catalog, simulated like the re-rank: real pairs keep their CNN
        probability, every synthetic entry draws a random real non-cover probability."""
        aps, top1 = [], []
        for i in range(n):
            draws = np.sort(rng.choice(noncover, size=size - n))
            cover_p = np.sort([P[i, j] for j in relevant[i]])[::-1]
            real_other = P[i, [j for j in range(n) if j != i and j not in relevant[i]]]
            ranks = [int((draws > p).sum() + (real_other > p).sum() + k) for k, p in enumerate(cover_p)]
            aps.append(float(np.mean([(k + 1) / (r + 1) for k, r in enumerate(ranks)])))
            top1.append(float(ranks[0] == 0))
        return {"MAP": round(float(np.mean(aps)), 4), "top1": round(float(np.mean(top1)), 4)}

    scale: dict = {}
    sizes = [int(s) for s in args.sizes.split(",")]
    for kind in ("between", "around"):
        scale[kind] = {}
        for size in sizes:
            extra = size - n
            syn = synthetic(extra, kind)
            all_emb = np.concatenate([emb, syn]).astype(np.float32)
            all_codes = np.concatenate([codes, sparse_code(syn, k_s)])
            t0 = time.perf_counter()
            cat = catalog_of(all_emb, all_codes,
                             [f"real/{k}" for k in range(n)] + [f"synthetic/{k}" for k in range(extra)])
            build_s = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as tmp:
                path = cat.save(Path(tmp) / "catalog.npz")
                t0 = time.perf_counter()
                cat = CoverCatalog.load(path)
                load_s = time.perf_counter() - t0
                file_mb = path.stat().st_size / 1e6
            h, r, sc, tm, found_r = run_queries(cat, args.rerank, True)
            t0 = time.perf_counter()
            full = [np.abs(cat.embeddings[n:].astype(np.float32) - emb[i]).sum(1) for i in range(n)]
            scan_s = (time.perf_counter() - t0) / n
            # the best stage 1 can do: covers among the R nearest of the whole catalog by the full L1
            upper = []
            for i in range(n):
                d_real = np.abs(emb - emb[i]).sum(1)
                for j in relevant[i]:
                    rank = int((full[i] < d_real[j]).sum() + ((d_real < d_real[j]) & (np.arange(n) != i)).sum())
                    upper.append(rank < args.rerank)
            stage1 = float(tm.mean())
            query_s = stage1 + args.rerank * pair_s
            recall = np.mean([len(set(map(int, hr)) & rel) / len(rel) for hr, rel in zip(h, relevant)])
            syn_d = np.concatenate([f[:2000] for f in full])
            scale[kind][str(size)] = {
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
                f"recall of covers among the {args.rerank} re-ranked": round(found_r, 4),
                f"recall among the {args.rerank} nearest by exhaustive full L1": round(float(np.mean(upper)), 4),
                f"hash + CNN re-rank of {args.rerank} (synthetic candidates simulated)": ranked_metrics(r, relevant),
                "exhaustive CNN of the whole catalog (simulated)": exhaustive_cnn_map(size),
                "calibration: distance quantiles 1% / 50%, query -> synthetic vs -> real non-covers":
                    [[round(float(np.quantile(syn_d, q)), 3) for q in (0.01, 0.5)],
                     [round(float(np.quantile(real_nc, q)), 3) for q in (0.01, 0.5)]],
            }
            print(kind, size, json.dumps(scale[kind][str(size)], indent=1), flush=True)
            if size == sizes[-1]:
                sweep = {}
                for probes in [int(v) for v in args.probes.split(",")]:
                    h, r, sc, tm, found_r = run_queries(cat, args.rerank, True, probes=probes)
                    sweep[str(probes)] = {"share_scored": round(float(sc.mean() / size), 4),
                                          "stage1_query_ms": round(float(tm.mean()) * 1000, 2),
                                          f"recall among the {args.rerank} re-ranked": round(found_r, 4),
                                          "re-ranked MAP (sim.)": ranked_metrics(r, relevant)["MAP"]}
                scale[kind][f"probes at {size}"] = sweep
                print(kind, "probes", json.dumps(sweep), flush=True)
    report["scale"] = scale
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
