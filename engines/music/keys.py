"""Key estimation.

Two estimators share :class:`KeyEstimate`:

* :func:`estimate_key` - Krumhansl-Schmuckler: the Pearson correlation of a chroma profile (or pitch-class
  counts) with the 24 rotated Krumhansl-Kessler key profiles. It needs no weights; the harmonizer and the
  melody tools use it on note counts, and it is the fallback of the learned estimator.
* :func:`estimate_key_audio` - the learned key model ``key-profile`` (weights in resources/models/music): six
  chroma statistics of the recording (energy-weighted and frame-normalised mean chroma, bass chroma from the
  C1-B2 bins of the CQT, chroma at the strongest onsets, at the opening and at the ending), each rotated to a
  candidate tonic and scored by a tiny MLP per mode, softmax over the 24 keys. Rotating the statistics to the
  candidate tonic makes it transposition-equivariant by construction: a recording a semitone up gets the key a
  semitone up. Trained on the arranger's exact keys (scripts/music/train_key.py). Without its weights it warns
  and answers Krumhansl-Schmuckler on the recording's chroma.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engines.music.chords import PITCH_NAMES

log = logging.getLogger(__name__)

MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MODES = ("major", "minor")

KEY_MODEL = "key-profile"
KS_METHOD = "krumhansl-schmuckler"
#: the statistics the learned model reads, in the order of its input (each a 12-vector, C = 0)
STATISTICS = ("energy", "frames", "bass", "onsets", "opening", "ending")
BASS_BINS = 48  # C1..B2 at 24 bins per octave: the bass register
SILENCE_LOG_MAG = 3.04 - 6.91  # log-CQT peak of a -60 dBFS sine (engines.music.recognize uses the same)
EDGE_FRACTION = 0.1  # the opening / ending statistics: this share of the sounding frames (at least EDGE_MIN)
EDGE_MIN = 16
ONSET_FRACTION = 0.25  # the onset statistic: the frames with the strongest spectral flux, this share


@dataclass(frozen=True)
class KeyEstimate:
    tonic: int  # pitch class
    mode: str  # "major" or "minor"
    correlation: float  # Pearson r of the key's Krumhansl-Kessler profile with the chroma profile
    margin: float  # best score minus the runner-up's (r for Krumhansl-Schmuckler, probability when learned)
    confidence: float = float("nan")  # the learned model's probability of this key; r for Krumhansl-Schmuckler
    method: str = KS_METHOD  # KS_METHOD or the learned model's name
    warning: str = ""  # why the learned model was not used, when it was asked for and is missing

    def __post_init__(self) -> None:
        if not np.isfinite(self.confidence):
            object.__setattr__(self, "confidence", float(self.correlation))

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    def transpose(self, semitones: int) -> "KeyEstimate":
        return KeyEstimate((self.tonic + semitones) % 12, self.mode, self.correlation, self.margin,
                           self.confidence, self.method, self.warning)


def _is_tonal(profile: np.ndarray) -> bool:
    return bool(np.isfinite(profile).all() and profile.max() > 0
                and np.std(profile) >= 1e-9 * max(profile.max(), 1e-12))


def ks_scores(profile: np.ndarray) -> np.ndarray:
    """(2, 12): Pearson r of ``profile`` with each mode's profile rotated to each tonic."""
    out = np.zeros((2, 12))
    for m, base in enumerate((MAJOR_PROFILE, MINOR_PROFILE)):
        for tonic in range(12):
            out[m, tonic] = float(np.corrcoef(profile, np.roll(base, tonic))[0, 1])
    return out


def estimate_key(chroma: np.ndarray) -> KeyEstimate | None:
    """Krumhansl-Schmuckler. ``chroma``: (frames, 12) magnitudes or a 12-vector. None when there is nothing
    tonal (silence)."""
    chroma = np.asarray(chroma, dtype=np.float64)
    profile = chroma if chroma.ndim == 1 else chroma.sum(axis=0)
    if not _is_tonal(profile):
        return None
    r = ks_scores(profile)
    order = np.argsort(r.ravel())[::-1]
    m, tonic = divmod(int(order[0]), 12)
    r1, r2 = float(r.ravel()[order[0]]), float(r.ravel()[order[1]])
    return KeyEstimate(tonic, MODES[m], r1, r1 - r2)


# -- the learned estimator -----------------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    s = float(v.sum())
    return v / s if s > 0 else np.full(12, 1 / 12)


