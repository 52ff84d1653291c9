"""Hostile and odd audio: a recording over the hour limit is refused from its header before any decoding, with
the limit and its length; damaged files give one plain sentence; the resampling note appears only when the
file was resampled."""
from __future__ import annotations

import struct
import wave

import numpy as np
import pytest
import soundfile as sf

from engines.core.engine import EngineError
from engines.music.audio import SR, format_duration, header_duration, load_audio


def sparse_wav(path, seconds: float, sr: int = 44100, channels: int = 2):
    """A WAV whose header promises ``seconds`` of 16-bit audio; the data is a sparse hole (no disk used)."""
    frames = int(seconds * sr)
    data_bytes = frames * channels * 2
    header = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " +
              struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * channels * 2, channels * 2, 16) +
              b"data" + struct.pack("<I", data_bytes))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)
    return path


def test_a_three_hour_wav_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    import soundfile

    path = sparse_wav(tmp_path / "concert.wav", 3 * 3600)
    assert path.stat().st_size > 1.8e9
    assert abs(header_duration(path) - 3 * 3600) < 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("the samples were decoded before the length was checked")

    monkeypatch.setattr(soundfile, "read", no_decoding)
    with pytest.raises(EngineError) as info:
        load_audio(path)
    message = str(info.value)
    assert "concert.wav" in message and "3 h 00 min" in message and "60 minutes" in message
    assert "\n" not in message


def test_a_recording_under_the_limit_still_opens(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, np.zeros(SR * 2, np.float32), SR)
    assert abs(load_audio(path).duration - 2.0) < 1e-3


@pytest.mark.parametrize("content", [b"RIFF\x00\x00\x00\x00WAVEfmt ", b"fLaC" + bytes(200), b"OggS" + bytes(300),
                                     bytes(range(256)) * 4])
def test_damaged_audio_gives_one_plain_sentence(tmp_path, content):
    path = tmp_path / "damaged.flac" if content.startswith(b"fLaC") else tmp_path / "damaged.wav"
    path.write_bytes(content)
    with pytest.raises(EngineError) as info:
        load_audio(path)
    message = str(info.value)
    assert message.startswith(f"{path.name}: cannot decode this file as audio")
    assert message.count(".") <= 2 and "\n" not in message
    assert "Error" not in message and "libsndfile" not in message.lower()  # details go to the log


def test_the_resampling_note_only_when_resampled(tmp_path):
    native = tmp_path / "native.wav"
    with wave.open(str(native), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR)
        w.writeframes(np.zeros(SR, np.int16).tobytes())
    assert not any("resampled" in n for n in load_audio(native).notes)
    cd = tmp_path / "cd.wav"
    sf.write(cd, np.zeros(44100, np.float32), 44100)
    clip = load_audio(cd)
    assert clip.original_sr == 44100 and "resampled from 44100 Hz" in clip.notes


def test_durations_read_plainly():
    assert format_duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert format_duration(61 * 60 + 12) == "1 h 01 min"
    assert format_duration(59 * 60 + 12) == "59 min 12 s"
    assert format_duration(4.24) == "4.2 s"
