"""A small chord synthesizer: voice-led voicings and piano-like or pad tones, as numpy arrays.

Reusable beyond the chord lane (harmonizer and melody work build on ``voice_chords`` and ``render_notes``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from engines.music.chords import Chord, ChordSegment, parse_label

UPPER_RANGE = (55, 77)  # G3..F5 for the upper voices
BASS_RANGE = (36, 52)  # C2..E3 for the bass
CENTER = 66


@dataclass(frozen=True)
class VoicedChord:
    start: float
    end: float
    label: str
    bass: int | None  # MIDI note
    upper: tuple[int, ...]  # MIDI notes, ascending

    @property
    def notes(self) -> tuple[int, ...]:
        return ((self.bass,) if self.bass is not None else ()) + self.upper


def _candidates(pcs: Sequence[int]) -> list[tuple[int, ...]]:
    """Close-position voicings of the pitch classes in the upper range (every inversion and octave)."""
    out = []
    lo, hi = UPPER_RANGE
    for perm in set(itertools.permutations(pcs)):
        for base in range(lo, lo + 12):
            if base % 12 != perm[0]:
                continue
            notes = [base]
            for pc in perm[1:]:
                n = notes[-1] + ((pc - notes[-1]) % 12 or 12)
                notes.append(n)
            if notes[-1] <= hi and notes[-1] - notes[0] <= 12:
                out.append(tuple(notes))
                if base + 12 + (notes[-1] - notes[0]) <= hi:
                    out.append(tuple(n + 12 for n in notes))
    return sorted(set(out))


def _movement(a: Sequence[int], b: Sequence[int]) -> float:
    if not a:
        return abs(float(np.mean(b)) - CENTER)
    if len(a) == len(b):
        return float(sum(abs(x - y) for x, y in zip(a, b)))
    # different sizes: each new note to its nearest old note
    return float(sum(min(abs(x - y) for y in a) for x in b))


def voice_chords(segments: Iterable[ChordSegment], transpose: int = 0) -> list[VoicedChord]:
    """Voice-lead a chord sequence: each chord takes the close voicing nearest the previous one (smallest
    total movement, common tones kept), the bass takes the slash bass (or root) nearest the previous bass."""
    out: list[VoicedChord] = []
    prev_upper: tuple[int, ...] = ()
    prev_bass: int | None = None
    for seg in segments:
        chord = parse_label(seg.label).transpose(transpose)
        if chord.is_none:
            out.append(VoicedChord(seg.start, seg.end, chord.label(), None, ()))
            continue
        pcs = chord.pitch_classes()
        cands = _candidates(pcs)
        upper = min(cands, key=lambda c: (_movement(prev_upper, c) + 0.15 * abs(np.mean(c) - CENTER), c))
        bass_pc = chord.bass_pc()
        basses = [n for n in range(BASS_RANGE[0], BASS_RANGE[1] + 1) if n % 12 == bass_pc]
        ref = prev_bass if prev_bass is not None else 43
        bass = min(basses, key=lambda n: (abs(n - ref), n))
        out.append(VoicedChord(seg.start, seg.end, chord.label(), bass, upper))
        prev_upper, prev_bass = upper, bass
    return out


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def tone(freq: float, n: int, sr: int, voice: str = "piano") -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr
    if voice == "pad":
        partials = ((1, 1.0), (2, 0.35), (3, 0.15), (4, 0.08))
        y = np.zeros(n, np.float32)
        for k, a in partials:
            for detune in (-0.0015, 0.0015):
                y += a * 0.5 * np.sin(2 * np.pi * freq * k * (1 + detune) * t, dtype=np.float32)
        attack = min(n, int(0.12 * sr))
        env = np.ones(n, np.float32)
        env[:attack] = np.linspace(0, 1, attack, dtype=np.float32)
    else:  # piano-like: bright attack, partials decaying faster the higher they are
        partials = ((1, 1.0), (2, 0.5), (3, 0.25), (4, 0.12), (5, 0.06))
        y = np.zeros(n, np.float32)
        for k, a in partials:
            if freq * k > sr / 2.2:
                break
            y += a * np.exp(-t * (1.2 + 0.9 * k)).astype(np.float32) * np.sin(2 * np.pi * freq * k * t,
                                                                           dtype=np.float32)
        attack = min(n, int(0.004 * sr))
        env = np.ones(n, np.float32)
        env[:attack] = np.linspace(0, 1, attack, dtype=np.float32)
    release = min(n, int(0.03 * sr))
    if release:
        env[-release:] *= np.linspace(1, 0, release, dtype=np.float32)
    return y * env


def render_notes(notes: Iterable[tuple[float, float, int, float]], duration: float, sr: int = 22050,
                 voice: str = "piano") -> np.ndarray:
    """Sum (start, end, midi, velocity 0..1) notes into a mono float32 buffer of ``duration`` seconds."""
    total = max(1, int(round(duration * sr)))
    out = np.zeros(total, np.float32)
    for start, end, midi, vel in notes:
        a, b = int(round(start * sr)), min(total, int(round(end * sr)))
        if b - a < 2:
            continue
        out[a:b] += vel * tone(midi_hz(midi), b - a, sr, voice)
    return out


def render_chords(segments: Sequence[ChordSegment], duration: float, sr: int = 22050, voice: str = "piano",
                  transpose: int = 0, level: float = 0.25) -> np.ndarray:
    """The chord track as audio: voice-led chords, bass slightly softer, peak-limited to ``level`` x 4."""
    voiced = voice_chords(segments, transpose)
    notes = []
    for v in voiced:
        if v.bass is not None:
            notes.append((v.start, v.end, v.bass, 0.8))
        notes.extend((v.start, v.end, n, 0.6) for n in v.upper)
    y = render_notes(notes, duration, sr, voice) * level
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 0.95:
        y *= 0.95 / peak
    return y


__all__ = ["Chord", "VoicedChord", "voice_chords", "render_chords", "render_notes"]
