"""Bach chorales from music21's corpus as audio with known chords: the training and test material.

Labels come from ``chordify()`` of the score with its repeats expanded (the MIDI export expands them too):
each vertical slice gets music21's ``root()`` and quality; slices music21 cannot name (quality 'other') and
slices shorter than an eighth note (passing and neighbour tones) keep the previous chord; zero-length chords
are dropped (mir_eval rejects them). bwv277 is skipped (its MIDI export raises).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.core.engine import EngineError
from engines.music.chords import PITCH_NAMES, Chord, ChordSegment, merge_short

SKIP = {"bwv277"}
#: General MIDI programs used to render: piano, harpsichord, organ, guitar, strings, choir, clarinet, flute,
#: brass, electric piano
PROGRAMS = (0, 6, 19, 24, 48, 52, 71, 73, 61, 4)


def bwv_number(name: str) -> int:
    """'bach/bwv153.1' -> 153."""
    m = re.search(r"bwv(\d+)", name)
    if not m:
        raise ValueError(f"no BWV number in {name!r}")
    return int(m.group(1))


def is_held_out(name: str) -> bool:
    """The test split: every chorale whose BWV number ends in 3 or 7 (about 20 %), never trained on."""
    return bwv_number(name) % 10 in (3, 7)


def chorale_names() -> list[str]:
    from music21 import corpus

    return [n for n in corpus.chorales.Iterator(returnType="filename") if Path(n).name not in SKIP]


def parse_chorale(name: str):
    from music21 import corpus

    score = corpus.parse(name)
    try:
        score = score.expandRepeats()
    except Exception:  # noqa: BLE001 - a few chorales have unbalanced repeat marks; use them as written
        pass
    return score


def _slice_chord(ch) -> Chord | None:
    quality = ch.quality
    root = ch.root().pitchClass
    bass = ch.bass().pitchClass
    pcs = {p.pitchClass for p in ch.pitches}
    rel = {(pc - root) % 12 for pc in pcs}
    if quality == "other" or not {0}.issubset(rel):
        return None
    if ch.isDominantSeventh():
        q = "7"
    elif ch.isDiminishedSeventh():
        q = "dim7"
    elif ch.isHalfDiminishedSeventh():
        q = "hdim7"
    elif quality == "major":
        q = "maj7" if rel >= {0, 4, 7, 11} else "maj"
    elif quality == "minor":
        q = "min7" if rel >= {0, 3, 7, 10} else "min"
    elif quality == "diminished":
        q = "dim"
    elif quality == "augmented":
        q = "aug"
    else:
        return None
    return Chord(root, q, bass if bass != root else None)


def chorale_chords(score, seconds_per_quarter: float) -> list[ChordSegment]:
    """Chord segments (in seconds) of a chorale score at a constant tempo."""
    chordified = score.chordify()
    segs: list[ChordSegment] = []
    prev: Chord | None = None
    for ch in chordified.flatten().getElementsByClass("Chord"):
        ql = float(ch.quarterLength)
        if ql <= 0:
            continue
        chord = _slice_chord(ch) if ql >= 0.5 else None
        if chord is None:
            chord = prev if prev is not None else _slice_chord(ch)
        if chord is None:
            continue
        prev = chord
        start = float(ch.offset) * seconds_per_quarter
        segs.append(ChordSegment(start, start + ql * seconds_per_quarter, chord.label()))
    # fill gaps (rests) with N, then merge equal neighbours
    filled: list[ChordSegment] = []
    t = 0.0
    for s in segs:
        if s.start > t + 1e-6:
            filled.append(ChordSegment(t, s.start, "N"))
        filled.append(s)
        t = s.end
    return merge_short([s for s in filled if s.end > s.start], 0.0)


def chorale_midi(score, bpm: float, program: int, transpose: int = 0, velocity: int = 80):
    """A pretty_midi object of the chorale's parts at ``bpm`` (one GM program for all parts)."""
    import pretty_midi

    spq = 60.0 / bpm
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    for part in score.parts:
        inst = pretty_midi.Instrument(program=program)
        for n in part.stripTies().flatten().notes:
            start = float(n.offset) * spq
            end = start + float(n.quarterLength) * spq
            if end <= start:
                continue
            for p in getattr(n, "pitches", ()):
                inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=int(p.midi) + transpose,
                                                   start=start, end=end - 0.01))
        pm.instruments.append(inst)
    return pm


def transpose_segments(segs: list[ChordSegment], semitones: int) -> list[ChordSegment]:
    from engines.music.chords import parse_label

    return [ChordSegment(s.start, s.end, parse_label(s.label).transpose(semitones).label(), s.confidence)
            for s in segs]


@dataclass
class RenderedChorale:
    name: str
    samples: np.ndarray
    sr: int
    segments: list[ChordSegment]
    bpm: float
    program: int
    transpose: int


def render_chorale(name: str, bpm: float = 80.0, program: int = 0, transpose: int = 0,
                   sr: int = 22050) -> RenderedChorale:
    """Render one chorale with FluidSynth and return audio plus its chord labels (transposed alike)."""
    from engines.music.audio import render_midi

    if Path(name).name in SKIP:
        raise EngineError(f"{name} is skipped (its MIDI export fails)")
    score = parse_chorale(name)
    spq = 60.0 / bpm
    segs = chorale_chords(score, spq)
    pm = chorale_midi(score, bpm, program, transpose)
    samples, how = render_midi(pm, sr)
    if how != "FluidSynth":
        raise EngineError("rendering chorales needs FluidSynth and the GM soundfont")
    duration = len(samples) / sr
    segs = transpose_segments(segs, transpose)
    if segs and segs[-1].end < duration:
        segs.append(ChordSegment(segs[-1].end, duration, "N"))
    segs = [s for s in segs if s.start < duration]
    if segs:
        segs[-1].end = min(segs[-1].end, duration)
    return RenderedChorale(name, samples, sr, [s for s in segs if s.end > s.start], bpm, program, transpose)


__all__ = ["PITCH_NAMES", "render_chorale", "chorale_names", "is_held_out", "bwv_number"]


def score_reference(path: Path, midi) -> list[ChordSegment] | None:
    """Chords of a MusicXML/MIDI file from music21's chordify, in seconds of its rendering (``midi``).

    Only for a constant tempo (the seconds-per-quarter mapping is then exact); None otherwise or when music21
    cannot read the file. Used as the reference lane when a score is opened.
    """
    try:
        _, tempi = midi.get_tempo_changes()
        if len(set(round(float(t), 3) for t in tempi)) != 1:
            return None
        import music21

        score = music21.converter.parse(str(path))
        try:
            score = score.expandRepeats()
        except Exception:  # noqa: BLE001 - play as written, as the rendering did
            pass
        segs = chorale_chords(score, 60.0 / float(tempi[0]))
    except Exception:  # noqa: BLE001 - no reference is a normal outcome
        return None
    return segs or None