def key_statistics(logcqt: np.ndarray, silent: np.ndarray | None = None) -> np.ndarray | None:
    """The learned model's input: (len(STATISTICS), 12), each row a chroma profile summing to 1. ``logcqt``:
    (frames, 144) log-CQT (engines.music.audio.log_cqt); ``silent``: frames to leave out (default: those below
    a -60 dBFS sine). None when no frame sounds or the sounding frames hold no pitch profile (silence)."""
    logcqt = np.asarray(logcqt, dtype=np.float32)
    if logcqt.ndim != 2 or logcqt.shape[0] == 0:
        return None
    if silent is None:
        silent = logcqt.max(axis=1) < SILENCE_LOG_MAG
    sounding = ~np.asarray(silent, bool)
    if sounding.sum() < 2:
        return None
    from engines.music.audio import chroma_from_log_cqt

    chroma = chroma_from_log_cqt(logcqt)[sounding]
    if not _is_tonal(chroma.sum(axis=0).astype(np.float64)):
        return None
    bass = chroma_from_log_cqt(logcqt[:, :BASS_BINS])[sounding]
    norm = chroma / np.maximum(chroma.max(axis=1, keepdims=True), 1e-9)
    bass_norm = bass / np.maximum(bass.max(axis=1, keepdims=True), 1e-9)
    flux = np.maximum(np.diff(logcqt, axis=0, prepend=logcqt[:1]), 0.0).sum(axis=1)[sounding]
    n = len(norm)
    strong = flux >= np.quantile(flux, 1 - ONSET_FRACTION)
    edge = min(n, max(EDGE_MIN, int(round(EDGE_FRACTION * n))))
    rows = {
        "energy": chroma.sum(axis=0),
        "frames": norm.mean(axis=0),
        "bass": bass_norm.mean(axis=0),
        "onsets": norm[strong].mean(axis=0),
        "opening": norm[:edge].mean(axis=0),
        "ending": norm[-edge:].mean(axis=0),
    }
    return np.stack([_unit(rows[k].astype(np.float64)) for k in STATISTICS])


def rotated_inputs(stats: np.ndarray) -> np.ndarray:
    """(len(STATISTICS), 12) -> (12, len(STATISTICS) * 12): row t holds the statistics rotated so that pitch
    class t sits at index 0, centred (12 * p - 1: 0 for a flat profile)."""
    x = 12.0 * np.asarray(stats, np.float64) - 1.0
    return np.stack([np.roll(x, -t, axis=1).ravel() for t in range(12)])


def key_logits(params: dict[str, np.ndarray], stats: np.ndarray) -> np.ndarray:
    """(2, 12) scores (mode, tonic): the same tiny MLP reads the statistics rotated to each candidate tonic
    (one hidden ReLU layer) and gives one score per mode."""
    x = rotated_inputs(stats)  # (12, D)
    h = np.maximum(x @ params["w1"].T + params["b1"], 0.0)  # (12, H)
    return (h @ params["w2"].T + params["b2"]).T  # (2, 12)


@lru_cache(maxsize=4)
def load_key_model(name: str | Path = KEY_MODEL) -> tuple[dict[str, np.ndarray], str]:
    """The learned model's parameters as float64 arrays and its card's name, checked by the weights store
    (safetensors header, SHA-256 against the model card, tensor shapes). ``name``: a model in the weights
    store, or a path to a .safetensors file with its card beside it. Raises WeightsError."""
    from safetensors.numpy import load_file

    from engines.core.weights import WeightsError, WeightsStore

    if str(name).endswith(".safetensors"):
        weights = Path(name)
        card_path = weights.with_name(weights.name[: -len(".safetensors")] + ".card.json")
    else:
        weights, card_path = WeightsStore.default().paths(str(name))
    card = WeightsStore.verify(weights, card_path)
    if card.architecture != "key-profile-mlp":
        raise WeightsError(f"{weights.name} holds a '{card.architecture}' model, not a key model")
    tensors = load_file(str(weights))
    missing = {"w1", "b1", "w2", "b2"} - tensors.keys()
    if missing:
        raise WeightsError(f"{weights.name} lacks the tensors {', '.join(sorted(missing))}")
    return {k: np.asarray(v, np.float64) for k, v in tensors.items()}, card.name


def estimate_key_audio(logcqt: np.ndarray, silent: np.ndarray | None = None, *,
                       model: str | Path | None = KEY_MODEL) -> KeyEstimate | None:
    """The key of a recording from its log-CQT (engines.music.audio.Features.logcqt): the learned model, or
    Krumhansl-Schmuckler on the sounding frames' chroma when ``model`` is None or its weights cannot be used
    (then ``warning`` says why). None when nothing sounds or nothing is tonal."""
    stats = key_statistics(logcqt, silent)
    if stats is None:
        return None
    warning = ""
    if model is not None:
        from engines.core.weights import WeightsError

        try:
            params, name = load_key_model(model)
        except WeightsError as exc:
            warning = (f"the learned key model could not be used ({exc}); the key is the Krumhansl-Schmuckler "
                       f"estimate")
            log.warning(warning)
        else:
            logits = key_logits(params, stats)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            order = np.argsort(p.ravel())[::-1]
            m, tonic = divmod(int(order[0]), 12)
            r = ks_scores(stats[0])[m, tonic]
            return KeyEstimate(tonic, MODES[m], float(r), float(p.ravel()[order[0]] - p.ravel()[order[1]]),
                               float(p.ravel()[order[0]]), name)
    ks = estimate_key(stats[0])
    if ks is None:
        return None
    return KeyEstimate(ks.tonic, ks.mode, ks.correlation, ks.margin, ks.correlation, KS_METHOD, warning)
