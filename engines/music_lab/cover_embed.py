"""Cover embeddings with sparse binary hash codes (seed 4 [14], applied to cover identification of seed 6.2).

One recording -> pooled chroma (the cover-id engine's features) -> a small CNN -> an embedding ``f`` (unit
length, ``dim`` values) and its code ``h``: the indices of the ``k_s`` largest values of ``f`` (the binary code
with ``||h||_1 = k_s``). A catalog files each recording under its ``k_s`` active bits (hash buckets); a query
looks only in the buckets of its own active bits and ranks what it finds by the distance the network was
trained with, the L1 distance restricted to the union of the two codes' active dimensions.

Transposition: the CNN's convolutions wrap around the 12 pitch classes and every frame's features are max-pooled
over the 12 rotations before any pooling in time, so transposing a recording, or modulating half way, leaves
its embedding (almost) unchanged - the same idea as the cover CNN's OTI / patch-wise correction.

Numpy and scipy here; torch is imported inside functions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import ModelEngine

WEIGHTS = "music_lab-cover-embed"
ARCH = "cover-embed-cnn@1"
#: the per-recording file the engine writes (and the catalog reads)
ENTRY_FORMAT = "csi-workstation/cover-embedding"
ENTRY_VERSION = 1
MIN_FRAMES = 8  # pooled frames (~3 s): shorter recordings are refused


# -- codes and distances (numpy; the same on the training side in torch) -------------------------------------------
def sparse_code(f: np.ndarray, k: int) -> np.ndarray:
    """The active bits of ``f`` (..., dim): indices of its ``k`` largest values, ascending, int16."""
    f = np.asarray(f)
    idx = np.argpartition(-f, k - 1, axis=-1)[..., :k]
    return np.sort(idx, axis=-1).astype(np.int16)


def masked_l1(q: np.ndarray, q_code: np.ndarray, x: np.ndarray, x_codes: np.ndarray) -> np.ndarray:
    """Distance of a query (dim,) with code (k,) to entries x (n, dim) with codes (n, k): the L1 distance of
    the two embeddings over the union of their active dimensions (seed 4, [14])."""
    n, dim = x.shape
    mask = np.zeros((n, dim), dtype=bool)
    mask[:, np.asarray(q_code, dtype=np.intp)] = True
    mask[np.arange(n)[:, None], np.asarray(x_codes, dtype=np.intp)] = True
    diff = np.abs(x.astype(np.float32) - np.asarray(q, np.float32)[None])
    return (diff * mask).sum(axis=1)


def assign_codes(class_means: np.ndarray, k: int, penalty: float) -> np.ndarray:
    """The training step's discrete problem (seed 4, eq. 5): a code ``z_p`` with ``k`` active bits for each
    class of a mini-batch, minimising ``sum_p -c_p . z_p + penalty * sum_{p != q} z_p . z_q``.

    The pair penalty only depends on how many classes share a bit (``n_j (n_j - 1)``, convex in ``n_j``), so
    the problem is the seed's minimum-cost flow; it is solved exactly as its linear programme, which is totally
    unimodular and so has an integral optimum (scipy's HiGHS). Returns (classes, k) bit indices."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, vstack

    c = np.asarray(class_means, dtype=np.float64)
    n_c, dim = c.shape
    # Exact restriction: a class never needs a bit outside its k * n_c best (among those, one is always free of
    # the other classes' at most k * (n_c - 1) bits and better than anything further down).
    top = np.argsort(-c, axis=1)[:, : min(dim, k * n_c)]
    bits = np.unique(top)
    col = {int(j): i for i, j in enumerate(bits)}
    pairs = [(p, int(j)) for p in range(n_c) for j in top[p]]
    nx, nb = len(pairs), len(bits)
    # variables: x[(p, j)] (class p takes bit j), then y[j, m] (bit j's m-th user, marginal cost 2 * penalty * m)
    cost = np.concatenate([[-c[p, j] for p, j in pairs], np.tile(2.0 * penalty * np.arange(n_c), nb)])
    xi = np.arange(nx)
    each_class = coo_matrix((np.ones(nx), ([p for p, _ in pairs], xi)), shape=(n_c, nx + nb * n_c))
    per_bit = coo_matrix((np.concatenate([np.ones(nx), -np.ones(nb * n_c)]),
                          (np.concatenate([[col[j] for _, j in pairs], np.repeat(np.arange(nb), n_c)]),
                           np.concatenate([xi, nx + np.arange(nb * n_c)]))), shape=(nb, nx + nb * n_c))
    a_eq = vstack([each_class, per_bit]).tocsr()
    b_eq = np.concatenate([np.full(n_c, float(k)), np.zeros(nb)])
    res = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=(0, 1), method="highs")
    if res.status != 0:  # pragma: no cover - the problem is always feasible (k <= dim)
        return sparse_code(c, k)
    x = np.zeros((n_c, dim))
    for (p, j), v in zip(pairs, res.x[:nx]):
        x[p, j] = v
    return np.sort(np.argsort(-x, axis=1, kind="stable")[:, :k], axis=1)


