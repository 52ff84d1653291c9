"""Playback failures read as plain sentences: sounddevice's 'Error querying device -1' becomes "No sound output
device was found; playback is off." in the window, and PortAudio's own words go to the log."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from engines.music import playback
from engines.music.playback import NO_DEVICE, AudioPlayer, PlaybackError, describe_playback_error


@pytest.fixture
def sd():
    return pytest.importorskip("sounddevice")


def _no_device(*args, **kwargs):
    import sounddevice

    raise sounddevice.PortAudioError("Error querying device -1")


def test_no_output_device_is_one_plain_sentence_and_the_detail_is_logged(sd, monkeypatch, caplog):
    monkeypatch.setattr(sd, "query_devices", _no_device)
    with caplog.at_level(logging.WARNING, logger="engines.music.playback"):
        assert playback.playback_availability() == (False, NO_DEVICE)
    assert "Error querying device -1" in caplog.text
    player = AudioPlayer()
    player.set_buffer(np.zeros(100, np.float32), 22050)
    with pytest.raises(PlaybackError, match="^No sound output device was found; playback is off.$"):
        player.play()
    assert not player.playing


def test_a_stream_that_fails_to_open_is_a_plain_sentence(sd, monkeypatch, caplog):
    monkeypatch.setattr(sd, "query_devices", lambda *a, **k: {"name": "ghost"})

    def broken_stream(*args, **kwargs):
        raise sd.PortAudioError("Error opening OutputStream: Invalid device [PaErrorCode -9996]")

    monkeypatch.setattr(sd, "OutputStream", broken_stream)
    player = AudioPlayer()
    with caplog.at_level(logging.WARNING, logger="engines.music.playback"):
        with pytest.raises(PlaybackError) as info:
            player.play()
    assert str(info.value) == NO_DEVICE and "-9996" in caplog.text
    assert describe_playback_error(RuntimeError("buffer underflow")).startswith("The sound output reported an error")


def test_the_music_view_says_it_in_messages(qtbot, window, tmp_path, sd, monkeypatch, caplog):
    from tests.music.test_trust_view import open_recording, render_wav

    view = open_recording(qtbot, window.switch_to("music"), render_wav(tmp_path / "play.wav"))
    view.source_box.setCurrentIndex(0)  # the recording itself: no synthesis task
    monkeypatch.setattr(sd, "query_devices", _no_device)
    with caplog.at_level(logging.WARNING, logger="engines.music.playback"):
        view.toggle_play()
    warnings = [n.message for n in window.notifications.items if n.level == "warning"]
    assert NO_DEVICE in warnings and not any("-1" in m for m in warnings)
    assert view.status.text().startswith(NO_DEVICE) and not view.player.playing
    assert "Error querying device -1" in caplog.text
