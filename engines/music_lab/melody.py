"""Melodies as note lists: reading them (MIDI, MusicXML, plain lists), bar features, chord vocabulary, exports.

Times are in quarter notes (beats) from the first bar line; a pickup is shifted so bars line up. No Qt, no
torch. Every export is atomic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from engines.core.atomic import atomic_path
from engines.core.engine import EngineError
from engines.music.chords import PITCH_NAMES, Chord, parse_label, to_majmin

#: 24 chord classes: index = root * 2 + (1 if minor); the harmonizer and generator vocabulary
CHORD_CLASSES = [f"{PITCH_NAMES[i // 2]}:{'min' if i % 2 else 'maj'}" for i in range(24)]
MAX_BARS = 1000  # about 30 minutes of 4/4 at 120 bpm: longer melodies are refused with a message
MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".musicxml", ".xml", ".mxl", ".krn", ".abc")


@dataclass
class Note:
    start: float  # quarter notes
    dur: float
    pitch: int  # MIDI

    @property
    def end(self) -> float:
        return self.start + self.dur


@dataclass
class Melody:
    notes: list[Note]
    beats_per_bar: float = 4.0
    bpm: float = 100.0
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_bars(self) -> int:
        if not self.notes:
            return 0
        return max(1, int(np.ceil(max(n.end for n in self.notes) / self.beats_per_bar - 1e-6)))

    def to_list(self) -> list[list[float]]:
        return [[n.start, n.dur, n.pitch] for n in self.notes]


def chord_class_symbol(index: int) -> str:
    return parse_label(CHORD_CLASSES[index]).symbol()


def chord_class_of(text: str) -> int:
    """A chord symbol or MIREX label -> one of the 24 classes; EngineError for unknown symbols or N."""
    try:
        chord = parse_label(text)
    except ValueError:
        raise EngineError(f"unknown chord symbol '{text}' (write e.g. C, Am, G7, F#m, Bb/D)") from None
    if chord.is_none:
        raise EngineError(f"'{text}' is not a chord (no-chord marks cannot be harmonized over)")
    mm = parse_label(to_majmin(chord))
    return mm.root * 2 + (1 if mm.quality == "min" else 0)


def class_pitch_classes(index: int) -> list[int]:
    root, minor = index // 2, index % 2
    return [root, (root + (3 if minor else 4)) % 12, (root + 7) % 12]


def chord_tone_table() -> np.ndarray:
    """(24, 12) 0/1: which pitch classes belong to each chord class (triads)."""
    t = np.zeros((24, 12), np.float32)
    for i in range(24):
        t[i, class_pitch_classes(i)] = 1
    return t


def transpose_class(index: int, semitones: int) -> int:
    return ((index // 2 + semitones) % 12) * 2 + index % 2


# -- reading ------------------------------------------------------------------------------------------
def melody_from_request(request: dict) -> Melody:
    """``request['melody']``: a path (MIDI/MusicXML), a Melody, or a list of notes; ``beats_per_bar`` optional."""
    src = request.get("melody")
    if src is None:
        raise EngineError("no melody given: open a MIDI or MusicXML file, or enter notes")
    if isinstance(src, Melody):
        mel = src
    elif isinstance(src, (str, Path)):
        mel = read_melody(Path(src))
    else:
        mel = melody_from_notes(src, float(request.get("beats_per_bar", 4.0)))
    check_melody(mel)
    return mel


def melody_from_notes(items: Iterable, beats_per_bar: float = 4.0) -> Melody:
    """[[start, dur, pitch], ...] or [{'start':..,'dur':..,'pitch':..}, ...] in quarter notes."""
    notes = []
    try:
        for it in items:
            if isinstance(it, dict):
                notes.append(Note(float(it["start"]), float(it["dur"]), int(it["pitch"])))
            else:
                s, d, p = it
                notes.append(Note(float(s), float(d), int(p)))
    except (TypeError, ValueError, KeyError):
        raise EngineError("a note list needs [start, duration, MIDI pitch] for every note (in quarter notes)") from None
    return Melody(sorted(notes, key=lambda n: n.start), beats_per_bar, source="note list")


def check_melody(mel: Melody) -> None:
    mel.notes = [n for n in mel.notes if n.dur > 0]
    if not mel.notes:
        raise EngineError(f"{mel.source or 'the melody'}: the melody has no notes")
    if not (0 < mel.beats_per_bar <= 16):
        raise EngineError(f"{mel.beats_per_bar} beats per bar is not a usable metre")
    if any(not (0 <= n.pitch <= 127) for n in mel.notes):
        raise EngineError("note pitches must be MIDI numbers 0..127")
    if mel.n_bars > MAX_BARS:
        raise EngineError(f"{mel.source or 'the melody'} is {mel.n_bars} bars long; the harmonizer takes at most "
                          f"{MAX_BARS} bars (about 30 minutes): cut the piece into sections")


def read_melody(path: Path) -> Melody:
    if not path.exists():
        raise EngineError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return _read_midi(path)
    if suffix in SCORE_SUFFIXES:
        return _read_score(path)
    raise EngineError(f"{path.name}: open a MIDI (.mid) or MusicXML (.musicxml/.xml/.mxl) melody")


def skyline(notes: list[Note]) -> list[Note]:
    """Monophonic top line: where notes overlap the highest one wins (the melody of a homophonic texture)."""
    notes = sorted(notes, key=lambda n: (n.start, -n.pitch))
    out: list[Note] = []
    for n in notes:
        if out and n.start < out[-1].end - 1e-6:
            prev = out[-1]
            if n.start <= prev.start + 1e-6:
                continue  # same onset, lower pitch
            if n.pitch > prev.pitch:
                prev.dur = n.start - prev.start
                out.append(Note(n.start, n.dur, n.pitch))
            continue
        out.append(Note(n.start, n.dur, n.pitch))
    return out


def _read_midi(path: Path) -> Melody:
    import pretty_midi

    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # noqa: BLE001 - mido raises many types for corrupt files
        raise EngineError(f"{path.name}: not a readable MIDI file ({type(exc).__name__})") from None
    pitched = [i for i in pm.instruments if not i.is_drum and i.notes]
    if not pitched:
        if any(i.notes for i in pm.instruments):
            raise EngineError(f"{path.name}: only drum (percussion) notes; a melody needs pitched notes")
        raise EngineError(f"{path.name}: the MIDI file has no notes")
    _, tempi = pm.get_tempo_changes()
    bpm = float(tempi[0]) if len(tempi) else 120.0
    spq = 60.0 / bpm
    ts = pm.time_signature_changes
    bpb = float(ts[0].numerator * 4 / ts[0].denominator) if ts else 4.0
    # the melody: the instrument with the highest mean pitch (a lead over an accompaniment)
    inst = max(pitched, key=lambda i: np.mean([n.pitch for n in i.notes]))
    beats = pm.get_beats()
    if len(tempi) > 1 and len(beats) > 1:  # tempo changes: map seconds to beats through the beat grid
        def q(t: float) -> float:
            return float(np.interp(t, beats, np.arange(len(beats)), right=None))
    else:
        def q(t: float) -> float:
            return t / spq
    notes = [Note(round(q(n.start) * 12) / 12, 0.0, int(n.pitch)) for n in inst.notes]
    for k, n in enumerate(inst.notes):
        notes[k].dur = max(round(q(n.end) * 12) / 12 - notes[k].start, 1 / 12)
    return Melody(skyline(notes), bpb, bpm, source=path.name, meta={"instrument": inst.name})


def _read_score(path: Path) -> Melody:
    import music21

    try:
        score = music21.converter.parse(str(path))
    except Exception as exc:  # noqa: BLE001
        raise EngineError(f"{path.name}: not a readable score ({type(exc).__name__}: {str(exc)[:100]})") from None
    parts = list(getattr(score, "parts", [])) or [score]
    part = parts[0]
    ts = part.recurse().getElementsByClass("TimeSignature")
    bpb = float(ts[0].barDuration.quarterLength) if ts else 4.0
    mm = part.recurse().getElementsByClass("MetronomeMark")
    bpm = float(mm[0].number) if mm and mm[0].number else 100.0
    measures = list(part.getElementsByClass("Measure"))
    pickup = 0.0
    if measures:
        first = measures[0]
        if float(first.duration.quarterLength) < bpb - 1e-6:
            pickup = bpb - float(first.duration.quarterLength)
    notes = []
    for n in part.stripTies().flatten().notes:
        ql = float(n.quarterLength)
        if ql <= 0:
            continue
        pitch = max(p.midi for p in n.pitches)
        notes.append(Note(float(n.getOffsetInHierarchy(part)) + pickup, ql, int(pitch)))
    if not notes:
        raise EngineError(f"{path.name}: the score's top part has no notes")
    return Melody(skyline(notes), bpb, bpm, source=path.name, meta={"pickup": pickup})


# -- features -----------------------------------------------------------------------------------------
def segment_pc(mel: Melody, per_bar: int = 1) -> np.ndarray:
    """(segments, 12) duration-weighted pitch-class vectors; ``per_bar`` = 1 (bars) or 2 (half bars)."""
    seg = mel.beats_per_bar / per_bar
    n = mel.n_bars * per_bar
    out = np.zeros((n, 12), np.float32)
    for note in mel.notes:
        a = note.start
        while a < note.end - 1e-9:
            k = int(a // seg + 1e-9)
            b = min(note.end, (k + 1) * seg)
            if k < n:
                out[k, note.pitch % 12] += b - a
            a = b
    return out


def estimate_shift(pc: np.ndarray) -> tuple[int, str]:
    """Semitones that bring the melody to C major / A minor, and the key name (Krumhansl-Schmuckler)."""
    from engines.music.keys import estimate_key

    key = estimate_key(pc.sum(axis=0))
    if key is None:
        return 0, "C major"
    target = 0 if key.mode == "major" else 9
    s = (target - key.tonic) % 12
    return (s if s <= 6 else s - 12), key.name


def normalize_pc(pc: np.ndarray) -> np.ndarray:
    """Each segment's vector scaled to sum 1 (empty segments stay zero)."""
    tot = pc.sum(axis=1, keepdims=True)
    return np.where(tot > 0, pc / np.maximum(tot, 1e-9), 0).astype(np.float32)


