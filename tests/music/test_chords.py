"""Chord labels, the editable chord track, voice leading, key estimation: no audio, no Qt."""
from __future__ import annotations

import numpy as np
import pytest

from engines.music.chords import (
    LARGE_VOCAB, MAJMIN_VOCAB, ChordSegment, ChordTrack, frame_labels, normalize_label, parse_label,
    shift_index, to_majmin,
)
from engines.music.keys import MAJOR_PROFILE, estimate_key
from engines.music.synth import voice_chords


def test_labels_parse_both_mirex_and_lead_sheet_spellings():
    assert normalize_label("Am") == "A:min"
    assert normalize_label("C/E") == "C:maj/3"
    assert normalize_label("Bb:min7/b7") == "Bb:min7/b7"
    assert parse_label("F#m7b5").quality == "hdim7"
    assert parse_label("N").is_none
    assert parse_label("G:7").symbol() == "G7"
    with pytest.raises(ValueError):
        parse_label("H:maj")
    with pytest.raises(ValueError):
        parse_label("C:weird")


def test_transpose_keeps_slash_bass_right():
    chord = parse_label("C:maj/3")  # C/E
    up = chord.transpose(2)
    assert up.symbol() == "D/F#" and up.label() == "D:maj/3"
    assert parse_label("Am/G").transpose(-2).symbol() == "Gm/F"


def test_vocabularies_and_frame_labels():
    assert len(MAJMIN_VOCAB) == 25 and len(LARGE_VOCAB) == 170
    assert to_majmin(parse_label("B:hdim7")) == "B:min"
    assert to_majmin(parse_label("G:7")) == "G:maj"
    assert MAJMIN_VOCAB[shift_index(MAJMIN_VOCAB.index("A:min"), 3, "majmin")] == "C:min"
    segs = [ChordSegment(0, 1, "C:maj"), ChordSegment(1, 2, "A:min")]
    labels = frame_labels(segs, 5, 0.5, "majmin")
    assert [MAJMIN_VOCAB[i] for i in labels] == ["C:maj", "C:maj", "A:min", "A:min", "N"]


def _track() -> ChordTrack:
    return ChordTrack([ChordSegment(0, 2, "C:maj"), ChordSegment(2, 4, "A:min"), ChordSegment(4, 6, "G:7")], 6.0)


def test_edits_keep_segments_contiguous_and_undo_redo():
    track = _track()
    track.split(0, 1.0)
    assert [s.label for s in track.segments] == ["C:maj", "C:maj", "A:min", "G:7"]
    track.rename(1, "F")
    track.move_boundary(1, 2.5)
    track.merge_next(2)
    labels = [(s.start, s.end, s.label) for s in track.segments]
    assert labels == [(0, 1.0, "C:maj"), (1.0, 2.5, "F:maj"), (2.5, 6, "A:min")]
    assert all(a.end == b.start for a, b in zip(track.segments, track.segments[1:]))
    for _ in range(4):
        assert track.undo()
    assert [s.label for s in track.segments] == ["C:maj", "A:min", "G:7"]
    assert not track.undo()
    assert track.redo() and len(track.segments) == 4
    with pytest.raises(ValueError):
        track.rename(0, "not a chord")
    with pytest.raises(ValueError):
        track.split(0, 0.01)


def test_rename_in_transposed_view_stores_concert_pitch():
    track = _track()
    track.set_transpose(2)
    track.rename(0, "D/F#")  # what the musician sees with capo 2
    assert track.segments[0].label == "C:maj/3"
    assert track.display_label(track.segments[0]) == "D:maj/3"


def test_lab_and_json_round_trip():
    track = _track()
    track.set_transpose(-1)
    again = ChordTrack.from_lab_text(track.to_lab(transposed=False))
    assert [s.label for s in again.segments] == ["C:maj", "A:min", "G:7"]
    assert "B:maj" in track.to_lab()  # the export is transposed as displayed
    restored = ChordTrack.from_json(track.to_json())
    assert restored.transpose == -1 and restored.segments[2].label == "G:7"


def test_voice_leading_moves_little_and_puts_the_slash_bass_in_the_bass():
    segs = [ChordSegment(i, i + 1, lab) for i, lab in enumerate(["C:maj", "A:min", "F:maj", "G:7", "C:maj/3"])]
    voiced = voice_chords(segs)
    for a, b in zip(voiced, voiced[1:]):
        movement = sum(min(abs(x - y) for y in a.upper) for x in b.upper)
        assert movement <= 5, (a, b)
    assert voiced[-1].bass % 12 == 4  # C/E: E in the bass
    assert {n % 12 for n in voiced[3].upper} == {7, 11, 2, 5}  # G7 complete


def test_key_estimate_on_profiles():
    assert estimate_key(np.roll(MAJOR_PROFILE, 7)).name == "G major"
    assert estimate_key(np.zeros((10, 12))) is None


def test_symbols_are_spelled_for_the_key():
    track = ChordTrack([ChordSegment(0, 1, "Ab:min"), ChordSegment(1, 2, "Bb:maj")], 2.0, key="A minor")
    assert [track.display_symbol(s) for s in track.segments] == ["G#m", "Bb"]
    track.key = "F major"
    assert [track.display_symbol(s) for s in track.segments] == ["Abm", "Bb"]
    track.set_transpose(1)  # F# major: sharps
    assert track.display_key() == "F# major" and track.display_symbol(track.segments[0]) == "Am"
