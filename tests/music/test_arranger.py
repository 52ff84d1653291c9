"""The arranger: deterministic songs whose labels are what the parts play, in the styles, metres, tempi and
harmony it promises; the render script's effects chain on a generated signal; one real FluidSynth render
recognised by the shipped BTC through the engine's own path."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engines.music.arranger import METERS, STYLES, arrange, parse_roman
from engines.music.chords import parse_label

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def songs():
    return [arrange(seed, max_seconds=60) for seed in range(48)]


def _notes(song, name):
    inst = next((i for i in song.midi.instruments if i.name == name), None)
    return [] if inst is None else inst.notes


def test_same_seed_same_song_and_different_seeds_differ():
    a, b, c = arrange(11), arrange(11), arrange(12)
    assert a.lab_text() == b.lab_text()
    notes = lambda s: [(i.name, n.pitch, round(n.start, 6), round(n.end, 6), n.velocity)
                       for i in s.midi.instruments for n in i.notes]
    assert notes(a) == notes(b)
    assert a.lab_text() != c.lab_text()


@pytest.mark.parametrize("token, label", [("V7/V", "D:7"), ("bVII", "Bb:maj"), ("I_3", "C:maj/3"),
                                          ("iih7", "D:hdim7"), ("V+", "G:aug"), ("viio7", "B:dim7"),
                                          ("i_b7", "C:min/b7"), ("I6", "C:maj6"), ("V7/ii", "A:7"),
                                          ("Vsus4", "G:sus4"), ("iv7", "F:min7")])
def test_roman_numerals(token, label):
    assert parse_roman(token).absolute(0).label() == label


def test_labels_are_what_the_comping_parts_play(songs):
    """Inside every chord, the comping and pad notes use only the label's pitch classes (and its slash
    bass), every chord tone is played by some harmony part, and the bass starts on the label's bass."""
    checked = 0
    for song in songs:
        harmony = [n for name in ("comp", "comp2", "pad") for n in _notes(song, name)]
        power = any(k.startswith("comp-power") for k in song.parts)
        bass = _notes(song, "bass")
        for seg in song.chords:
            if seg.label == "N":
                assert not [n for n in harmony if seg.start + 0.05 < n.start < seg.end - 0.05]
                continue
            chord = parse_label(seg.label)
            allowed = set(chord.pitch_classes()) | {chord.bass_pc()}
            inside = [n for n in harmony if seg.start - 0.06 <= n.start < seg.end - 0.06]
            assert inside, (song.describe(), seg)
            played = {n.pitch % 12 for n in inside}
            assert played <= allowed, (song.describe(), seg.label, sorted(played))
            if not power or "comp2" in song.parts:
                assert set(chord.pitch_classes()) <= played, (song.describe(), seg.label, sorted(played))
            first = min((n for n in bass if abs(n.start - seg.start) < 0.06), key=lambda n: n.start, default=None)
            assert first is not None and first.pitch % 12 == chord.bass_pc(), (song.describe(), seg.label)
            checked += 1
    assert checked > 500


def test_labels_cover_the_song_and_sit_on_beats(songs):
    for song in songs:
        segs = song.chords
        assert segs[0].start == 0.0 and abs(segs[-1].end - song.duration) < 1e-9
        assert all(abs(a.end - b.start) < 1e-9 and a.end > a.start for a, b in zip(segs, segs[1:]))
        spb = 60.0 / song.bpm
        assert np.allclose(np.diff(song.beats), spb)
        bar = METERS[song.meter][0]
        assert np.allclose(song.downbeats, song.beats[::bar])
        for s in segs[1:-1]:
            assert np.min(np.abs(song.beats - s.start)) < 1e-6, (song.describe(), s)
        assert song.duration <= 60 + 2.0
        assert 60 <= song.bpm <= 180
        drums = [i for i in song.midi.instruments if i.is_drum]
        if drums:
            assert all(35 <= n.pitch <= 81 for n in drums[0].notes)


def test_the_promised_variety(songs):
    more = songs + [arrange(seed, max_seconds=120) for seed in range(48, 120)]
    assert {s.style for s in more} == set(STYLES)
    assert {s.meter for s in more} == set(METERS)
    assert any(s.swing for s in more) and not all(s.swing for s in more)
    assert {s.mode for s in more} == {"major", "minor"}
    qualities = Counter(parse_label(seg.label).quality for s in more for seg in s.chords if seg.label != "N")
    for q in ("maj", "min", "7", "maj7", "min7", "sus4", "dim7", "hdim7"):
        assert qualities[q] > 0, q
    assert any("/" in seg.label for s in more for seg in s.chords)
    assert any(len({sec.tonic for sec in s.sections}) > 1 for s in more)  # modulations
    assert any(sec.name == "chorus" for s in more for sec in s.sections)
    programs = Counter(p for s in more for k, p in s.parts.items() if k.startswith("comp"))
    assert {0, 16, 25}.issubset(programs) and any(p in programs for p in (29, 30))
    bpms = [s.bpm for s in more]
    assert min(bpms) < 80 and max(bpms) > 140


def _render_module():
    spec = importlib.util.spec_from_file_location("render_arranged", ROOT / "scripts/music/render_arranged.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_effects_chain_keeps_length_and_changes_the_sound():
    import random

    mod = _render_module()
    sr = 22050
    t = np.arange(sr * 3) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    out, applied = mod.produce(y.copy(), y.copy(), sr, random.Random(3))
    assert out.shape == y.shape and np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert any("overdrive" in a for a in applied)
    assert np.corrcoef(out, y)[0, 1] < 0.999
    squashed = mod.compress(y, sr, threshold_db=-30, ratio=8)
    crest = lambda v: np.abs(v).max() / np.sqrt(np.mean(v ** 2))
    assert crest(squashed) < crest(y)
    trip, how = mod.codec_round_trip(y, sr, random.Random(1))
    assert trip.shape == y.shape and how.split()[0] in ("ogg", "mp3")


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(),
                    reason="FluidSynth with the GM soundfont renders the song")
def test_a_rendered_song_is_recognised_through_the_engine(tmp_path):
    """A short arranged song, rendered and produced, then recognised by the shipped BTC from features: the
    labels line up with what is heard (roots right most of the time)."""
    from engines.music.audio import SR, AudioClip, compute_features
    from engines.music.chords import ChordTrack
    from engines.music.evaluate import wcsr
    from engines.music.recognize import BTCChordEngine

    mod = _render_module()
    song, y, applied = mod.render_song(4, Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), 20.0, fx=True)
    assert len(y) == int(song.duration * SR) and applied
    engine = BTCChordEngine()
    engine.load("cpu")
    clip = AudioClip(y, SR, "song4")
    track = engine.predict({"clip": clip, "features": compute_features(clip)})
    scores, _ = wcsr(ChordTrack.from_lab_text(song.lab_text(), song.duration).segments, track.segments)
    assert scores["root"] > 0.7, scores
