"""The music view is a thin layer over MusicSession: the agreement with the reference is recomputed off the GUI
thread after edits (debounced, stale results dropped), and closing the view is bounded even when the sound output
hangs. Recordings are rendered with the workstation's synthesizer and recognized with the template engine."""
from __future__ import annotations

import threading

import numpy as np

from engines.music.chords import ChordSegment, ChordTrack
from engines.music.playback import AudioPlayer
from tests.music.test_trust_view import PROGRESSION, open_recording, render_wav


def _with_reference(tmp_path):
    wav = render_wav(tmp_path / "cadence.wav")
    ChordTrack([ChordSegment(i * 2.0, (i + 1) * 2.0, lab) for i, lab in enumerate(PROGRESSION)], 8.0) \
        .write_lab(wav.with_suffix(".lab"), transposed=False)
    return wav


def test_agreement_is_rescored_in_a_worker_after_edits(qtbot, window, tmp_path, monkeypatch):
    import engines.music.session as session_module

    threads: list[str] = []
    real = session_module.agreement

    def spy(reference, segments):
        threads.append(threading.current_thread().name)
        return real(reference, segments)

    monkeypatch.setattr(session_module, "agreement", spy)
    view = open_recording(qtbot, window.switch_to("music"), _with_reference(tmp_path))
    assert view.reference is not None and view.last_scores["majmin"] > 0.9
    assert view.ref_plot.getAxis("left").labelText.startswith("Ref. ")
    before = view.last_scores["majmin"]
    for index in range(len(view.track.segments)):  # a burst of edits: every chord becomes F#
        view.select(index)
        assert view.rename_selected("F#")
    assert view.session.needs_scoring and view.last_scores["majmin"] == before  # nothing scored on the GUI thread
    qtbot.waitUntil(lambda: not view.session.needs_scoring, timeout=10_000)
    assert view.last_scores["majmin"] < 0.1
    assert f"{view.last_scores['majmin'] * 100:.0f}%" in view.ref_plot.getAxis("left").labelText
    assert threads and threading.main_thread().name not in threads
    assert len(threads) <= 3  # the recognition's score plus one or two debounced rescoring runs, not one per edit


class HangingStream:
    """A sound output whose stop() never returns until released (a wedged driver)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.release.wait(60)

    def close(self) -> None:
        pass


def test_closing_the_view_is_bounded_when_the_sound_output_hangs(qtbot, window, tmp_path, caplog):
    view = open_recording(qtbot, window.switch_to("music"), render_wav(tmp_path / "hang.wav"))
    stream = HangingStream()
    view.player._stream, view.player.playing = stream, True  # as if playing on a device that then wedged
    try:
        view.shutdown()  # returns although the stream's stop() is still blocked
        assert stream.stopping.is_set() and not stream.release.is_set()
        assert "did not close" in caplog.text
        assert view.player._stream is None and not view.player.playing
    finally:
        stream.release.set()


class CallbackStream:
    """A stream whose close() waits for one more PortAudio callback, as Pa_CloseStream does."""

    def __init__(self, player: AudioPlayer) -> None:
        self.player, self.finished = player, None

    def stop(self) -> None:
        pass

    def close(self) -> None:
        out = np.zeros((256, 1), np.float32)
        worker = threading.Thread(target=self.player._callback, args=(out, 256, None, None), daemon=True)
        worker.start()
        worker.join(5)
        self.finished = not worker.is_alive()


def test_a_new_sample_rate_closes_the_stream_outside_the_players_lock():
    player = AudioPlayer()
    player.set_buffer(np.zeros(1000, np.float32), 22050)
    stream = CallbackStream(player)
    player._stream = stream
    player.set_buffer(np.zeros(1000, np.float32), 44100)  # the old stream is closed; its callback must not wait
    assert stream.finished is True and player._stream is None and player.sr == 44100