# -- the network -----------------------------------------------------------------------------------------------
def embed_net(args: Mapping[str, Any]):
    import torch
    from torch import nn

    class CoverEmbedCNN(nn.Module):
        """Pooled chroma (B, T, 12) -> unit-length embedding (B, dim). Convolutions wrap around the pitch axis;
        features are max-pooled over the 12 pitch rotations frame by frame (transposition invariance), then
        mean- and max-pooled over time (any length)."""

        def __init__(self, dim: int = 256, channels: int = 16, k_s: int = 2, depth: int = 2,
                     balance: bool = False):
            super().__init__()
            c = channels
            self.k_s = k_s  # kept in the card: how many bits a code has
            # (pitch, time) kernels; stride 2 in time: 2.7 frames/s -> 0.7 /s before the rotation pooling
            self.convs = nn.ModuleList([nn.Conv2d(1, c, (3, 5), stride=(1, 2)),
                                        nn.Conv2d(c, 2 * c, (5, 3), stride=(1, 2))])
            self.norms = nn.ModuleList([nn.BatchNorm2d(c), nn.BatchNorm2d(2 * c)])
            layers: list[nn.Module] = [nn.Conv1d(2 * c, 8 * c, 3, padding=1), nn.ReLU()]
            for i in range(1, depth):  # dilations 2, 4, ...: a wider view of the piece at each layer
                layers += [nn.Conv1d(8 * c, 8 * c, 3, padding=2 ** i, dilation=2 ** i), nn.ReLU()]
            self.temporal = nn.Sequential(*layers)
            self.head = nn.Linear(16 * c, dim)
            # bucket balance: every output value centred and scaled over the training data before the unit
            # length, so that no dimension is among the k_s largest of most recordings (codes spread over bits)
            self.balance = nn.BatchNorm1d(dim, affine=False) if balance else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.transpose(1, 2)[:, None]  # (B, 1, 12, T)
            for conv, norm in zip(self.convs, self.norms):
                kp, kt = conv.kernel_size
                h = torch.cat([h[:, :, 12 - kp // 2:], h, h[:, :, :kp // 2]], dim=2)  # wrap the pitch classes
                h = nn.functional.pad(h, (kt // 2, kt // 2))  # zeros in time
                h = torch.relu(norm(conv(h)))
            h = h.amax(dim=2)  # (B, C, T'): max over the 12 rotations of each frame
            h = self.temporal(h)
            pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
            out = self.head(pooled)
            if self.balance is not None:
                out = self.balance(out)
            return nn.functional.normalize(out, dim=1)

    return CoverEmbedCNN(**dict(args))


# -- the engine ------------------------------------------------------------------------------------------------
@dataclass
class CoverEmbedding:
    """One recording's catalog entry."""

    source: str
    embedding: np.ndarray  # (dim,) float32, unit length
    code: np.ndarray  # (k_s,) int16 active bits
    seconds: float
    sha256: str
    model_sha256: str
    notes: list[str] = field(default_factory=list)
    chroma: np.ndarray | None = None  # pooled chroma, kept so a catalog query can re-rank without decoding audio
    part: str = ""  # the embedding file this was read from


class CoverEmbeddingEngine(ModelEngine):
    """Maps one recording to its embedding and hash code (``csi-workstation batch cover-embedding ...``)."""

    id = "cover-embedding"
    input_key = "recording"
    input_noun = "recording"
    weights_name = WEIGHTS
    architecture = ARCH
    model_noun = "the cover embedding"

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Cover embedding and hash code (catalog entry)", task="cover id", workspace="music",
            inputs="one recording (audio, MIDI or MusicXML)",
            outputs="cover-embedding.npz: the embedding, its sparse binary code and the recording's identity",
            weights=WEIGHTS,
            description="Cover search by deep hashing: chroma -> CNN (pitch-rotation pooled) -> embedding whose "
                        "k_s largest values are its hash buckets; `csi-workstation covers index` assembles a "
                        "catalog, `covers query` looks a song up in it.",
            extra={"self_test_out": "cover-embedding.npz"})

    def build_network(self, card):
        return embed_net(card.arch_args)

    @property
    def net(self):
        """The network on the current device, None before a load (kept for the catalog's callers)."""
        return self._networks.get(self.device or "") if self.device else None

    @property
    def k_s(self) -> int:
        return int(self.card.arch_args.get("k_s", 2))

    def embed_pooled(self, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled chroma (frames, 12) -> (embedding (dim,), code (k_s,)). The training script evaluates
        through this same function."""
        import torch

        self.ensure_loaded()
        if len(pooled) < MIN_FRAMES:
            raise EngineError(f"the recording is too short for a cover embedding (at least "
                              f"{MIN_FRAMES * 0.37:.0f} s of music)")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(pooled, dtype=np.float32))[None].to(self.device or "cpu")
            f = self.forward(x)[0].float().cpu().numpy()
        return f.astype(np.float32), sparse_code(f, self.k_s)

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken):
        from engines.music_lab.covers import audio_chroma

        path = request.get("recording")
        if not path:
            raise EngineError("give one recording (audio, MIDI or MusicXML)")
        path = Path(path)
        check_recording(path)
        progress(0.05, f"chroma of {path.name}")
        pooled, notes = audio_chroma(path, cancel=cancel)
        return path, pooled, notes

    def infer(self, inputs, *, progress: ProgressFn, cancel: CancelToken):
        path, pooled, _ = inputs
        progress(0.8, "embedding")
        try:
            return self.embed_pooled(pooled)
        except EngineError as exc:
            raise EngineError(f"{path.name}: {exc}") from None

    def finish(self, outputs, inputs, request: Mapping[str, Any]) -> CoverEmbedding:
        from engines.core.batch import content_hash
        from engines.music.audio import FRAME_S
        from engines.music_lab.covers import POOL

        (f, code), (path, pooled, notes) = outputs, inputs
        return CoverEmbedding(str(path.resolve()), f, code, round(len(pooled) * POOL * FRAME_S, 2),
                              content_hash(path), self.card.sha256, notes, pooled)

    def write_result(self, result: CoverEmbedding, out: Path) -> list[Path]:
        from engines.core.atomic import atomic_path

        out = Path(out)
        if out.suffix.lower() != ".npz":
            raise EngineError(f"cannot write '{out.name}': cover embeddings are written as .npz")
        meta = {"format": ENTRY_FORMAT, "version": ENTRY_VERSION, "source": result.source,
                "sha256": result.sha256, "seconds": result.seconds, "model": WEIGHTS,
                "model_sha256": result.model_sha256, "notes": result.notes}
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                extra = {} if result.chroma is None else {"chroma": result.chroma.astype(np.float16)}
                np.savez(fh, embedding=result.embedding.astype(np.float16), code=result.code.astype(np.int16),
                         meta=np.array(json.dumps(meta)), **extra)
        return [out]

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path as bundled_sample

        return sorted(bundled_sample("music_lab-cover-clips").glob("*.ogg"))[:1]


def check_recording(path: Path) -> None:
    """One plain sentence when ``path`` is not something the cover engines can hear."""
    from engines.core.filetypes import classify

    kind = classify(path)
    if kind == "missing":
        raise EngineError(f"{path}: no such file")
    if kind == "empty":
        raise EngineError(f"{path.name}: the file is empty")
    if kind not in ("audio", "midi", "score"):
        raise EngineError(f"{path.name} is not a recording (audio, MIDI or MusicXML); it looks like "
                          f"{'a folder' if path.is_dir() else 'a ' + kind + ' file'}")


def read_entry(path: str | Path, with_chroma: bool = False) -> CoverEmbedding:
    """Read a file written by :meth:`CoverEmbeddingEngine.write_result`; EngineError naming the file if not."""
    path = Path(path)
    chroma = None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            f, code = np.asarray(z["embedding"], np.float32), np.asarray(z["code"], np.int16)
            if with_chroma and "chroma" in z.files:
                chroma = np.asarray(z["chroma"], np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(f"{path.name} is not a cover-embedding file ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != ENTRY_FORMAT:
        raise EngineError(f"{path.name} is not a cover-embedding file")
    if int(meta.get("version", 0)) > ENTRY_VERSION:
        raise EngineError(f"{path.name} was written by a newer version of the workstation")
    if f.ndim != 1 or code.ndim != 1 or not np.all(np.isfinite(f)):
        raise EngineError(f"{path.name}: the embedding is damaged")
    return CoverEmbedding(str(meta.get("source", "")), f, code, float(meta.get("seconds", 0.0)),
                          str(meta.get("sha256", "")), str(meta.get("model_sha256", "")), list(meta.get("notes", [])),
                          chroma, str(path.resolve()))


def embed_many(engine: CoverEmbeddingEngine, pooled: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (n, dim) and codes (n, k_s) of several pooled chromagrams, through ``embed_pooled``."""
    out = [engine.embed_pooled(p) for p in pooled]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
