"""Exports of a chord track: MIREX .lab, MIDI (chords, optionally with the melody), MusicXML lead sheet,
WAV of the synthesized chords, and the workstation's JSON. Every file is written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.core.atomic import atomic_path, atomic_write_text
from engines.core.engine import EngineError
from engines.music.chords import ChordTrack, parse_label
from engines.music.synth import render_chords, voice_chords

SUFFIXES = (".lab", ".mid", ".midi", ".musicxml", ".xml", ".wav", ".json")


def export_track(track: ChordTrack, out: Path, *, melody=None, tempo_bpm: float | None = None,
                 voice: str = "piano", first_beat_s: float = 0.0, meter: str | None = None) -> Path:
    """Write ``track`` (transposed as displayed) in the format named by ``out``'s suffix. ``meter`` (a time
    signature such as "3/4" or "6/8", from the beat tracker) makes ``first_beat_s`` a downbeat: the lead sheet's
    bar lines then fall on the recording's bars; without it only the beat phase is used, in 4/4."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".lab":
        return track.write_lab(out)
    if suffix in (".mid", ".midi"):
        return write_midi(track, out, melody=melody, tempo_bpm=tempo_bpm)
    if suffix in (".musicxml", ".xml"):
        return write_lead_sheet(track, out, tempo_bpm=tempo_bpm, first_beat_s=first_beat_s, meter=meter)
    if suffix == ".wav":
        return write_wav(track, out, voice=voice)
    if suffix == ".json":
        return atomic_write_text(out, track.to_json())
    raise EngineError(f"cannot write '{out.name}': use one of {', '.join(SUFFIXES)}")


def chord_midi(track: ChordTrack, melody=None, tempo_bpm: float | None = None):
    """A pretty_midi object: the voiced chord track (program 0) and, if given, the melody's instruments."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=float(tempo_bpm or 120.0))
    chords = pretty_midi.Instrument(program=0, name=f"Chords ({track.source or 'chord track'})")
    for v in voice_chords(track.segments, track.transpose):
        for n in v.notes:
            chords.notes.append(pretty_midi.Note(velocity=70, pitch=int(n), start=v.start, end=max(v.end, v.start + 0.01)))
        if v.label != "N":
            chords.notes.sort(key=lambda x: x.start)
    pm.instruments.append(chords)
    if melody is not None:
        for inst in melody.instruments:
            copy = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name or "Melody")
            copy.notes = [pretty_midi.Note(n.velocity, n.pitch + (0 if inst.is_drum else track.transpose),
                                           n.start, n.end) for n in inst.notes]
            pm.instruments.append(copy)
    # chord symbols as lyrics/markers so other tools show the names
    for seg in track.segments:
        pm.lyrics.append(pretty_midi.Lyric(track.display_symbol(seg), seg.start))
    return pm


def write_midi(track: ChordTrack, out: Path, *, melody=None, tempo_bpm: float | None = None) -> Path:
    pm = chord_midi(track, melody, tempo_bpm)
    with atomic_path(out) as tmp:
        pm.write(str(tmp))
    return out


def write_wav(track: ChordTrack, out: Path, *, sr: int = 22050, voice: str = "piano") -> Path:
    import soundfile as sf

    y = render_chords(track.segments, max(track.duration, 0.1), sr, voice, track.transpose)
    with atomic_path(out) as tmp:
        sf.write(str(tmp), y, sr, subtype="PCM_16", format="WAV")
    return out


def estimate_beats(samples: np.ndarray, sr: int) -> tuple[float, float] | None:
    """(tempo in bpm, time of the first beat in s) from librosa's beat tracker; None when it finds no beat."""
    import librosa

    tempo_bpm, beats = librosa.beat.beat_track(y=np.asarray(samples, np.float32), sr=sr, units="time")
    bpm = float(np.atleast_1d(tempo_bpm)[0])
    if not np.isfinite(bpm) or bpm <= 0 or len(beats) < 4:
        return None
    return bpm, float(beats[0])


