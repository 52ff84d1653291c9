"""Render arranged songs (engines/music/arranger.py) to features with exact labels: FluidSynth with one of
several Debian soundfonts, then a produced-recording effects chain, then BTC's log-CQT. Audio is not kept.

    flock /tmp/csi-training.lock .venv/bin/python scripts/music/render_arranged.py --split train \
        --seeds 0:300 --seconds 60 --out /out/arranged/train
    flock /tmp/csi-training.lock .venv/bin/python scripts/music/render_arranged.py --split test \
        --seeds 0:40 --seconds 60 --out /out/arranged/test

Splits never share timbres or songs: training uses FluidR3 GM/GS (fluid-soundfont-gm/-gs), FluidR3Mono
(fluidr3mono-gm-soundfont), the Csound GM bank (csound-soundfont) and the OPL-3 FM bank (opl3-soundfont);
the test split uses only TimGM6mb (timgm6mb-soundfont) and MuseScore General (musescore-general-soundfont),
which training never hears, and its seeds are offset by TEST_SEED_OFFSET so no test song is a training song.

Effects (audiomentations, MIT, when importable - it is looked for on sys.path and in /out/fx, where
`pip install --target /out/fx --no-deps audiomentations numpy-minmax numpy-rms python-stretch` puts it -
else the scipy fallbacks below): overdrive on distorted-guitar parts (rendered as their own stem), a
room reverb (a synthetic impulse response: early reflections + exponentially decaying filtered noise,
RT60 0.2-2 s), a feed-forward compressor, EQ (shelves and peaking bands), coloured noise at 15-45 dB SNR,
and a lossy codec round trip (Ogg Vorbis or MP3 through libsndfile at a random quality).

Each song gives NAME_v0.npz with: logcqt (float16), lab (MIREX chords with sevenths and slash basses),
name, duration, key, keys (section keys), beats, downbeats, onset (librosa onset strength, hop 512, for beat
trackers), style, meter, bpm, soundfont, effects; the same fields the chorale dataset has, so
scripts/music/train_btc.py and scripts/music/eval_real.py read both.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.music.arranger import DISTORTED, arrange  # noqa: E402
from engines.music.audio import SR, log_cqt  # noqa: E402

SF2, SF3 = Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3")
TRAIN_SOUNDFONTS = {
    "fluid-gm": SF2 / "FluidR3_GM.sf2", "fluid-gs": SF2 / "FluidR3_GS.sf2",
    "fluidr3mono": SF3 / "FluidR3Mono_GM.sf3", "csound": SF2 / "sf_GMbank.sf2",
    "opl3": SF2 / "OPL-3_FM_128M.sf2",
}
#: evaluation timbres only: never used for training renders
TEST_SOUNDFONTS = {"timgm6mb": SF2 / "TimGM6mb.sf2", "musescore": SF3 / "MuseScore_General_Full.sf3"}
TEST_SEED_OFFSET = 1_000_000
FX_PATH = Path("/out/fx")


def fluidsynth(mid: Path, wav: Path, soundfont: Path, sr: int = SR, gain: float = 0.5) -> None:
    """Render with FluidSynth; dynamic sample loading makes the .sf3 (Vorbis-compressed) fonts load only the
    samples the song uses (MuseScore General: 21 s -> 2.7 s per call)."""
    import shutil
    import subprocess

    exe = shutil.which("fluidsynth")
    if not exe:
        raise SystemExit("FluidSynth is needed: apt-get install --no-install-recommends fluidsynth")
    cmd = [exe, "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-g", str(gain), "-r", str(sr),
           "-F", str(wav), "-T", "wav", str(soundfont), str(mid)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not wav.exists():
        raise RuntimeError(f"FluidSynth failed on {mid.name} with {soundfont.name}: {proc.stderr.strip()[:200]}")


def _audiomentations():
    try:
        import audiomentations  # noqa: F401
    except ImportError:
        if FX_PATH.exists():
            sys.path.append(str(FX_PATH))
        try:
            import audiomentations  # noqa: F401
        except ImportError:
            return None
    import audiomentations

    return audiomentations


def reverb_ir(rng: random.Random, sr: int) -> tuple[np.ndarray, float]:
    """A room impulse response: direct sound, a few early reflections, then decaying low-passed noise."""
    from scipy.signal import butter, lfilter

    rt60 = rng.uniform(0.2, 2.0)
    n = int(sr * min(rt60 * 1.2, 2.5))
    t = np.arange(n) / sr
    nr = np.random.default_rng(rng.randrange(1 << 30))
    tail = nr.standard_normal(n) * np.exp(-6.91 * t / rt60)
    b, a = butter(1, rng.uniform(2500, 9000) / (sr / 2))
    tail = lfilter(b, a, tail)
    ir = np.zeros(n)
    ir[0] = 1.0
    for _ in range(6):
        ir[int(sr * rng.uniform(0.005, 0.06))] += rng.uniform(0.2, 0.6) * rng.choice((-1, 1))
    pre = int(sr * rng.uniform(0.01, 0.03))
    ir[pre:] += tail[: n - pre] * 0.3
    return ir.astype(np.float32), rt60


def compress(y: np.ndarray, sr: int, threshold_db: float, ratio: float, attack: float = 0.01,
             release: float = 0.15) -> np.ndarray:
    """A feed-forward RMS compressor with make-up gain (a bus compressor on a mix)."""
    from scipy.signal import lfilter

    a = np.exp(-1.0 / (sr * (attack + release) / 2))
    power = y.astype(np.float64) ** 2
    start = float(np.mean(power[: int(sr * (attack + release))]))  # settled at the start, no initial overshoot
    env = np.sqrt(lfilter([1 - a], [1, -a], power, zi=[a * start])[0] + 1e-12)
    level = 20 * np.log10(env)
    over = np.maximum(level - threshold_db, 0.0)
    gain_db = -over * (1 - 1 / ratio)
    out = y * (10 ** (gain_db / 20)).astype(np.float32)
    peak = float(np.abs(out).max()) or 1.0
    return out / peak * float(np.abs(y).max())


def codec_round_trip(y: np.ndarray, sr: int, rng: random.Random) -> tuple[np.ndarray, str]:
    import soundfile as sf

    fmt = rng.choice(("OGG", "MP3"))
    sub = "VORBIS" if fmt == "OGG" else "MPEG_LAYER_III"
    level = rng.uniform(0.3, 0.9)  # libsndfile's compression level: higher = smaller, worse
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1, 1), sr, format=fmt, subtype=sub, compression_level=level)
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    out = out[: len(y)]
    if len(out) < len(y):
        out = np.pad(out, (0, len(y) - len(out)))
    return out, f"{fmt.lower()} q{level:.2f}"


def produce(y: np.ndarray, guitar: np.ndarray | None, sr: int, rng: random.Random) -> tuple[np.ndarray, list[str]]:
    """The effects chain of a produced recording; returns the mix and what was applied."""
    from scipy.signal import fftconvolve

    A = _audiomentations()
    applied = []
    if guitar is not None:
        if A is not None:
            dist = A.TanhDistortion(min_distortion=0.3, max_distortion=0.8, p=1.0)
            guitar = dist(samples=guitar.astype(np.float32), sample_rate=sr)
            applied.append("overdrive (audiomentations TanhDistortion)")
        else:
            drive = rng.uniform(3, 12)
            guitar = np.tanh(drive * guitar) / np.tanh(drive)
            applied.append(f"overdrive tanh x{drive:.1f}")
        g_peak = float(np.abs(guitar).max()) or 1.0
        y = y + guitar / g_peak * float(np.abs(y).max() or 1.0) * rng.uniform(0.5, 0.9)
    if rng.random() < 0.8:
        ir, rt60 = reverb_ir(rng, sr)
        wet = rng.uniform(0.1, 0.45)
        rev = fftconvolve(y, ir)[: len(y)]
        rev *= (np.std(y) / (np.std(rev) + 1e-9))
        y = (1 - wet) * y + wet * rev
        applied.append(f"reverb RT60 {rt60:.2f}s wet {wet:.2f}")
    if rng.random() < 0.7:
        thr, ratio = rng.uniform(-30, -12), rng.uniform(2, 8)
        y = compress(y, sr, thr, ratio)
        applied.append(f"compressor {thr:.0f} dB {ratio:.1f}:1")
    if A is not None:
        eq = A.Compose([A.LowShelfFilter(min_gain_db=-6, max_gain_db=6, p=0.6),
                        A.HighShelfFilter(min_gain_db=-8, max_gain_db=4, p=0.6),
                        A.PeakingFilter(min_gain_db=-8, max_gain_db=8, p=0.5),
                        A.HighPassFilter(min_cutoff_freq=20, max_cutoff_freq=120, p=0.4)])
        y = eq(samples=y.astype(np.float32), sample_rate=sr)
        applied.append("EQ (audiomentations shelves/peaking/high-pass)")
    if rng.random() < 0.7:
        snr = rng.uniform(15, 45)
        if A is not None:
            noise = A.AddColorNoise(min_snr_db=snr, max_snr_db=snr, p=1.0)
            y = noise(samples=y.astype(np.float32), sample_rate=sr)
        else:
            y = y + np.random.default_rng(rng.randrange(1 << 30)).standard_normal(len(y)).astype(np.float32) \
                * float(np.sqrt(np.mean(y ** 2))) * 10 ** (-snr / 20)
        applied.append(f"noise {snr:.0f} dB SNR")
    peak = float(np.abs(y).max()) or 1.0
    y = (y / peak * rng.uniform(0.5, 0.98)).astype(np.float32)
    if rng.random() < 0.7:
        y, how = codec_round_trip(y, sr, rng)
        applied.append(how)
    return y.astype(np.float32), applied


def render_song(seed: int, soundfont: Path, seconds: float, fx: bool = True):
    """(arranged song, mono samples at SR, effects applied)."""
    import copy

    import soundfile as sf

    song = arrange(seed, max_seconds=seconds)
    rng = random.Random(seed * 31 + 5)
    pm = song.midi
    dist = [i for i in pm.instruments if not i.is_drum and i.program in DISTORTED]
    with tempfile.TemporaryDirectory() as tmp:
        def render(instruments, name):
            part = copy.deepcopy(pm)
            part.instruments = instruments
            mid, wav = Path(tmp) / f"{name}.mid", Path(tmp) / f"{name}.wav"
            part.write(str(mid))
            fluidsynth(mid, wav, soundfont)
            data, _ = sf.read(str(wav), dtype="float32", always_2d=True)
            return data.mean(axis=1)

        rest = render([i for i in pm.instruments if i not in dist], "rest")
        guitar = render(dist, "guitar") if dist and fx else None
        if dist and not fx:
            guitar = render(dist, "guitar")
    n = int(song.duration * SR)
    rest = np.pad(rest, (0, max(0, n - len(rest))))[:n]
    if guitar is not None:
        guitar = np.pad(guitar, (0, max(0, n - len(guitar))))[:n]
    if fx:
        y, applied = produce(rest, guitar, SR, rng)
    else:
        y = rest + (guitar if guitar is not None else 0)
        y = (y / (float(np.abs(y).max()) or 1.0) * 0.8).astype(np.float32)
        applied = []
    return song, y, applied


def features_record(song, y: np.ndarray, soundfont_name: str, applied: list[str]) -> dict:
    import librosa

    onset = librosa.onset.onset_strength(y=y, sr=SR, hop_length=512)
    return {
        "logcqt": log_cqt(y).astype(np.float16), "lab": song.lab_text(), "name": f"song{song.seed}",
        "duration": np.float64(song.duration), "key": song.key,
        "keys": json.dumps(song.keys), "beats": song.beats, "downbeats": song.downbeats,
        "onset": onset.astype(np.float32), "onset_hop": np.int64(512), "style": song.style, "meter": song.meter,
        "swing": bool(song.swing), "bpm": np.float64(song.bpm), "soundfont": soundfont_name,
        "effects": json.dumps(applied), "parts": json.dumps(song.parts),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=("train", "test"), required=True)
    ap.add_argument("--seeds", default="0:100", help="START:STOP (test seeds are offset by 1,000,000)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--no-fx", action="store_true")
    ap.add_argument("--keep-audio", action="store_true", help="also write NAME.flac (for peers that need audio)")
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this wall-clock budget (0: none)")
    args = ap.parse_args()
    a, b = (int(v) for v in args.seeds.split(":"))
    fonts = TRAIN_SOUNDFONTS if args.split == "train" else TEST_SOUNDFONTS
    fonts = {k: v for k, v in fonts.items() if v.exists()}
    if not fonts:
        print("no soundfonts installed for this split", file=sys.stderr)
        return 2
    names = sorted(fonts)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    audio_s = 0.0
    done = 0
    for i in range(a, b):
        seed = i + (TEST_SEED_OFFSET if args.split == "test" else 0)
        dest = args.out / f"song{seed}_v0.npz"
        if dest.exists():
            continue
        if args.minutes and time.time() - t0 > args.minutes * 60:
            print("wall-clock budget reached", flush=True)
            break
        sf_name = names[i % len(names)]
        ts = time.time()
        song, y, applied = render_song(seed, fonts[sf_name], args.seconds, fx=not args.no_fx)
        rec = features_record(song, y, sf_name, applied)
        tmp = dest.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **rec)
        tmp.rename(dest)
        if args.keep_audio:
            import soundfile as sf

            sf.write(args.out / f"song{seed}.flac", y, SR, format="FLAC")
        audio_s += song.duration
        done += 1
        print(f"{dest.name}: {song.describe()} | {sf_name} | {'; '.join(applied) or 'dry'} | "
              f"{time.time() - ts:.1f}s", flush=True)
    wall = time.time() - t0
    print(f"rendered {done} songs, {audio_s / 60:.1f} min of audio in {wall:.0f} s: "
          f"{wall / max(audio_s / 60, 1e-9):.1f} s per minute of audio (render + effects + features)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