def coverage(pc: np.ndarray, classes: Sequence[int]) -> float:
    """Share of the melody's duration whose pitch class is a tone of the segment's chord (triad)."""
    table = chord_tone_table()
    tot = float(pc.sum())
    if tot <= 0:
        return 0.0
    return float(sum((pc[i] * table[c]).sum() for i, c in enumerate(classes) if c >= 0) / tot)


# -- writing ------------------------------------------------------------------------------------------
def chords_to_midi(notes: Sequence[Note], chords: Sequence[int], seg_beats: float, bpm: float,
                   melody_program: int = 73, chord_program: int = 0):
    """A pretty_midi object: melody track plus a block-chord track (one chord per segment), symbols as lyrics."""
    import pretty_midi

    from engines.music.synth import voice_chords
    from engines.music.chords import ChordSegment

    spq = 60.0 / bpm
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(bpm))
    mel = pretty_midi.Instrument(program=melody_program, name="Melody")
    for n in notes:
        mel.notes.append(pretty_midi.Note(90, int(n.pitch), n.start * spq, max(n.end * spq - 0.01, n.start * spq + 0.02)))
    pm.instruments.append(mel)
    if chords:
        segs = [ChordSegment(i * seg_beats * spq, (i + 1) * seg_beats * spq, CHORD_CLASSES[c] if c >= 0 else "N")
                for i, c in enumerate(chords)]
        inst = pretty_midi.Instrument(program=chord_program, name="Chords")
        for v in voice_chords(segs):
            pitches = ([v.bass] if v.bass is not None else []) + list(v.upper)
            for p in pitches:
                inst.notes.append(pretty_midi.Note(62, int(p), v.start, max(v.end - 0.01, v.start + 0.02)))
        pm.instruments.append(inst)
        for s in segs:
            pm.lyrics.append(pretty_midi.Lyric(parse_label(s.label).symbol() if s.label != "N" else "N.C.", s.start))
    return pm


