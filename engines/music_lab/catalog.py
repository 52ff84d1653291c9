"""A cover catalog: many recordings' cover embeddings in one file, searched through hash tables (seed 4 [14]).

The file is one ``.npz`` (written atomically, read without pickles) holding

- ``manifest``: JSON with the format tag ``csi-workstation/cover-catalog``, its version, and the model that made
  the embeddings (name, SHA-256 of its weights, k_s, dimension) - a catalog is only searched with that model;
- ``entries``: JSON list, one ``{"path", "sha256", "seconds"}`` per recording;
- ``embeddings``: (n, dim) float16; ``codes``: (n, k_s) int16, the active bits.

Search is two-stage. Stage 1 (here, numpy): the hash table maps each bit to the entries that have it; a query
reads the buckets of its own active bits and of its next-largest values (multi-probe: about ``probe_share`` of
a balanced catalog, more when that finds too few) and ranks those candidates by the full L1 distance of the
embeddings (``ranking = "masked"``: the L1 over the union of the two codes' active dimensions of [14]); the
catalog's other entries are never touched. Stage 2 (:func:`query_catalog`): the cross-similarity CNN of the
cover-id engine re-scores the best candidates whose audio is still where it was indexed, as many as fit in a
time budget.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engines.core.model_engine import as_token
from engines.core.engine import CancelToken, EngineError, ProgressFn, no_progress
from engines.music_lab.cover_embed import CoverEmbedding, masked_l1

CATALOG_FORMAT = "csi-workstation/cover-catalog"
#: 2: the embeddings are those of the balanced cover-embedding model (version 2 weights); stage 1 ranks by the
#: full L1. A catalog of other weights is refused anyway (check_model); version 1 files still load.
CATALOG_VERSION = 2


class CatalogError(EngineError):
    """A catalog file that cannot be used; the message names the file and the problem."""


@dataclass
class Candidate:
    index: int
    path: str
    distance: float
    probability: float | None = None  # the CNN's cover probability after stage 2, when it ran


@dataclass
class QueryResult:
    query: str
    matches: list[Candidate]
    scored: int  # entries whose distance stage 1 computed (the rest of the catalog was not touched)
    size: int
    reranked: int
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class CoverCatalog:
    """Embeddings, codes and the hash table over them. Build with :meth:`from_entries`, read with :meth:`load`."""

    def __init__(self, embeddings: np.ndarray, codes: np.ndarray, entries: list[dict[str, Any]],
                 model: dict[str, Any]) -> None:
        self.embeddings = np.asarray(embeddings, dtype=np.float16)
        self.codes = np.asarray(codes, dtype=np.int16)
        self.entries = entries
        self.model = dict(model)
        n, dim = self.embeddings.shape
        if self.codes.shape[0] != n or len(entries) != n:
            raise CatalogError("the catalog's embeddings, codes and entries differ in number")
        if self.codes.size and (self.codes.min() < 0 or self.codes.max() >= dim):
            raise CatalogError("the catalog's codes point outside its embeddings")
        # the hash table: entries sorted by bit; bucket j is order[starts[j]:starts[j + 1]]
        flat = self.codes.ravel().astype(np.int64)
        by_bit = np.argsort(flat, kind="stable")
        self._order = (by_bit // max(1, self.codes.shape[1])).astype(np.int32)
        self._starts = np.searchsorted(flat[by_bit], np.arange(dim + 1))

    # -- size ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def k_s(self) -> int:
        return int(self.codes.shape[1])

    def memory_bytes(self) -> int:
        """Bytes of the arrays a search needs (embeddings, codes, hash table)."""
        return int(self.embeddings.nbytes + self.codes.nbytes + self._order.nbytes + self._starts.nbytes)

    def bucket(self, bit: int) -> np.ndarray:
        return self._order[self._starts[bit]:self._starts[bit + 1]]

    # -- build, save, load --------------------------------------------------------------------------------
    @classmethod
    def from_entries(cls, items: Sequence[CoverEmbedding], model: dict[str, Any]) -> "CoverCatalog":
        if not items:
            raise CatalogError("no recordings to put in the catalog")
        sizes = {len(i.embedding) for i in items} | {int(model.get("dim", len(items[0].embedding)))}
        if len(sizes) != 1:
            raise CatalogError("the embeddings were made by different models (their sizes differ)")
        shas = {i.model_sha256 for i in items}
        if len(shas) != 1 or (model.get("sha256") and shas != {model["sha256"]}):
            raise CatalogError("the embeddings were made with different cover-embedding weights; re-run the "
                               "index so that all are made by the installed model")
        entries = [{"path": i.source, "sha256": i.sha256, "seconds": i.seconds, "part": i.part} for i in items]
        return cls(np.stack([i.embedding for i in items]), np.stack([i.code for i in items]), entries, model)

    def save(self, path: str | Path) -> Path:
        from engines.core.atomic import atomic_path

        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise CatalogError(f"cannot write '{path.name}': a cover catalog is written as .npz")
        manifest = {"format": CATALOG_FORMAT, "version": CATALOG_VERSION, "model": self.model,
                    "count": len(self), "dim": self.dim, "k_s": self.k_s,
                    "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, manifest=np.array(json.dumps(manifest)), entries=np.array(json.dumps(self.entries)),
                         embeddings=self.embeddings, codes=self.codes)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CoverCatalog":
        """Read a catalog; a file that is not one of ours, damaged or newer raises one CatalogError sentence."""
        import zipfile

        path = Path(path)
        if not path.exists():
            raise CatalogError(f"{path}: no such catalog file")
        if path.is_dir():
            raise CatalogError(f"{path} is a folder, not a cover catalog file (.npz)")
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise CatalogError(f"{path.name} is not a cover catalog of this workstation (a bare array)")
            with z:
                if "manifest" not in z.files:
                    raise CatalogError(f"{path.name} is not a cover catalog of this workstation (no manifest)")
                manifest = json.loads(str(z["manifest"][()]))
                if not isinstance(manifest, dict) or manifest.get("format") != CATALOG_FORMAT:
                    raise CatalogError(f"{path.name} is not a cover catalog of this workstation")
                version = manifest.get("version")
                if not isinstance(version, int) or version > CATALOG_VERSION:
                    raise CatalogError(f"{path.name} was written by a newer version of the workstation (catalog "
                                       f"format {version}; this one reads up to {CATALOG_VERSION})")
                entries = json.loads(str(z["entries"][()]))
                embeddings, codes = z["embeddings"], z["codes"]
        except CatalogError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            if isinstance(exc, ValueError) and not path.read_bytes()[:4].startswith(b"PK"):
                raise CatalogError(f"{path.name} is not a cover catalog (not an .npz archive)") from None
            raise CatalogError(f"{path.name} is not a usable cover catalog ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None
        if (embeddings.ndim != 2 or codes.ndim != 2 or not isinstance(entries, list)
                or not np.issubdtype(codes.dtype, np.integer)):
            raise CatalogError(f"{path.name}: the catalog is damaged (its arrays have the wrong shape)")
        try:
            return cls(embeddings, codes, entries, manifest.get("model") or {})
        except CatalogError as exc:
            raise CatalogError(f"{path.name}: {exc}") from None

    # -- stage 1 ------------------------------------------------------------------------------------------
    def candidates(self, query: np.ndarray, code: np.ndarray, want: int = 1, probes: int | None = None) -> np.ndarray:
        """Entries in the buckets of the query's active bits and of its next-largest values (multi-probe):
        ``probes`` bits in all (at least the code's), and more, one bit at a time, while fewer than ``want``
        entries were found."""
        query = np.asarray(query, np.float32)
        own = [int(b) for b in code]
        rest = [int(b) for b in np.argsort(-query, kind="stable") if int(b) not in set(own)]
        order = own + rest
        n_probes = probes if probes is not None else round(self.dim * self.probe_share / max(1, self.k_s))
        k = max(len(own), min(int(n_probes), len(order)))
        parts = [self.bucket(b) for b in order[:k]] or [np.zeros(0, np.int32)]
        found = np.unique(np.concatenate(parts))
        while len(found) < min(want, len(self)) and k < len(order):
            total = len(found)
            while k < len(order) and total < want:  # enough raw entries first, then count each once
                parts.append(self.bucket(order[k]))
                total += len(parts[-1])
                k += 1
            found = np.unique(np.concatenate(parts))
        return found

    #: the share of a balanced catalog a query reads by default: probes = probe_share x dim / k_s bits (the
    #: code's own and the next-largest values), each bucket holding about k_s / dim of the entries: 8 bits of
    #: the shipped model (256 values, k_s = 2); real catalogs' buckets are less even, so more is read (about a
    #: quarter of the synthetic 100,000-entry catalog: docs/music_lab.md section 4, the probe sweep)
    probe_share = 1 / 16

    def distances(self, query: np.ndarray, code: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Stage 1's ranking distance of the query to entries ``idx``: the full L1 distance of the embeddings
        (the network's dense training term); ``ranking = "masked"`` uses the union-masked L1 of [14]."""
        if self.ranking == "masked":
            return masked_l1(query, code, self.embeddings[idx], self.codes[idx])
        return np.abs(self.embeddings[idx].astype(np.float32) - np.asarray(query, np.float32)[None]).sum(axis=1)

    ranking = "full"

    def search(self, query: np.ndarray, code: np.ndarray, top: int = 10,
               probes: int | None = None) -> tuple[list[Candidate], int]:
        """Stage 1: (the ``top`` nearest candidates, how many entries were scored)."""
        if len(query) != self.dim:
            raise CatalogError(f"the query embedding has {len(query)} values, the catalog {self.dim}")
        idx = self.candidates(query, code, want=top, probes=probes)
        if len(idx) == 0:
            return [], 0
        d = self.distances(query, code, idx)
        keep = np.argsort(d, kind="stable")[:top]
        return [Candidate(int(idx[i]), str(self.entries[int(idx[i])].get("path", "")), float(d[i])) for i in keep], \
            len(idx)


def check_model(catalog: CoverCatalog, name: str, card) -> None:
    """The installed embedding weights must be those the catalog was built with."""
    sha = catalog.model.get("sha256")
    if sha and sha != card.sha256:
        raise CatalogError(f"{name} was built with other cover-embedding weights than the installed ones; "
                           f"rebuild it with 'csi-workstation covers index'")


def stored_chroma(entry: dict[str, Any]) -> np.ndarray | None:
    """The pooled chroma kept in the entry's embedding file, when that file is still there and was made from
    the same bytes; None means: decode the audio."""
    from engines.music_lab.cover_embed import read_entry

    part = entry.get("part")
    if not part or not Path(part).is_file():
        return None
    try:
        stored = read_entry(part, with_chroma=True)
    except EngineError:
        return None
    return stored.chroma if stored.sha256 == entry.get("sha256") else None


#: re-ranking stops when the next CNN pair would take the lookup and re-rank past this many seconds (after at
#: least MIN_RERANK pairs): 50 pairs from stored chroma fit (about 0.014 s a pair on one thread)
RERANK_BUDGET_S = 1.0
MIN_RERANK = 10


def query_catalog(catalog: CoverCatalog, song: str | Path, *, top: int = 10, rerank: int = 50,
                  budget_s: float | None = RERANK_BUDGET_S, catalog_name: str = "the catalog", embedder=None,
                  cover_engine=None, progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None) -> QueryResult:
    """Find the covers of ``song`` in ``catalog``: stage 1 hash lookup, stage 2 the cross-similarity CNN on the
    ``rerank`` nearest candidates whose audio still exists (re-scored ones first, by cover probability). The
    number re-ranked adapts to ``budget_s``: at least MIN_RERANK, then as many as fit in the budget (candidates
    whose audio must be decoded cost more than those with stored chroma); None re-ranks all ``rerank``."""
    from engines.music_lab.cover_embed import CoverEmbeddingEngine, check_recording
    from engines.music_lab.covers import CoverIdEngine, audio_chroma, cross_similarity

    cancel = as_token(cancel)
    song = Path(song)
    t0 = time.perf_counter()
    embedder = embedder or CoverEmbeddingEngine()
    embedder.ensure_loaded()  # on the resolved device before any load (the card is needed below)
    check_model(catalog, catalog_name, embedder.card)
    check_recording(song)
    progress(0.05, f"chroma of {song.name}")
    pooled, notes = audio_chroma(song, cancel=cancel)
    try:
        f, code = embedder.embed_pooled(pooled)
    except EngineError as exc:
        raise EngineError(f"{song.name}: {exc}") from None
    t1 = time.perf_counter()
    matches, scored = catalog.search(f, code, top=max(top, rerank))
    t2 = time.perf_counter()
    reranked = 0
    if rerank > 0 and matches:
        cover_engine = cover_engine or CoverIdEngine()
        cover_engine.ensure_loaded()
        missing, spent = 0, []
        for k, m in enumerate(matches[:rerank]):
            cancel.raise_if_cancelled()
            if budget_s is not None and k >= MIN_RERANK and spent and \
                    time.perf_counter() - t1 + float(np.mean(spent)) > budget_s:
                notes.append(f"{k} of the {min(rerank, len(matches))} best candidates re-ranked within the "
                             f"{budget_s:g} s budget")
                break
            tp = time.perf_counter()
            progress(0.3 + 0.65 * k / max(1, min(rerank, len(matches))), f"re-ranking {Path(m.path).name}")
            if not m.path or not Path(m.path).is_file():
                missing += 1
                continue
            if Path(m.path).resolve() == song.resolve():
                m.probability = 1.0
            else:
                try:
                    other = stored_chroma(catalog.entries[m.index])
                    if other is None:
                        other, _ = audio_chroma(Path(m.path), cancel=cancel)
                except EngineError as exc:
                    notes.append(f"not re-ranked: {exc}")
                    continue
                m.probability = cover_engine.probability(cross_similarity(pooled, other, "patch"))
                spent.append(time.perf_counter() - tp)
            reranked += 1
        if missing:
            notes.append(f"{missing} of the {min(rerank, len(matches))} best candidates were not re-ranked: their "
                         f"audio is no longer where it was indexed")
        scored_first = sorted((m for m in matches if m.probability is not None), key=lambda m: -m.probability)
        matches = scored_first + [m for m in matches if m.probability is None]
    t3 = time.perf_counter()
    progress(1.0, "done")
    return QueryResult(str(song), matches[:top], scored, len(catalog), reranked,
                       {"embed": round(t1 - t0, 4), "lookup": round(t2 - t1, 4), "rerank": round(t3 - t2, 4)},
                       notes)