METERS = {"4/4": (4, 1.0), "3/4": (3, 1.0), "2/4": (2, 1.0), "6/8": (2, 1.5), "9/8": (3, 1.5), "12/8": (4, 1.5)}


def lead_sheet_score(track: ChordTrack, tempo_bpm: float | None = None, title: str = "Chords",
                     first_beat_s: float = 0.0, meter: str | None = None):
    """A music21 score: one staff of slashes (rests) with chord symbols on the beats nearest the chord changes,
    at ``tempo_bpm`` counted beats per minute (default 60: one beat per second, so times read directly; in
    6/8 a beat is a dotted quarter). With ``meter`` (from the beat tracker) ``first_beat_s`` is a downbeat and
    bar 1 starts on the bar of the recording it belongs to; without it the meter is 4/4 and only the beat phase
    of ``first_beat_s`` is kept (the first chord lands on beat 0 or 1)."""
    from music21 import duration, harmony, metadata, note, stream, tempo
    from music21 import meter as m21meter

    if meter is not None and meter not in METERS:
        raise EngineError(f"cannot write a lead sheet in {meter}: use one of {', '.join(METERS)}")
    beats_per_bar, beat_ql = METERS[meter or "4/4"]
    bpm = float(tempo_bpm or 60.0)
    beat_s = 60.0 / bpm
    period = beat_s * (beats_per_bar if meter else 1)
    first_beat_s = ((float(first_beat_s) + beat_s / 2) % period) - beat_s / 2
    total_beats = max(beats_per_bar, int(np.ceil((track.duration - first_beat_s) / beat_s)))
    total_beats += (-total_beats) % beats_per_bar
    part = stream.Part()
    part.insert(0, m21meter.TimeSignature(meter or "4/4"))
    if beat_ql == 1.0:
        part.insert(0, tempo.MetronomeMark(number=round(bpm)))
    else:  # compound meter: the mark counts dotted quarters, as a musician reads 6/8
        part.insert(0, tempo.MetronomeMark(number=round(bpm), referent=duration.Duration(beat_ql)))
    placed: dict[int, str] = {}
    for seg in track.transposed_segments():
        beat = max(0, int(round((seg.start - first_beat_s) / beat_s)))
        if beat >= total_beats:
            continue
        placed[beat] = seg.label  # two changes within a beat: the later one (it sounds on the beat) wins
    last = None
    for beat in sorted(placed):
        label = placed[beat]
        if label == last:
            continue
        last = label
        chord = parse_label(label)
        symbol = harmony.NoChord() if chord.is_none else harmony.ChordSymbol(_m21_figure(chord, track.spelling()))
        part.insert(beat * beat_ql, symbol)
    for b in range(total_beats):
        part.insert(b * beat_ql, note.Rest(quarterLength=beat_ql))
    score = stream.Score()
    score.metadata = metadata.Metadata(title=title)
    score.insert(0, part)
    return score


def _m21_figure(chord, names=None) -> str:
    """music21 writes flats as '-': 'Bb' -> 'B-', 'Bbm7/Ab' -> 'B-m7/A-'."""
    text = chord.symbol(names)
    out = []
    for i, ch in enumerate(text):
        if ch == "b" and i > 0 and text[i - 1] in "ABCDEFG":
            out.append("-")
        else:
            out.append(ch)
    return "".join(out)


def write_lead_sheet(track: ChordTrack, out: Path, *, tempo_bpm: float | None = None,
                     first_beat_s: float = 0.0, meter: str | None = None) -> Path:
    score = lead_sheet_score(track, tempo_bpm, title=out.stem, first_beat_s=first_beat_s, meter=meter)
    with atomic_path(out, suffix=".musicxml") as tmp:
        written = score.write("musicxml", fp=str(tmp), makeNotation=True)
        if Path(written) != tmp:  # music21 may append its own suffix
            Path(written).replace(tmp)
    return out