def write_midi(path: Path, notes: Sequence[Note], chords: Sequence[int], seg_beats: float, bpm: float) -> Path:
    pm = chords_to_midi(notes, chords, seg_beats, bpm)
    with atomic_path(path) as tmp:
        pm.write(str(tmp))
    return Path(path)


def write_lead_sheet(path: Path, notes: Sequence[Note], chords: Sequence[int], seg_beats: float,
                     beats_per_bar: float, bpm: float, title: str = "Lead sheet") -> Path:
    """MusicXML: the melody on one staff with a chord symbol at each segment start."""
    from music21 import harmony, metadata, meter, note, stream, tempo

    part = stream.Part()
    num = int(round(beats_per_bar)) if abs(beats_per_bar - round(beats_per_bar)) < 1e-6 else 4
    part.insert(0, meter.TimeSignature(f"{num}/4"))
    part.insert(0, tempo.MetronomeMark(number=round(bpm)))
    t = 0.0
    for n in sorted(notes, key=lambda x: x.start):
        if n.start > t + 1e-6:
            part.insert(t, note.Rest(quarterLength=n.start - t))
        start = max(n.start, t)
        dur = n.end - start
        if dur <= 1e-6:
            continue
        part.insert(start, note.Note(int(n.pitch), quarterLength=dur))
        t = start + dur
    total = max(t, len(chords) * seg_beats)
    bar_total = float(np.ceil(total / beats_per_bar - 1e-6) * beats_per_bar)
    if bar_total > t + 1e-6:
        part.insert(t, note.Rest(quarterLength=bar_total - t))
    prev = None
    for i, c in enumerate(chords):
        if c < 0 or c == prev:
            prev = c
            continue
        prev = c
        part.insert(i * seg_beats, harmony.ChordSymbol(_m21_figure(parse_label(CHORD_CLASSES[c]))))
    score = stream.Score()
    score.metadata = metadata.Metadata(title=title)
    score.insert(0, part)
    with atomic_path(path, suffix=".musicxml") as tmp:
        written = score.write("musicxml", fp=str(tmp), makeNotation=True)
        if Path(written) != tmp:
            Path(written).replace(tmp)
    return Path(path)


def _m21_figure(chord: Chord) -> str:
    """music21 spells flats '-': 'Bbm' -> 'B-m'."""
    text = chord.symbol()
    return "".join("-" if ch == "b" and i > 0 and text[i - 1] in "ABCDEFG" else ch for i, ch in enumerate(text))


def write_result_file(out: Path, notes: Sequence[Note], chords: Sequence[int], seg_beats: float,
                      beats_per_bar: float, bpm: float) -> Path:
    suffix = Path(out).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return write_midi(out, notes, chords, seg_beats, bpm)
    if suffix in (".musicxml", ".xml"):
        return write_lead_sheet(out, notes, chords, seg_beats, beats_per_bar, bpm, title=Path(out).stem)
    raise EngineError(f"cannot write '{Path(out).name}': use .mid or .musicxml")


__all__ = ["CHORD_CLASSES", "Melody", "Note", "read_melody", "segment_pc", "estimate_shift", "coverage",
           "write_midi", "write_lead_sheet", "chord_class_of", "Chord"]
