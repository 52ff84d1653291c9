"""Cover song identification (seed 6.2): chroma -> transposition-corrected cross-similarity -> a small CNN
gives the cover probability; Qmax (Serra et al. 2009) and Dmax (Chen et al. 2017) are the classical peers on
the same matrices. Numpy here; the CNN is in ``CoverCNN`` (torch, imported lazily).

Transposition: ``none``; ``oti`` (one optimal transposition index from the two songs' mean chroma); ``patch``
(the seed's patch-wise correction: the matrix is cut into patches and each patch takes the shift that makes it
most similar, so a modulation half way through a song is followed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.model_engine import ModelEngine

WEIGHTS = "music_lab-cover-cnn"
ARCH = "cover-csm-cnn@1"
POOL = 4  # chroma frames (10.8 / s) averaged into one: about 2.7 frames per second
STACK = 5  # frames stacked for the binary matrix of Qmax/Dmax (about 1.9 s)
PATCH = 16  # patch size (frames) of the patch-wise transposition correction
KAPPA = 0.1  # share of nearest neighbours marked similar in each row and column (binary matrix)
MAX_FRAMES = 1600  # about 10 minutes: longer recordings are compared on their first 10 minutes
TRANSPOSITIONS = ("none", "oti", "patch")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aif", ".aiff", ".mid", ".midi",
                  ".musicxml", ".xml", ".mxl")


# -- features -----------------------------------------------------------------------------------------
def pooled_chroma(chroma: np.ndarray, pool: int = POOL) -> np.ndarray:
    """(frames, 12) -> (frames // pool, 12), each frame scaled to unit length (silence stays zero)."""
    n = max(1, len(chroma) // pool)
    c = chroma[: n * pool].reshape(n, pool, 12).mean(1) if len(chroma) >= pool else chroma.mean(0, keepdims=True)
    c = np.sqrt(np.maximum(c, 0))  # compress the dynamic range a little
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    return np.where(norm > 1e-9, c / np.maximum(norm, 1e-9), 0).astype(np.float32)


def oti(a: np.ndarray, b: np.ndarray) -> int:
    """Optimal transposition index: the shift k (roll b by k) that best matches the two global chroma profiles."""
    ga, gb = a.mean(0), b.mean(0)
    return int(np.argmax([float(ga @ np.roll(gb, k)) for k in range(12)]))


def shifted_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(12, len a, len b) cosine similarity of a's frames with b's frames rolled by k semitones."""
    return np.stack([a @ np.roll(b, k, axis=1).T for k in range(12)])


def stacked(x: np.ndarray, m: int = STACK) -> np.ndarray:
    """Time-delay embedding: each frame with the next m-1 (edge-padded), unit length."""
    pad = np.concatenate([x, np.repeat(x[-1:], m - 1, 0)])
    s = np.concatenate([pad[i:i + len(x)] for i in range(m)], axis=1)
    n = np.linalg.norm(s, axis=1, keepdims=True)
    return s / np.maximum(n, 1e-9)


@dataclass
class CrossSimilarity:
    sim: np.ndarray  # (len a, len b) cosine similarity after the transposition correction, in [0, 1]
    binary: np.ndarray  # (len a, len b) 0/1 mutual nearest neighbours of the stacked features (Qmax/Dmax input)
    shifts: np.ndarray  # (len a, len b) the shift used at each cell
    oti: int
    mode: str


def cross_similarity(a: np.ndarray, b: np.ndarray, mode: str = "patch", patch: int = PATCH,
                     kappa: float = KAPPA) -> CrossSimilarity:
    """Cross-similarity of two pooled chromagrams (frames x 12) with the transposition handled by ``mode``."""
    if mode not in TRANSPOSITIONS:
        raise EngineError(f"transposition must be one of {', '.join(TRANSPOSITIONS)}")
    k0 = oti(a, b)
    sa = stacked(a)
    sims = np.stack([sa @ stacked(np.roll(b, k, axis=1)).T for k in range(12)])  # (12, A, B), stacked cosine
    frame = shifted_similarities(a, b)
    shifts = np.zeros((len(a), len(b)), int)
    if mode == "oti":
        shifts[:] = k0
    elif mode == "patch":
        for i in range(0, len(a), patch):
            for j in range(0, len(b), patch):
                block = sims[:, i:i + patch, j:j + patch]
                # the best shift of a patch: its strongest cells (a path crosses a patch, most cells do not)
                top = np.sort(block.reshape(12, -1), axis=1)[:, -max(1, min(block.shape[1:])):].mean(1)
                top[k0] += 1e-3  # ties go to the global OTI
                shifts[i:i + patch, j:j + patch] = int(np.argmax(top))
    ii, jj = np.indices(shifts.shape)
    sim = np.clip(frame[shifts, ii, jj], 0, 1).astype(np.float32)
    st = sims[shifts, ii, jj]
    dist = np.sqrt(np.maximum(2 - 2 * st, 0))
    row = np.quantile(dist, kappa, axis=1, keepdims=True)
    col = np.quantile(dist, kappa, axis=0, keepdims=True)
    binary = ((dist <= row) & (dist <= col)).astype(np.float32)
    return CrossSimilarity(sim, binary, shifts, k0, mode)


# -- classical peers -----------------------------------------------------------------------------------
def _align(R: np.ndarray, onset: float, extension: float, chen: bool) -> np.ndarray:
    """The local-alignment recursion of Qmax (``chen=False``) or Dmax (``chen=True``), computed one
    anti-diagonal at a time (each cell needs only the two previous diagonals), so numpy does the inner loop."""
    A, B = R.shape
    H = np.zeros((A + 2, B + 2))
    Rp = np.zeros((A + 2, B + 2))
    Rp[2:, 2:] = R
    G = np.where(Rp > 0, onset, extension)  # the penalty for leaving a cell
    for d in range(4, A + B + 3):
        lo, hi = max(2, d - (B + 1)), min(A + 1, d - 2)
        if lo > hi:
            continue
        i = np.arange(lo, hi + 1)
        j = d - i
        c1, c2, c3 = H[i - 1, j - 1], H[i - 2, j - 1], H[i - 1, j - 2]
        if chen:  # the skip steps also collect the cell they jump over
            c2 = c2 + Rp[i - 1, j]
            c3 = c3 + Rp[i, j - 1]
        hit = np.maximum(np.maximum(c1, c2), c3) + 1
        miss = np.maximum.reduce([np.zeros(len(i)), c1 - G[i - 1, j - 1], c2 - G[i - 2, j - 1], c3 - G[i - 1, j - 2]])
        H[i, j] = np.where(Rp[i, j] > 0, hit, miss)
    return H[2:, 2:]


def qmax(binary: np.ndarray, onset: float = 0.5, extension: float = 0.5) -> tuple[float, np.ndarray]:
    """Serra et al. 2009 local alignment on a binary cross-recurrence plot; returns (Qmax, score matrix).
    Disruption penalties as Essentia's defaults (onset 0.5, extension 0.5)."""
    S = _align(np.asarray(binary, dtype=np.float64), float(onset), float(extension), chen=False)
    return float(S.max(initial=0.0)), S


def dmax(binary: np.ndarray, onset: float = 0.5, extension: float = 0.5) -> tuple[float, np.ndarray]:
    """Chen et al. 2017 variant: the two skip steps also collect the cell they jump over, so a path through
    a tempo change keeps its evidence; returns (Dmax, score matrix)."""
    S = _align(np.asarray(binary, dtype=np.float64), float(onset), float(extension), chen=True)
    return float(S.max(initial=0.0)), S


def alignment_path(score: np.ndarray) -> np.ndarray:
    """Back-trace the best local alignment from the maximum cell while the score keeps falling: (n, 2) cells."""
    if score.size == 0 or score.max() <= 0:
        return np.zeros((0, 2), int)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    path = [(i, j)]
    while i > 0 and j > 0 and score[i, j] > 0:
        cands = [(i - 1, j - 1), (i - 2, j - 1), (i - 1, j - 2)]
        cands = [(a, b) for a, b in cands if a >= 0 and b >= 0]
        a, b = max(cands, key=lambda c: score[c])
        if score[a, b] <= 0:
            break
        i, j = a, b
        path.append((i, j))
    return np.array(path[::-1], int)


# -- the CNN input --------------------------------------------------------------------------------------
def cnn_input(cs: CrossSimilarity) -> np.ndarray:
    """(2, A, B): the continuous similarity standardized per matrix (chroma cosines are all high), and the
    binary matrix."""
    z = (cs.sim - cs.sim.mean()) / max(float(cs.sim.std()), 1e-3)
    return np.stack([np.clip(z, -4, 4), cs.binary]).astype(np.float32)


def cnn_net(args: dict):
    import torch
    from torch import nn

    class CoverCNN(nn.Module):
        """A small CNN on the cross-similarity matrix; global max pooling takes any matrix size."""

        def __init__(self, channels: int = 16):
            super().__init__()
            c = channels
            self.features = nn.Sequential(
                nn.Conv2d(2, c, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(4))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * c * 16, 64), nn.ReLU(), nn.Dropout(0.3),
                                      nn.Linear(64, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2, A, B) -> (B,) logits
            return self.head(self.features(x))[:, 0]

    return CoverCNN(**args)


# -- the engine ---------------------------------------------------------------------------------------
@dataclass
class CoverComparison:
    query: str
    reference: str
    probability: float | None
    qmax: float
    dmax: float
    oti: int
    matrix: np.ndarray
    path: np.ndarray
    frame_s: float


@dataclass
class CoverResult:
    query: str
    comparisons: list[CoverComparison]
    transposition: str
    notes: list[str] = field(default_factory=list)
    checks: list = field(default_factory=list)  # engines.core.checks.Check: the inputs that were skipped
    #: {"calibrated": bool, "temperature": T, "best_probability": p}
    scores: dict = field(default_factory=dict)

    @property
    def ranking(self) -> list[CoverComparison]:
        return sorted(self.comparisons, key=lambda c: -(c.probability if c.probability is not None else c.dmax))

    @property
    def best(self) -> CoverComparison:
        return self.ranking[0]


def audio_chroma(path: Path, *, progress: ProgressFn = no_progress, cancel: CancelToken | None = None
                 ) -> tuple[np.ndarray, list[str]]:
    """Audio/MIDI/MusicXML file -> pooled chroma (via the music workspace's loader and log-CQT)."""
    from engines.music.audio import FRAME_S, SR, chroma_from_log_cqt, load_audio, log_cqt

    clip = load_audio(path, SR, progress=progress, cancel=cancel)
    notes = list(clip.notes)
    y = clip.samples
    limit = int(MAX_FRAMES * POOL * FRAME_S * SR)
    if len(y) > limit:
        y = y[:limit]
        notes.append(f"{Path(path).name}: compared on its first {limit / SR / 60:.0f} minutes")
    if float(np.abs(y).max(initial=0)) < 1e-4:
        raise EngineError(f"{Path(path).name}: the recording is silent")
    return pooled_chroma(chroma_from_log_cqt(log_cqt(y))), notes


@dataclass
class CoverInputs:
    query: Path
    query_chroma: np.ndarray
    references: list[Path]
    mode: str
    notes: list[str]


class CoverIdEngine(ModelEngine):
    id = "cover-id"
    weights_name = WEIGHTS
    architecture = ARCH
    model_noun = "the cover CNN"
    fallback_hint = "Qmax and Dmax need no weights: the classical scores are in every comparison."

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Cover song identification (cross-similarity CNN, Qmax, Dmax)", task="cover id",
            workspace="music", inputs="two recordings, or one recording and a folder of recordings "
                                      "(audio, MIDI or MusicXML)",
            outputs="cover probability, Qmax, Dmax, the cross-similarity matrix with its alignment path, a ranking",
            weights=WEIGHTS,
            description="Cover-song identification: chroma -> cross-similarity with key transposition corrected (OTI and patch-wise) "
                        "-> a CNN classifies cover / not cover; Qmax (Serra 2009) and Dmax (Chen 2017) on the same "
                        "matrices. Options: transposition=none|oti|patch.",
            extra={"self_test_out": "covers.json"})

    def build_network(self, card):
        return cnn_net(card.arch_args)

    @property
    def net(self):
        """The network on the current device, None before a load (kept for the catalog's callers)."""
        return self._networks.get(self.device or "") if self.device else None

    def probability(self, cs: CrossSimilarity) -> float:
        """The calibrated cover probability sigmoid(logit / T) of one cross-similarity matrix, on the network's
        device (the CNN runs where the template put it, not always on the CPU)."""
        import torch

        self.ensure_loaded()
        with torch.inference_mode():
            x = torch.from_numpy(cnn_input(cs))[None].to(self.device or "cpu")
            logit = self.forward(x).float().cpu()
        return float(torch.sigmoid(logit / self.temperature)[0])

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> CoverInputs:
        query = request.get("query")
        refs = request.get("references")
        if not query or not refs:
            raise EngineError("give two recordings, or one recording and a folder of recordings")
        mode = str(request.get("transposition", "patch"))
        if mode not in TRANSPOSITIONS:
            raise EngineError(f"transposition must be one of {', '.join(TRANSPOSITIONS)}")
        refs = expand_references(refs, Path(query))
        progress(0.02, f"chroma of {Path(query).name}")
        qa, notes = audio_chroma(Path(query), cancel=cancel)
        return CoverInputs(Path(query), qa, refs, mode, notes)

    def infer(self, inputs: CoverInputs, *, progress: ProgressFn, cancel: CancelToken) -> list[CoverComparison]:
        from engines.music.audio import FRAME_S

        out = []
        refs = inputs.references
        for k, ref in enumerate(refs):
            cancel.raise_if_cancelled()
            progress(0.05 + 0.9 * k / len(refs), f"comparing with {Path(ref).name}")
            try:
                rb, n2 = audio_chroma(Path(ref), cancel=cancel)
            except EngineError as exc:
                if len(refs) == 1:
                    raise
                inputs.notes.append(f"skipped {Path(ref).name}: {exc}")
                continue
            inputs.notes.extend(n2)
            cs = cross_similarity(inputs.query_chroma, rb, inputs.mode)
            q, _ = qmax(cs.binary)
            d, dscore = dmax(cs.binary)
            out.append(CoverComparison(str(inputs.query), str(ref), self.probability(cs), q, d, cs.oti, cs.sim,
                                       alignment_path(dscore), POOL * FRAME_S))
        return out

    def finish(self, outputs: list[CoverComparison], inputs: CoverInputs, request: Mapping[str, Any]) -> CoverResult:
        from engines.core.checks import Check

        if not outputs:
            raise EngineError("none of the references could be read")
        checks = [Check("references", "warned", n) for n in inputs.notes if n.startswith("skipped ")]
        result = CoverResult(str(inputs.query), outputs, inputs.mode, inputs.notes, checks)
        result.scores = {"calibrated": bool((self.card.calibration or {}).get("temperature")),
                         "temperature": round(self.temperature, 4),
                         "best_probability": result.best.probability}
        return result

    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if len(paths) < 2:
            raise EngineError("give two recordings, or one recording and a folder")
        return {"query": str(paths[0]), "references": [str(p) for p in paths[1:]]}

    def write_result(self, result: CoverResult, out: Path) -> list[Path]:
        import json

        from engines.core.atomic import atomic_write_text

        out = Path(out)
        if out.suffix.lower() != ".json":
            raise EngineError(f"cannot write '{out.name}': cover results are written as .json")
        data = {"query": result.query, "transposition": result.transposition, "notes": result.notes,
                "ranking": [{"reference": c.reference, "cover_probability": round(c.probability, 4)
                             if c.probability is not None else None, "qmax": round(c.qmax, 2),
                             "dmax": round(c.dmax, 2), "oti": c.oti, "alignment_frames": len(c.path),
                             "frame_seconds": round(c.frame_s, 4)} for c in result.ranking]}
        atomic_write_text(out, json.dumps(data, indent=1) + "\n")
        written = [out]
        best = result.best
        npz = out.with_suffix(".matrix.npz")
        from engines.core.atomic import atomic_path

        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, matrix=best.matrix, path=best.path, frame_s=best.frame_s)
        written.append(npz)
        return written

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path as bundled_sample

        folder = bundled_sample("music_lab-cover-clips")
        clips = sorted(folder.glob("*.ogg"))
        return [clips[0], folder]


def expand_references(refs: Any, query: Path) -> list[Path]:
    if isinstance(refs, (str, Path)):
        refs = [refs]
    paths: list[Path] = []
    for r in refs:
        p = Path(r)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in AUDIO_SUFFIXES and q.resolve() != query.resolve())
            if not found:
                raise EngineError(f"{p}: the folder holds no audio, MIDI or MusicXML files")
            paths += found
        elif not p.exists():
            raise EngineError(f"{p}: no such file")
        else:
            paths.append(p)
    if len(paths) > 500:
        raise EngineError(f"{len(paths)} references is too many for one comparison (at most 500)")
    return paths
