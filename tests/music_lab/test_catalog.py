"""Cover catalog: sparse codes and the union-masked distance, the exact code assignment of the training step,
the catalog file (round trip, hash-table lookup that scores only a part of the catalog, foreign/damaged/newer
files refused in one sentence), the embedding engine on the bundled held-out clips (a version nearer than a
different piece, transposition invariance), and `csi-workstation covers index/query` end to end."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from engines.core.engine import EngineError
from engines.music_lab.catalog import CatalogError, CoverCatalog, query_catalog
from engines.music_lab.cover_embed import (CoverEmbedding, CoverEmbeddingEngine, assign_codes, masked_l1,
                                           read_entry, sparse_code)

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
CLIPS = Path(__file__).resolve().parents[2] / "resources/samples/music_lab/covers"
A, B_VERSION, OTHER = CLIPS / "bwv423-a.ogg", CLIPS / "bwv423-b-version.ogg", CLIPS / "bwv47.5-other-piece.ogg"


def test_sparse_code_and_union_masked_distance():
    f = np.array([0.1, 0.9, -0.2, 0.5, 0.3])
    assert sparse_code(f, 2).tolist() == [1, 3]
    q, qc = f, sparse_code(f, 2)
    x = np.array([[0.1, 0.2, 0.0, 0.5, 0.9], [0.0, 0.9, 0.0, 0.5, 0.0]])
    xc = sparse_code(x, 2)
    assert xc.tolist() == [[3, 4], [1, 3]]
    # union of {1, 3} and {3, 4} = {1, 3, 4}: |0.9-0.2| + |0.5-0.5| + |0.3-0.9|
    assert masked_l1(q, qc, x, xc) == pytest.approx([0.7 + 0.0 + 0.6, 0.0 + 0.0])


def test_code_assignment_is_the_exact_optimum():
    rng = np.random.default_rng(3)
    means, k, penalty = rng.random((3, 6)), 2, 0.3

    def objective(codes):
        counts = np.zeros(6)
        for c in codes:
            counts[list(c)] += 1
        return -sum(means[p, list(c)].sum() for p, c in enumerate(codes)) + penalty * (counts * (counts - 1)).sum()

    best = min(itertools.product(itertools.combinations(range(6), k), repeat=3), key=objective)
    got = assign_codes(means, k, penalty)
    assert objective([tuple(c) for c in got]) == pytest.approx(objective(best))
    # four classes with the same mean: without a penalty they share the best bits, with a large one they split
    same = np.tile(rng.random((1, 32)), (4, 1))
    assert len({tuple(c) for c in assign_codes(same, 2, 0.0)}) == 1
    assert len(set(assign_codes(same, 2, 10.0).ravel().tolist())) == 8


def _clustered(n_pieces: int, versions: int, dim: int = 64, k: int = 2, seed: int = 0):
    """Unit embeddings in clusters, one per piece, each piece peaked on its own bits."""
    rng = np.random.default_rng(seed)
    items, pieces = [], []
    for p in range(n_pieces):
        centre = rng.normal(0, 0.05, dim)
        centre[rng.choice(dim, k, replace=False)] += 1.0
        for v in range(versions):
            f = centre + rng.normal(0, 0.02, dim)
            f /= np.linalg.norm(f)
            items.append(CoverEmbedding(f"/nowhere/piece{p}_v{v}.wav", f.astype(np.float32), sparse_code(f, k),
                                        30.0, f"sha{p}{v}", "model-sha"))
            pieces.append(p)
    return items, np.array(pieces)


def test_catalog_round_trip_and_lookup_scores_only_its_buckets(tmp_path):
    items, pieces = _clustered(40, 3)
    catalog = CoverCatalog.from_entries(items, {"name": "test", "sha256": "model-sha", "k_s": 2, "dim": 64})
    path = catalog.save(tmp_path / "cat.npz")
    back = CoverCatalog.load(path)
    assert len(back) == 120 and back.k_s == 2 and back.dim == 64
    assert back.entries[5]["path"] == items[5].source
    np.testing.assert_allclose(back.embeddings.astype(np.float32), np.stack([i.embedding for i in items]),
                               atol=1e-3)
    hits = 0
    for i in range(0, 120, 7):
        matches, scored = back.search(items[i].embedding, items[i].code, top=3, probes=2)
        assert scored < len(back) / 4  # only the query's buckets were read
        assert matches[0].index == i and matches[0].distance == pytest.approx(0, abs=1e-2)
        hits += sum(pieces[m.index] == pieces[i] for m in matches[1:])
    assert hits >= 0.9 * 2 * len(range(0, 120, 7))
    # a query whose bits nobody has still gets candidates (the buckets of its next-largest values)
    lone = np.zeros(64, np.float32)
    lone[[0, 1]] = 0.7
    empty_bits = [b for b in range(64) if len(back.bucket(b)) == 0]
    if len(empty_bits) >= 2:
        lone = np.zeros(64, np.float32)
        lone[empty_bits[:2]] = 0.9
        lone[items[0].code] = 0.3
        matches, scored = back.search(lone, sparse_code(lone, 2), top=2)
        assert len(matches) == 2 and scored >= 2


def test_files_that_are_not_catalogs_get_one_sentence(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not an archive\n")
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, manifest=np.array(json.dumps({"format": "someone-else/index", "version": 1})))
    bare = tmp_path / "bare.npy"
    np.save(bare, np.zeros(3))
    items, _ = _clustered(3, 2)
    newer = CoverCatalog.from_entries(items, {"sha256": "model-sha"}).save(tmp_path / "newer.npz")
    with np.load(newer) as z:
        parts = {k: z[k] for k in z.files}
    manifest = json.loads(str(parts["manifest"][()]))
    manifest["version"] = 99
    parts["manifest"] = np.array(json.dumps(manifest))
    np.savez(newer, **parts)
    damaged = tmp_path / "damaged.npz"
    parts["manifest"] = np.array(json.dumps(dict(manifest, version=1)))
    parts["codes"] = np.full_like(parts["codes"], 500)  # bits beyond the embedding
    np.savez(damaged, **parts)
    for path, words in ((text, "not an .npz archive"), (other, "no manifest"), (foreign, "not a cover catalog"),
                        (bare, "not a cover catalog"), (newer, "newer version"), (damaged, "outside"),
                        (tmp_path / "missing.npz", "no such")):
        with pytest.raises(CatalogError) as err:
            CoverCatalog.load(path)
        message = str(err.value)
        assert path.name in message and words in message and "\n" not in message


@pytest.fixture(scope="module")
def embedder():
    e = CoverEmbeddingEngine()
    e.load("cpu")
    return e


def test_engine_puts_a_version_nearer_than_another_piece_and_ignores_transposition(embedder, tmp_path):
    from engines.music_lab.covers import audio_chroma

    results = {p.name: embedder.predict({"recording": p}) for p in (A, B_VERSION, OTHER)}
    a, b, o = results[A.name], results[B_VERSION.name], results[OTHER.name]
    assert len(a.code) == embedder.k_s and np.linalg.norm(a.embedding) == pytest.approx(1, abs=1e-4)
    # the full embedding (stage 1's ranking) puts the version nearer; its code is not the query's own (these
    # are 15 s excerpts), but one of its bits is among the query's next-largest values: multi-probe finds it
    assert np.abs(a.embedding - b.embedding).sum() < np.abs(a.embedding - o.embedding).sum()
    assert float(a.embedding @ b.embedding) > float(a.embedding @ o.embedding)
    probed = set(np.argsort(-a.embedding, kind="stable")[:8].tolist())  # the catalog's default probes here
    assert set(a.code.tolist()) <= probed and set(b.code.tolist()) & probed
    pooled, _ = audio_chroma(A)
    up5, code5 = embedder.embed_pooled(np.roll(pooled, 5, axis=1))
    np.testing.assert_allclose(up5, a.embedding, atol=1e-5)
    assert code5.tolist() == a.code.tolist()
    out = embedder.write_result(a, tmp_path / "a.npz")
    back = read_entry(out[0])
    assert back.source == str(A.resolve()) and back.code.tolist() == a.code.tolist()
    assert back.model_sha256 == embedder.card.sha256
    with pytest.raises(EngineError, match="not a cover-embedding file"):
        read_entry(CLIPS / A.name)


def test_query_through_the_catalog_reranks_with_the_cnn(embedder, tmp_path):
    items = [embedder.predict({"recording": p}) for p in (A, B_VERSION, OTHER)]
    catalog = CoverCatalog.from_entries(items, {"sha256": embedder.card.sha256, "k_s": embedder.k_s})
    r = query_catalog(catalog, A, top=3, rerank=3, embedder=embedder)
    names = [Path(m.path).name for m in r.matches]
    assert names[0] == A.name and r.matches[0].probability == 1.0
    ranked = [m for m in r.matches if m.probability is not None]
    if OTHER.name in [Path(m.path).name for m in ranked]:
        assert names.index(B_VERSION.name) < names.index(OTHER.name)
    assert r.reranked == len(ranked) >= 2
    stale = CoverCatalog(catalog.embeddings, catalog.codes, catalog.entries, {"sha256": "another-model"})
    with pytest.raises(CatalogError, match="other cover-embedding weights"):
        query_catalog(stale, A, embedder=embedder, catalog_name="stale.npz")


def test_cli_index_then_query_and_bad_input(tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "clips.npz"
    assert main(["covers", "index", str(CLIPS), "--out", str(out), "--workers", "1"]) == 0
    assert "3 recordings indexed" in capsys.readouterr().out
    assert main(["covers", "query", str(out), str(A), "--top", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["size"] == 3 and Path(data["matches"][0]["path"]).name == A.name

    not_audio = tmp_path / "song.txt"
    not_audio.write_text("la la la\n")
    fake_wav = tmp_path / "song.wav"
    fake_wav.write_text("la la la\n")
    not_ours = tmp_path / "index.npz"
    np.savez(not_ours, vectors=np.zeros((2, 4)))
    for argv, words in ((["covers", "query", str(out), str(not_audio)], "song.txt is not a recording"),
                        (["covers", "query", str(out), str(fake_wav)], "song.wav"),
                        (["covers", "query", str(not_ours), str(A)], "index.npz is not a cover catalog")):
        assert main(argv) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


def test_multi_probe_reads_the_next_largest_bits_and_ranks_by_the_full_distance():
    dim = 16
    rng = np.random.default_rng(5)
    rows = np.abs(rng.normal(0, 0.05, (40, dim)))
    rows[np.arange(40), np.arange(40) % dim] += 1.0  # entry k peaks on bit k % 16 (and a random second bit)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    items = [CoverEmbedding(f"/x/{k}.wav", r.astype(np.float32), sparse_code(r, 2), 1.0, f"s{k}", "m")
             for k, r in enumerate(rows)]
    catalog = CoverCatalog.from_entries(items, {"sha256": "m", "k_s": 2, "dim": dim})
    q = np.zeros(dim, np.float32)
    q[[3, 7, 11]] = [0.8, 0.5, 0.3]
    q /= np.linalg.norm(q)
    code = sparse_code(q, 2)
    assert code.tolist() == [3, 7]
    own = set(catalog.bucket(3).tolist()) | set(catalog.bucket(7).tolist())
    assert set(catalog.candidates(q, code, probes=2).tolist()) == own
    wider = set(catalog.candidates(q, code, probes=3).tolist())
    assert wider == own | set(catalog.bucket(11).tolist()) and len(wider) > len(own)
    matches, scored = catalog.search(q, code, top=5, probes=3)
    assert scored == len(wider)
    full = np.abs(rows[sorted(wider)] - q).sum(1)
    assert [m.index for m in matches] == [sorted(wider)[i] for i in np.argsort(full, kind="stable")[:5]]
    assert matches[0].distance == pytest.approx(full.min(), abs=1e-2)
    masked = CoverCatalog(catalog.embeddings, catalog.codes, catalog.entries, catalog.model)
    masked.ranking = "masked"
    got, _ = masked.search(q, code, top=3, probes=3)
    d = masked_l1(q, code, masked.embeddings[sorted(wider)], masked.codes[sorted(wider)])
    assert got[0].distance == pytest.approx(float(d.min()), abs=1e-3)


def test_balanced_network_stays_transposition_invariant_and_the_shipped_layout_is_unchanged():
    import torch

    from engines.core.weights import WeightsStore
    from engines.music_lab.cover_embed import WEIGHTS, embed_net

    torch.manual_seed(0)
    net = embed_net({"dim": 32, "channels": 4, "k_s": 2, "depth": 3, "balance": True}).eval()
    x = torch.rand(2, 40, 12)
    with torch.no_grad():
        a, b = net(x), net(torch.roll(x, 7, dims=2))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert torch.linalg.norm(a, dim=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert "balance.running_mean" in net.state_dict() and "temporal.4.weight" in net.state_dict()
    # without depth / balance the network is the one of the shipped card's arguments, tensor for tensor
    tensors, card = WeightsStore.default().load(WEIGHTS)
    plain = embed_net(card.arch_args).state_dict()
    assert {k: tuple(v.shape) for k, v in plain.items()} == {k: tuple(v.shape) for k, v in tensors.items()}


def test_training_terms_contrastive_spread_and_balance_calibration():
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts/music_lab"))
    from train_cover_embedding import bucket_stats, calibrate_balance, contrastive, spread_loss

    from engines.music_lab.cover_embed import embed_net

    labels = torch.tensor([0, 0, 1, 1])
    near = torch.tensor([[0.0, 1.0, 9.0, 9.0], [1.0, 0.0, 9.0, 9.0], [9.0, 9.0, 0.0, 1.0], [9.0, 9.0, 1.0, 0.0]])
    far = near.clone()
    far[0, 1] = far[1, 0] = far[2, 3] = far[3, 2] = 12.0
    assert float(contrastive(near, labels, 1.0)) < 0.01 < float(contrastive(far, labels, 1.0))
    even = torch.eye(8)  # every bit the largest value of one row: perfectly balanced
    assert float(spread_loss(even, 50.0)) == pytest.approx(0.0, abs=1e-3)
    assert float(spread_loss(torch.eye(8)[[0] * 8], 50.0)) > 1.0
    assert bucket_stats(np.array([[0, 1], [0, 2]]), 4) == {"largest_bucket_share": 1.0, "bits_used": 3,
                                                           "perplexity": pytest.approx(2.8, abs=0.05)}
    torch.manual_seed(1)
    net = embed_net({"dim": 16, "channels": 4, "k_s": 2, "depth": 2, "balance": True})
    clips = [np.random.default_rng(k).random((30 + k, 12)) for k in range(12)]
    calibrate_balance(net, clips)
    assert not net.training
    with torch.no_grad():
        raw = []
        hook = net.head.register_forward_hook(lambda _m, _i, o: raw.append(o))
        for c in clips:
            net(torch.from_numpy(c.astype(np.float32))[None])
        hook.remove()
    z = (torch.cat(raw) - net.balance.running_mean) / net.balance.running_var.sqrt()
    torch.testing.assert_close(z.mean(0), torch.zeros(16), atol=1e-4, rtol=0)


def test_the_rerank_stops_at_its_budget_after_the_minimum(embedder):
    from engines.music_lab.catalog import MIN_RERANK

    items = [embedder.predict({"recording": p}) for p in (A, B_VERSION, OTHER)] * 5  # 15 entries with audio
    catalog = CoverCatalog.from_entries(items, {"sha256": embedder.card.sha256, "k_s": embedder.k_s})
    r = query_catalog(catalog, A, top=15, rerank=15, budget_s=0.0, embedder=embedder)
    assert r.reranked == MIN_RERANK and any("within the 0 s budget" in n for n in r.notes)
    full = query_catalog(catalog, A, top=15, rerank=15, budget_s=None, embedder=embedder)
    assert full.reranked == 15 and not any("budget" in n for n in full.notes)
