"""Audio output through sounddevice (PortAudio), imported lazily; no Qt.

``AudioPlayer.availability()`` says whether playback can work here and, if not, why (no PortAudio library,
no output device). Everything else in the workspace works without it.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

NO_DEVICE = "No sound output device was found; playback is off."
NO_PORTAUDIO = ("The PortAudio library is not installed, so playback is unavailable here (on Debian/Ubuntu "
                "install libportaudio2).")
NO_SOUNDDEVICE = "The sounddevice package is not installed, so playback is unavailable here."
_DEVICE_WORDS = ("querying device", "invalid device", "no default output", "device unavailable",
                 "invalid number of channels", "no such device", "unanticipated host error")


class PlaybackError(RuntimeError):
    """Playback could not start; the message is a plain sentence for the user (the detail is in the log)."""


def describe_playback_error(exc: BaseException) -> str:
    """A sentence for a PortAudio/sounddevice failure ('Error querying device -1' -> no output device); the
    library's own words go to the log."""
    text = str(exc).strip() or type(exc).__name__
    log.warning("sound output: %s: %s", type(exc).__name__, text)
    if any(word in text.lower() for word in _DEVICE_WORDS):
        return NO_DEVICE
    return "The sound output reported an error, so playback stopped (the details are in the log)."


def playback_availability() -> tuple[bool, str]:
    """(True, device name) or (False, a plain sentence saying why playback is off)."""
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        log.warning("sounddevice cannot load PortAudio: %s", exc)
        return False, NO_PORTAUDIO
    except ImportError as exc:
        log.warning("sounddevice is not importable: %s", exc)
        return False, NO_SOUNDDEVICE
    try:
        device = sd.query_devices(kind="output")
    except Exception as exc:  # noqa: BLE001 - PortAudioError and ValueError for 'no default output'
        log.warning("no sound output device: %s", str(exc).strip() or type(exc).__name__)
        return False, NO_DEVICE
    return True, str(device.get("name", "default output"))


class AudioPlayer:
    """Plays a mono float32 buffer with play/pause/seek and an optional loop region.

    The PortAudio callback runs on its own thread and only reads the buffer under a lock; ``position`` is
    polled by the view (a timer), so no Qt object is touched off the GUI thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, np.float32)
        self.sr = 22050
        self._pos = 0  # samples
        self._loop: tuple[int, int] | None = None
        self._stream = None
        self.playing = False
        self._started_at = 0.0

    # -- buffer and position (work without a device) -------------------------------------------------
    def set_buffer(self, samples: np.ndarray, sr: int) -> None:
        stale = None
        with self._lock:
            self._buffer = np.ascontiguousarray(samples, dtype=np.float32)
            if sr != self.sr and self._stream is not None:
                stale, self._stream = self._stream, None
                self.playing = False
            self.sr = int(sr)
            self._pos = min(self._pos, len(self._buffer))
        if stale is not None:  # outside the lock: closing waits for the callback, which takes the lock
            _stop_and_close(stale)

    @property
    def duration(self) -> float:
        return len(self._buffer) / float(self.sr)

    def position(self) -> float:
        with self._lock:
            return self._pos / float(self.sr)

    def seek(self, seconds: float) -> None:
        with self._lock:
            self._pos = int(np.clip(seconds, 0.0, self.duration) * self.sr)

    def set_loop(self, start: float | None, end: float | None = None) -> None:
        with self._lock:
            if start is None or end is None or end - start < 0.05:
                self._loop = None
            else:
                self._loop = (int(start * self.sr), int(end * self.sr))

    @property
    def loop(self) -> tuple[float, float] | None:
        return None if self._loop is None else (self._loop[0] / self.sr, self._loop[1] / self.sr)

    # -- device --------------------------------------------------------------------------------------
    def play(self) -> None:
        """Start (or resume) playback; raises PlaybackError with a plain sentence when there is no output."""
        ok, reason = playback_availability()
        if not ok:
            raise PlaybackError(reason)
        import sounddevice as sd

        try:
            if self._stream is None:
                self._stream = sd.OutputStream(samplerate=self.sr, channels=1, dtype="float32",
                                               callback=self._callback, blocksize=1024)
            with self._lock:
                if self._loop is not None and not (self._loop[0] <= self._pos < self._loop[1]):
                    self._pos = self._loop[0]
                if self._pos >= len(self._buffer):
                    self._pos = 0
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudioError and others: one sentence, detail logged
            self._close_stream()
            raise PlaybackError(describe_playback_error(exc)) from None
        self.playing = True
        self._started_at = time.monotonic()

    def pause(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
            except Exception:  # noqa: BLE001 - a vanished device must not break pausing
                pass
        self.playing = False

    def close(self, timeout: float | None = None) -> bool:
        """Stop playback and release the output stream. With ``timeout`` (seconds) the stream is stopped on a
        helper thread and waited for at most that long, so a sound driver that hangs in stop/close cannot hang
        the caller (a window that closes); True when the stream was released in time. Without a stream (no
        sound card, never played) this returns at once."""
        stream, self._stream = self._stream, None
        self.playing = False
        if stream is None:
            return True
        if timeout is None:
            _stop_and_close(stream)
            return True
        worker = threading.Thread(target=_stop_and_close, args=(stream,), name="audio-close", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            log.warning("the sound output did not close within %.1f s; left to finish on its own", timeout)
            return False
        return True

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # noqa: BLE001
                pass
            self._stream = None

    def _callback(self, outdata, frames, _time, _status) -> None:  # PortAudio thread
        with self._lock:
            out = outdata[:, 0]
            filled = 0
            while filled < frames:
                end = len(self._buffer) if self._loop is None else min(self._loop[1], len(self._buffer))
                if self._pos >= end:
                    if self._loop is None:
                        out[filled:] = 0.0
                        self.playing = False
                        break
                    self._pos = self._loop[0]
                n = min(frames - filled, end - self._pos)
                out[filled:filled + n] = self._buffer[self._pos:self._pos + n]
                self._pos += n
                filled += n


def _stop_and_close(stream) -> None:
    """Stop then close a sounddevice stream, ignoring a vanished device (never called under the player's lock)."""
    for step in (stream.stop, stream.close):
        try:
            step()
        except Exception:  # noqa: BLE001 - PortAudioError and others: nothing left to release
            pass


def mix(audio: np.ndarray | None, chords: np.ndarray | None, mode: str, chord_gain: float = 1.0) -> np.ndarray:
    """The buffer to play: 'audio', 'chords' or 'mix' (audio at -3 dB plus the chords), peak-safe."""
    if mode == "audio" or chords is None:
        return np.asarray(audio if audio is not None else np.zeros(1), np.float32)
    if mode == "chords" or audio is None:
        return np.asarray(chords * chord_gain, np.float32)
    n = max(len(audio), len(chords))
    out = np.zeros(n, np.float32)
    out[:len(audio)] += 0.7 * audio
    out[:len(chords)] += chord_gain * chords
    peak = float(np.abs(out).max()) if n else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out
