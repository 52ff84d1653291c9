"""Key estimation: Krumhansl-Schmuckler correlation of the recording's mean chroma with the 24 rotated
Krumhansl-Kessler key profiles."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.music.chords import PITCH_NAMES

MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class KeyEstimate:
    tonic: int  # pitch class
    mode: str  # "major" or "minor"
    correlation: float  # Pearson r of the best key
    margin: float  # best r minus the runner-up's

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    def transpose(self, semitones: int) -> "KeyEstimate":
        return KeyEstimate((self.tonic + semitones) % 12, self.mode, self.correlation, self.margin)


def estimate_key(chroma: np.ndarray) -> KeyEstimate | None:
    """``chroma``: (frames, 12) magnitudes or a 12-vector. None when there is nothing tonal (silence)."""
    chroma = np.asarray(chroma, dtype=np.float64)
    profile = chroma if chroma.ndim == 1 else chroma.sum(axis=0)
    if not np.isfinite(profile).all() or profile.max() <= 0 or np.std(profile) < 1e-9 * max(profile.max(), 1e-12):
        return None
    scores = []
    for mode, base in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(profile, np.roll(base, tonic))[0, 1])
            scores.append((r, tonic, mode))
    scores.sort(reverse=True)
    (r1, tonic, mode), (r2, _, _) = scores[0], scores[1]
    return KeyEstimate(tonic, mode, r1, r1 - r2)
