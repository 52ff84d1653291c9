"""Audio in: files to a mono 22,050 Hz signal, and the features the chord engines use (cached per file).

Readers: soundfile (libsndfile: WAV, FLAC, OGG, MP3 with libsndfile >= 1.1), then librosa/audioread as a
fallback for what libsndfile cannot decode. MIDI and MusicXML are rendered to audio (FluidSynth with the GM
soundfont when installed, else pretty_midi's sine synthesis) so they can be seen, heard and analysed too.

Features are BTC's: log-magnitude CQT, 144 bins from C1, 24 bins per octave, hop 2048 at 22,050 Hz
(about 10.77 frames per second), and a 12-bin chroma folded from the same CQT.
"""
from __future__ import annotations

import hashlib
import re
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.core.engine import CancelToken, EngineError, ProgressFn, no_progress
from engines.core.filetypes import AUDIO_SUFFIXES, MIDI_SUFFIXES, SCORE_SUFFIXES, has_suffix

log = logging.getLogger(__name__)

SR = 22050
HOP = 2048
N_BINS = 144
BINS_PER_OCTAVE = 24
FMIN_MIDI = 24  # C1
FRAME_S = HOP / SR
FEATURE_VERSION = "cqt144-24-2048-v1"
FEATURE_CHUNK_FRAMES = 3230  # CQT frames per chunk of a long recording (about 5 minutes)
MAX_SECONDS = 60 * 60  # one hour: longer recordings are refused with a message, not a memory blow-up
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")


@dataclass
class AudioClip:
    """Mono float32 samples at ``sr`` plus where they came from."""

    samples: np.ndarray
    sr: int
    source: str = ""
    original_sr: int = 0
    original_channels: int = 1
    content_hash: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. "resampled from 8000 Hz"
    midi: Any = None  # the pretty_midi.PrettyMIDI when the input was symbolic (MIDI/MusicXML)

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sr)


