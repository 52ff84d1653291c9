"""The chorale bar cache (scripts/music_lab/extract_chorale_bars.py) as per-chorale sequences, split by BWV.

Split: test = BWV number ending in 3 or 7 (engines.music.chorales.is_held_out, the music workspace's split);
validation = BWV ending in 9 (early stopping only); train = the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path("build/music_lab/chorale_bars.npz")


@dataclass
class Chorale:
    name: str
    bwv: int
    pc: np.ndarray  # (bars, 12) quarter-note durations
    chord: np.ndarray  # (bars,) 0..23, 24 unknown
    beat_chord: np.ndarray  # (bars, 4)
    grid: np.ndarray  # (bars, 16)
    onset: np.ndarray  # (bars, 16)
    bar_len: np.ndarray  # (bars,)


def split_of(bwv: int) -> str:
    last = bwv % 10
    return "test" if last in (3, 7) else "val" if last == 9 else "train"


def load_chorales(path: Path = DEFAULT_CACHE) -> list[Chorale]:
    d = np.load(path)
    out = []
    piece = d["piece"]
    for pid, name in enumerate(d["names"]):
        idx = np.flatnonzero(piece == pid)
        if len(idx) == 0:
            continue
        out.append(Chorale(str(name), int(d["bwv"][idx[0]]), d["melody_pc"][idx], d["chord"][idx].astype(int),
                           d["beat_chord"][idx].astype(int), d["grid"][idx].astype(int), d["onset"][idx],
                           d["bar_len"][idx]))
    return out


def split(chorales: list[Chorale]) -> dict[str, list[Chorale]]:
    parts: dict[str, list[Chorale]] = {"train": [], "val": [], "test": []}
    for c in chorales:
        parts[split_of(c.bwv)].append(c)
    return parts


def save_subset(chorales: list[Chorale], path: Path) -> Path:
    """A small .npz of some chorales (same columns as the cache) - the tests' held-out fixture."""
    cols = {"melody_pc": [], "chord": [], "beat_chord": [], "grid": [], "onset": [], "bar_len": []}
    piece, bwv, names = [], [], []
    for pid, c in enumerate(chorales):
        cols["melody_pc"].append(c.pc.astype(np.float32))
        cols["chord"].append(c.chord.astype(np.int16))
        cols["beat_chord"].append(c.beat_chord.astype(np.int16))
        cols["grid"].append(c.grid.astype(np.int16))
        cols["onset"].append(c.onset)
        cols["bar_len"].append(c.bar_len)
        piece += [pid] * len(c.chord)
        bwv += [c.bwv] * len(c.chord)
        names.append(c.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: np.concatenate(v) for k, v in cols.items()}, piece=np.array(piece, np.int32),
                        bwv=np.array(bwv, np.int32), names=np.array(names))
    return path
