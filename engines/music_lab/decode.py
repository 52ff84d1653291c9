"""Sequence decoding over 24 chord classes, numpy only: the HMM baseline (transition x melody emission,
Viterbi), and constrained decoding / sampling around locked chords for the networks' per-bar distributions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

N_CLASSES = 24


@dataclass
class ChordHMM:
    """First-order HMM: log initial, log transition (24x24) and a multinomial pitch-class emission per chord."""

    log_init: np.ndarray  # (24,)
    log_trans: np.ndarray  # (24, 24) from -> to
    log_emit: np.ndarray  # (24, 12)

    @classmethod
    def fit(cls, sequences: Sequence[tuple[np.ndarray, np.ndarray]], alpha: float = 1.0) -> "ChordHMM":
        """``sequences``: (pc (T,12) in quarter-note durations, labels (T,) with 24 = unknown)."""
        init = np.full(N_CLASSES, alpha)
        trans = np.full((N_CLASSES, N_CLASSES), alpha)
        emit = np.full((N_CLASSES, 12), alpha)
        for pc, lab in sequences:
            known = [i for i in range(len(lab)) if lab[i] < N_CLASSES]
            if known:
                init[lab[known[0]]] += 1
            for i in range(len(lab)):
                if lab[i] < N_CLASSES:
                    emit[lab[i]] += pc[i]
                    if i + 1 < len(lab) and lab[i + 1] < N_CLASSES:
                        trans[lab[i], lab[i + 1]] += 1
        return cls(np.log(init / init.sum()), np.log(trans / trans.sum(1, keepdims=True)),
                   np.log(emit / emit.sum(1, keepdims=True)))

    def emission_scores(self, pc: np.ndarray) -> np.ndarray:
        """(T, 24) log P(melody bar | chord), durations as counts."""
        return pc @ self.log_emit.T

    def decode(self, pc: np.ndarray, locks: dict[int, int] | None = None) -> np.ndarray:
        return viterbi(self.emission_scores(pc), self.log_trans, self.log_init, locks)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"hmm.log_init": self.log_init, "hmm.log_trans": self.log_trans, "hmm.log_emit": self.log_emit}

    @classmethod
    def from_tensors(cls, t: dict) -> "ChordHMM":
        def a(k):
            v = t[k]
            return v.numpy() if hasattr(v, "numpy") else np.asarray(v)
        return cls(a("hmm.log_init").astype(np.float64), a("hmm.log_trans").astype(np.float64),
                   a("hmm.log_emit").astype(np.float64))


def _lock_mask(T: int, locks: dict[int, int] | None) -> np.ndarray:
    mask = np.zeros((T, N_CLASSES))
    for t, c in (locks or {}).items():
        if 0 <= t < T:
            mask[t] = -np.inf
            mask[t, c] = 0.0
    return mask


def viterbi(scores: np.ndarray, log_trans: np.ndarray, log_init: np.ndarray | None = None,
            locks: dict[int, int] | None = None, trans_weight: float = 1.0) -> np.ndarray:
    """Best path through (T, 24) log scores plus ``trans_weight`` x log transitions; locked steps are forced."""
    T = len(scores)
    if T == 0:
        return np.zeros(0, int)
    s = scores + _lock_mask(T, locks)
    lt = trans_weight * log_trans
    delta = s[0] + (trans_weight * log_init if log_init is not None else 0.0)
    back = np.zeros((T, N_CLASSES), int)
    for t in range(1, T):
        cand = delta[:, None] + lt
        back[t] = np.argmax(cand, axis=0)
        delta = cand[back[t], np.arange(N_CLASSES)] + s[t]
    path = np.zeros(T, int)
    path[-1] = int(np.argmax(delta))
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def sample_path(scores: np.ndarray, log_trans: np.ndarray, rng: np.random.Generator, *,
                temperature: float = 1.0, top_k: int = 0, locks: dict[int, int] | None = None,
                trans_weight: float = 1.0) -> np.ndarray:
    """Forward filtering, backward sampling: a chord path drawn from
    P(path) ~ prod_t exp(scores_t / temperature) x exp(trans_weight x log_trans / temperature), restricted to each
    step's ``top_k`` classes (0 = all) and to the locked chord where a step is locked."""
    T = len(scores)
    if T == 0:
        return np.zeros(0, int)
    temperature = max(float(temperature), 1e-3)
    s = scores.astype(np.float64).copy()
    if top_k and 0 < top_k < N_CLASSES:
        kth = np.sort(s, axis=1)[:, -top_k][:, None]
        s = np.where(s >= kth, s, -np.inf)
    for t, c in (locks or {}).items():  # a locked step is that chord, whatever its rank
        if 0 <= t < T:
            s[t] = -np.inf
            s[t, c] = 0.0
    s = s / temperature
    lt = trans_weight * log_trans / temperature
    alpha = np.zeros((T, N_CLASSES))
    a = s[0] - _lse(s[0])
    alpha[0] = a
    for t in range(1, T):
        m = _lse_cols(alpha[t - 1][:, None] + lt)
        a = m + s[t]
        alpha[t] = a - _lse(a)
    path = np.zeros(T, int)
    path[-1] = _draw(alpha[-1], rng)
    for t in range(T - 2, -1, -1):
        path[t] = _draw(alpha[t] + lt[:, path[t + 1]], rng)
    return path


def _lse(x: np.ndarray) -> float:
    m = np.max(x)
    if not np.isfinite(m):
        return -np.inf
    return float(m + np.log(np.exp(x - m).sum()))


def _lse_cols(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=0)
    safe = np.where(np.isfinite(m), m, 0.0)
    return safe + np.log(np.exp(x - safe).sum(axis=0))


def _draw(logp: np.ndarray, rng: np.random.Generator) -> int:
    m = np.max(logp)
    p = np.exp(logp - m)
    p = np.where(np.isfinite(p), p, 0.0)
    if p.sum() <= 0:
        return int(np.argmax(logp))
    return int(rng.choice(N_CLASSES, p=p / p.sum()))