def short_name(name: str, limit: int = 36) -> str:
    """A file name cut in the middle for task titles and progress lines ('a very lo…(final).wav')."""
    if len(name) <= limit:
        return name
    tail = max(8, limit // 3)
    return name[:limit - tail - 1] + "…" + name[-tail:]


def file_hash(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_audio(path: str | Path, sr: int = SR, *, progress: ProgressFn = no_progress,
               cancel: CancelToken | None = None) -> AudioClip:
    """Read audio, MIDI or MusicXML as mono float32 at ``sr``. Raises EngineError with a plain reason."""
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file")
    if path.is_dir():
        raise EngineError(f"{path} is a folder: open one audio file")
    if path.stat().st_size == 0:
        raise EngineError(f"{path.name}: the file is empty")
    if has_suffix(path, MIDI_SUFFIXES) or has_suffix(path, SCORE_SUFFIXES):
        return load_symbolic(path, sr, progress=progress)
    progress(0.02, f"reading {short_name(path.name)}")
    check_duration(path, header_duration(path))  # from the header, before a byte of audio is decoded
    data, file_sr, channels = _read_samples(path)
    if cancel:
        cancel.raise_if_cancelled()
    notes = []
    if data.size == 0:
        raise EngineError(f"{path.name}: the file holds no audio samples")
    check_duration(path, data.shape[0] / file_sr)  # headers can lie (streams without a length, odd files)
    mono = mix_to_mono(data)
    if channels > 1:
        notes.append(f"mixed {channels} channels to mono")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
        notes.append("replaced non-finite samples with silence")
    if file_sr != sr:
        import librosa

        progress(0.1, f"resampling {file_sr} Hz to {sr} Hz")
        mono = librosa.resample(mono, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq").astype(np.float32)
        notes.append(f"resampled from {file_sr} Hz")  # only when the rates differ
    return AudioClip(mono, sr, str(path), file_sr, channels, file_hash(path), notes)


def mix_to_mono(data: np.ndarray) -> np.ndarray:
    """The mean of the channels (frames, channels) -> (frames,), float32. Summing column by column is ten
    times faster than ``data.mean(axis=1)`` over a short last axis (0.03 s instead of 0.3 s for 3 minutes)."""
    if data.ndim == 1:
        return data
    if data.shape[1] == 1:
        return data[:, 0]
    mono = data[:, 0].astype(np.float32, copy=True)
    for c in range(1, data.shape[1]):
        mono += data[:, c]
    mono *= np.float32(1.0 / data.shape[1])
    return mono


NATIVE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff")


def header_duration(path: Path) -> float | None:
    """The recording's length in seconds as its header states it (libsndfile, else audioread), without
    decoding the samples; None when no reader can say."""
    import gc
    import warnings

    import soundfile as sf

    seconds = None
    try:
        info = sf.info(str(path))
        seconds = info.frames / info.samplerate if info.samplerate > 0 else None
    except Exception as exc:  # noqa: BLE001 - an unreadable header is reported by the decoder that follows
        log.info("libsndfile reads no header in %s: %s", path, exc)
        if not has_suffix(path, NATIVE_SUFFIXES):  # MP3/M4A this libsndfile cannot open: ask audioread
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # audioread leaves its file open on failure
                try:
                    seconds = float(librosa.get_duration(path=str(path)))
                except Exception as exc2:  # noqa: BLE001
                    log.info("audioread reads no duration in %s: %s", path, exc2)
                gc.collect()
    return seconds if seconds is not None and np.isfinite(seconds) and seconds >= 0 else None


def format_duration(seconds: float) -> str:
    """'3 h 05 min', '59 min 12 s', '4.2 s'."""
    if seconds >= 3600:
        h, m = divmod(int(round(seconds / 60)), 60)
        return f"{h} h {m:02d} min"
    if seconds >= 60:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m} min {s:02d} s"
    return f"{seconds:.1f} s"


def check_duration(path: Path, seconds: float | None) -> None:
    """Refuse a recording longer than MAX_SECONDS with a sentence that gives the limit and its length."""
    if seconds is not None and seconds > MAX_SECONDS:
        raise EngineError(f"{path.name} is {format_duration(seconds)} long; the workstation analyses recordings "
                          f"of up to {MAX_SECONDS // 60} minutes, so cut it into parts of an hour or less.")


def _undecodable(path: Path, detail: str) -> EngineError:
    log.warning("cannot decode %s: %s", path, detail)
    return EngineError(f"{path.name}: cannot decode this file as audio; it is damaged, truncated or not a "
                       f"recording (details in the log).")


def _read_samples(path: Path) -> tuple[np.ndarray, int, int]:
    import soundfile as sf

    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(file_sr), int(data.shape[1])
    except Exception as sf_exc:  # noqa: BLE001 - libsndfile raises LibsndfileError/RuntimeError
        first = str(sf_exc).strip().splitlines()[0] if str(sf_exc).strip() else type(sf_exc).__name__
        first = re.sub(r"^Error opening .*?: ", "", first)  # the path is already in the message
    if has_suffix(path, NATIVE_SUFFIXES):  # libsndfile's own formats: a failure means a damaged file
        raise _undecodable(path, first)
    import gc
    import warnings

    try:  # MP3/M4A that this libsndfile cannot decode: librosa's audioread fallback
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns that it falls back to audioread
            y, file_sr = librosa.load(str(path), sr=None, mono=False)
        y = np.atleast_2d(y).T.astype(np.float32)
        return y, int(file_sr), int(y.shape[1])
    except Exception as exc:  # noqa: BLE001 - audioread raises NoBackendError and others
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # audioread leaves its file open on failure
            gc.collect()
        raise _undecodable(path, f"{first}; audioread: {type(exc).__name__}: {exc}") from None


# -- symbolic input -------------------------------------------------------------------------------------
def load_midi(path: Path):
    import pretty_midi

    try:
        if has_suffix(path, SCORE_SUFFIXES):
            return score_to_midi(path)
        return pretty_midi.PrettyMIDI(str(path))
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - mido/music21 raise many types for corrupt files
        raise EngineError(f"{path.name}: not a readable {'score' if has_suffix(path, SCORE_SUFFIXES) else 'MIDI'} "
                          f"file ({type(exc).__name__}: {str(exc)[:120]})") from None


def score_to_midi(path: Path):
    """MusicXML (or any score music21 reads) -> pretty_midi, repeats expanded."""
    import music21
    import pretty_midi

    score = music21.converter.parse(str(path))
    try:
        score = score.expandRepeats()
    except Exception:  # noqa: BLE001 - scores with inconsistent repeat marks play as written
        pass
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "score.mid"
        score.write("midi", fp=str(mid))
        return pretty_midi.PrettyMIDI(str(mid))


def load_symbolic(path: Path, sr: int = SR, *, progress: ProgressFn = no_progress) -> AudioClip:
    progress(0.02, f"reading {short_name(path.name)}")
    midi = load_midi(path)
    n_notes = sum(len(i.notes) for i in midi.instruments if not i.is_drum)
    if n_notes == 0:
        raise EngineError(f"{path.name}: the file has no notes to play or analyse")
    progress(0.1, "rendering the notes to audio")
    samples, how = render_midi(midi, sr)
    clip = AudioClip(samples, sr, str(path), sr, 1, file_hash(path), [f"rendered from MIDI with {how}"], midi)
    return clip


def find_soundfont() -> str | None:
    for sf2 in SOUNDFONTS:
        if Path(sf2).exists():
            return sf2
    return None


def render_midi(midi, sr: int = SR, gain: float = 0.6) -> tuple[np.ndarray, str]:
    """Render a pretty_midi object to mono float32: FluidSynth (GM soundfont) if present, else sines."""
    sf2 = find_soundfont()
    exe = shutil.which("fluidsynth")
    if sf2 and exe:
        with tempfile.TemporaryDirectory() as tmp:
            mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
            midi.write(str(mid))
            render_midi_file(mid, wav, sr, gain=gain, soundfont=sf2)
            import soundfile as sf

            data, _ = sf.read(str(wav), dtype="float32", always_2d=True)
            return np.ascontiguousarray(data.mean(axis=1)), "FluidSynth"
    y = midi.synthesize(fs=sr).astype(np.float32)
    peak = float(np.abs(y).max()) if y.size else 0.0
    return (y / peak * 0.5 if peak > 0 else y), "sine synthesis (FluidSynth not installed)"


def render_midi_file(mid: Path, wav: Path, sr: int = SR, gain: float = 0.6, soundfont: str | None = None) -> None:
    sf2 = soundfont or find_soundfont()
    exe = shutil.which("fluidsynth")
    if not (sf2 and exe):
        raise EngineError("FluidSynth and a GM soundfont are needed (apt-get install fluidsynth fluid-soundfont-gm)")
    cmd = [exe, "-ni", "-q", "-g", str(gain), "-r", str(sr), "-F", str(wav), "-T", "wav", sf2, str(mid)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not wav.exists():
        raise EngineError(f"FluidSynth failed: {(proc.stderr or proc.stdout).strip()[:200]}")


# -- features -------------------------------------------------------------------------------------------
def log_cqt(samples: np.ndarray, sr: int = SR) -> np.ndarray:
    """BTC's input: log(|CQT| + 1e-6), shape (frames, 144), float32."""
    import librosa

    if len(samples) < HOP:
        samples = np.pad(samples, (0, HOP - len(samples)))
    cqt = librosa.cqt(samples.astype(np.float32), sr=sr, hop_length=HOP, fmin=librosa.midi_to_hz(FMIN_MIDI),
                      n_bins=N_BINS, bins_per_octave=BINS_PER_OCTAVE)
    return np.log(np.abs(cqt) + 1e-6).T.astype(np.float32)


def chroma_from_log_cqt(logcqt: np.ndarray) -> np.ndarray:
    """Fold the CQT magnitude into 12 pitch classes (C = 0), each frame normalized to max 1.

    With 24 bins per octave from C1, even bin k sits on the semitone k / 2 (pitch class (k // 2) % 12) and
    an odd bin half way between two semitones; a half-way bin is split between its two neighbours.
    """
    mag = np.exp(logcqt) - 1e-6
    mag = np.maximum(mag, 0.0)
    frames = mag.shape[0]
    chroma = np.zeros((frames, 12), dtype=np.float32)
    for k in range(mag.shape[1]):
        if k % 2 == 0:
            chroma[:, (k // 2) % 12] += mag[:, k]
        else:
            chroma[:, (k // 2) % 12] += 0.5 * mag[:, k]
            chroma[:, (k // 2 + 1) % 12] += 0.5 * mag[:, k]
    return chroma


@dataclass
class Features:
    logcqt: np.ndarray  # (frames, 144)
    chroma: np.ndarray  # (frames, 12), raw magnitudes folded
    frame_s: float = FRAME_S
    version: str = FEATURE_VERSION

    @property
    def n_frames(self) -> int:
        return int(self.logcqt.shape[0])


def compute_features(clip: AudioClip, *, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                     use_cache: bool = True) -> Features:
    """Log-CQT and chroma of a clip; cached in the user cache folder by content hash."""
    cache_file = None
    if use_cache and clip.content_hash:
        from engines.core.paths import cache_dir

        key = hashlib.sha1(f"{clip.content_hash}:{clip.sr}:{FEATURE_VERSION}".encode()).hexdigest()
        cache_file = cache_dir() / "music-features" / f"{key}.npz"
        if cache_file.exists():
            try:
                with np.load(cache_file, allow_pickle=False) as z:
                    return Features(z["logcqt"], z["chroma"])
            except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
                log.warning("damaged feature cache %s; recomputing", cache_file)
    progress(0.2, "computing the constant-Q spectrum")
    # in chunks of ~5 minutes so that cancel and progress work on long recordings; each chunk builds the CQT
    # filters again (0.08 s), so shorter chunks cost a songs-length recording a third of its feature time
    chunk = HOP * FEATURE_CHUNK_FRAMES
    parts = []
    n = len(clip.samples)
    if n <= chunk * 1.5:
        parts.append(log_cqt(clip.samples, clip.sr))
    else:
        pad = HOP * 16
        for start in range(0, n, chunk):
            if cancel:
                cancel.raise_if_cancelled()
            progress(0.2 + 0.6 * start / n, f"constant-Q spectrum {start / clip.sr:.0f} s / {n / clip.sr:.0f} s")
            lo = max(0, start - pad)
            seg = log_cqt(clip.samples[lo:min(n, start + chunk + pad)], clip.sr)
            skip = (start - lo) // HOP
            want = min(chunk, n - start)
            parts.append(seg[skip: skip + int(np.ceil(want / HOP))])
    logcqt = np.concatenate(parts, axis=0)
    expected = 1 + n // HOP
    logcqt = logcqt[:expected]
    feats = Features(logcqt, chroma_from_log_cqt(logcqt))
    if cache_file is not None:
        from engines.core.atomic import atomic_path

        try:
            with atomic_path(cache_file) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, logcqt=feats.logcqt, chroma=feats.chroma)
        except OSError as exc:
            log.warning("could not cache features: %s", exc)
    return feats
