"""The bundled real song (a produced rock recording from the Frets on Fire song pack): it is a sample of the
music workspace, opens as audio, carries its licence, passes the chord engines' input contract and gets real
chords (not all N) from BTC through the engine's own path."""
from __future__ import annotations

from engines.core.samples import all_samples, sample_path
from engines.music.audio import load_audio
from engines.music.recognize import BTCChordEngine


def test_real_song_sample_is_registered_with_its_licence():
    assert all_samples()["real-song"] == "engines.music.samples:make_real_song"
    path = sample_path("real-song")
    assert path.suffix == ".ogg"
    licence = (path.parent / "sectoid-feelings-excerpt.LICENSE.txt").read_text(encoding="utf-8")
    assert "Permission is hereby granted" in licence and "fretsonfire-songs-sectoid" in licence


def test_btc_finds_chords_in_the_real_song():
    clip = load_audio(sample_path("real-song"))
    assert 39.0 < clip.duration < 41.0 and clip.original_channels == 2
    engine = BTCChordEngine()
    engine.load("cpu")
    track = engine.predict({"clip": clip})
    assert [c.status for c in track.checks] == ["passed"] * len(track.checks), track.checks
    voiced = sum(s.duration for s in track.segments if s.label != "N")
    assert voiced > 0.9 * clip.duration
    assert len({s.label for s in track.segments}) >= 3
    assert track.key
