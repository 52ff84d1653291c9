"""Beats, downbeats and meter of a recording, for the chord view's beat grid and for snapping chord edits.

Beats come from librosa's dynamic-programming beat tracker (Ellis 2007) on the onset-strength envelope.
The bar is then found from the beats: for each candidate meter (3 or 4 beats per bar) and each phase, a
downbeat score sums what marks the first beat of a bar in produced music - a low-frequency onset (kick and
bass), a change of harmony (chroma difference between the beat before and after) and the accent of the beat
itself; the best (meter, phase) wins, and its margin over the runner-up is the confidence. The tempo octave is
settled by metrical salience (a half-speed reading has its backbeat between its beats; a double-speed one has
every other beat faint), and a beat whose onsets fall on both of its thirds and not on its half is compound:
6/8, two dotted-quarter beats a bar (``subdivision`` 3). This is a classical
method: no training, so it has no training timbres to overfit, and it says when it is unsure (few beats, no
pulse, a weak downbeat margin).

Measured on arranged songs with exact labels (scripts/music/eval_beats.py; docs/music.md has the table).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HOP = 512
N_FFT = 2048
N_MELS = 128  # librosa's onset-strength default
ONSET_CENTER = False  # librosa shifts a centred onset curve 2 frames later again: beats came 46-50 ms late
LOW_HZ = 250.0  # the kick and bass band
NOVELTY_HALF_WINDOW = 0.35  # seconds of chroma on each side of a frame for the harmonic-change curve
MIN_BEATS = 8
ONSET_FLOOR = 0.2  # 90th percentile of the onset envelope below this: no onsets to follow
MIN_PULSE = 0.12  # autocorrelation at the beat period below this: onsets, but not periodic
MIN_BPM, MAX_BPM = 50.0, 210.0
#: the tracker's tempo times these: the usual tempo errors (octaves, 3 vs 4 and 2 vs 3 pulse levels)
TEMPO_RATIOS = (1.0, 2.0, 0.5, 0.75, 4 / 3, 2 / 3, 1.5)
PRIOR_BPM, PRIOR_OCTAVES = 110.0, 1.0  # log-normal tempo prior: centre and spread (octaves)
#: weights of the tempo score's parts (tempo_scores); chosen on arranged songs 100-139 and the real charted
#: songs, never on the songs docs/music.md reports (0-39)
TEMPO_WEIGHTS = {"onset": 1.0, "onset_2": 0.5, "bass": 0.5, "harmony_bar": 0.5, "harmony_half": 0.5, "prior": 1.0,
                 "bars": 0.2, "octave": 1.5}
#: onsets midway between beats louder than this share of the beats speak for the double tempo (octave_evidence)
OCTAVE_SPLIT = 0.5
OCTAVE_TOLERANCE = 0.06  # octaves: a candidate this close to double or half the best is its octave neighbour
RETRACKED = 3  # the best candidates by the frame-level score that are tracked and scored on their beats too
#: downbeat evidence per beat: low-band onset, harmonic change (times its clarity: see bar_scores), accent
FEATURE_WEIGHTS = np.array([1.0, 0.5, 0.25])
#: ternary salience (thirds above the half, relative to the beat) above which the beat divides in three
TERNARY_MIN = 0.05
COMPOUND_METERS = (2,)  # 6/8 (a 12/8 is read as two bars of 6/8, as a 2/4 is read as half a 4/4)
METER_PERIODICITY = 1.0  # weight of onset and harmony repeating at the bar in the meter choice


@dataclass(frozen=True)
class BeatEstimate:
    """Beat and downbeat times (seconds), the tempo, the meter and how sure the estimate is."""

    beats: np.ndarray
    downbeats: np.ndarray
    bpm: float
    beats_per_bar: int
    confidence: float  # 0..1: the downbeat margin, scaled (0 when there is no pulse)
    warnings: tuple[str, ...] = field(default=())
    subdivision: int = 2  # 2: simple meter (beats of two eighths); 3: compound (dotted-quarter beats of three)

    @property
    def meter(self) -> str:
        """The time signature: 3/4 or 4/4 for simple meter, 6/8 (two dotted-quarter beats) or 12/8 for compound
        meter, whose ``bpm`` counts dotted quarters."""
        if self.subdivision == 3:
            return f"{3 * self.beats_per_bar}/8"
        return f"{self.beats_per_bar}/4"

    def bar_of(self, t: float) -> int:
        """The 1-based bar number of time ``t`` (0 before the first downbeat)."""
        return int(np.searchsorted(self.downbeats, t + 1e-6, side="right"))

    def nearest_beat(self, t: float) -> float:
        """The beat time closest to ``t`` (``t`` itself when there are no beats): snapping chord edits."""
        if len(self.beats) == 0:
            return float(t)
        i = int(np.argmin(np.abs(self.beats - t)))
        return float(self.beats[i])


@dataclass(frozen=True)
class _Signals:
    """Frame-rate curves of one recording (hop HOP): what every later step reads."""

    onset: np.ndarray  # spectral flux over all mel bands (librosa's onset strength)
    low: np.ndarray  # spectral flux below LOW_HZ: kick drum and bass
    chroma: np.ndarray  # (12, frames), unit-norm columns
    novelty: np.ndarray  # harmonic change: chroma before vs after each frame
    fps: float
    accent: np.ndarray  # spectral flux of mel magnitudes (not dB): how loud each onset is, for metrical salience


def _signals(y: np.ndarray, sr: int) -> _Signals:
    """One STFT for everything (onsets, low band, chroma): the cost is the STFT, not three of them."""
    import librosa

    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    mel_power = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    mel = librosa.power_to_db(mel_power)
    onset = librosa.onset.onset_strength(S=mel, sr=sr, hop_length=HOP, center=ONSET_CENTER)
    centres = librosa.mel_frequencies(N_MELS + 2, fmax=sr / 2)[1:-1]
    low = librosa.onset.onset_strength(S=mel[centres < LOW_HZ], sr=sr, hop_length=HOP, center=ONSET_CENTER)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=N_FFT, tuning=0.0)
    chroma = chroma / (np.linalg.norm(chroma, axis=0, keepdims=True) + 1e-9)
    fps = sr / HOP
    accent = librosa.onset.onset_strength(S=np.sqrt(mel_power), sr=sr, hop_length=HOP, center=ONSET_CENTER)
    return _Signals(onset, low, chroma, _novelty(chroma, int(round(NOVELTY_HALF_WINDOW * fps))), fps,
                    accent / (float(np.percentile(accent, 99)) + 1e-9))


def _novelty(chroma: np.ndarray, half: int) -> np.ndarray:
    """1 - cosine between the mean chroma of the ``half`` frames before and after each frame."""
    n = chroma.shape[1]
    cum = np.concatenate([np.zeros((12, 1)), np.cumsum(chroma, axis=1)], axis=1)
    idx = np.arange(n)
    before = cum[:, idx] - cum[:, np.maximum(idx - half, 0)]
    after = cum[:, np.minimum(idx + half, n)] - cum[:, idx]
    cos = np.sum(before * after, axis=0) / (np.linalg.norm(before, axis=0) * np.linalg.norm(after, axis=0) + 1e-9)
    nov = 1.0 - cos
    nov[:half] = nov[n - half:] = 0.0
    return nov


def _autocorr(x: np.ndarray) -> np.ndarray:
    """Autocorrelation of ``x`` minus its mean, 1 at lag 0 (0 everywhere for a constant)."""
    x = x - x.mean()
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    return ac / ac[0] if ac[0] > 0 else np.zeros(n)


def _peak(ac: np.ndarray, lag: float, tol: float = 0.03) -> float:
    """The largest autocorrelation within ``tol`` (relative) of ``lag`` frames (0 beyond the curve)."""
    lo, hi = int(np.floor(lag * (1 - tol))), int(np.ceil(lag * (1 + tol))) + 1
    if lo < 1 or lo >= len(ac):
        return 0.0
    return float(ac[lo:min(hi, len(ac))].max())


def tempo_candidates(tracker_bpm: float, ac_onset: np.ndarray, fps: float) -> list[float]:
    """The tracker's tempo times the ratios of common tempo errors (TEMPO_RATIOS), and the tempi (in octaves
    that fall in MIN_BPM..MAX_BPM) of the strongest onset periodicities - a groove whose onsets never fall on
    beats 2 and 4 (a 3+3+2 figure) has its clearest period at the half bar, not at the beat."""
    found = [tracker_bpm * r for r in TEMPO_RATIOS]
    lags = np.arange(int(fps * 60 / MAX_BPM / 2), min(len(ac_onset) - 1, int(fps * 60 / MIN_BPM * 4)))
    if len(lags) > 2:
        a = ac_onset[lags]
        peaks = lags[1:-1][(a[1:-1] > a[:-2]) & (a[1:-1] >= a[2:]) & (a[1:-1] > 0)]
        for lag in peaks[np.argsort(ac_onset[peaks])[::-1][:3]]:
            bpm = 60.0 * fps / lag
            found += [bpm * 2.0 ** k for k in range(-3, 4)]
    out: list[float] = []
    for bpm in sorted(b for b in found if MIN_BPM <= b <= MAX_BPM):
        if not out or bpm > out[-1] * 1.03:
            out.append(bpm)
    return out


def tempo_scores(bpm: float, ac: dict[str, np.ndarray], fps: float) -> dict[str, float]:
    """What speaks for ``bpm`` as the beat, from the frame-level autocorrelations ``ac`` (onset, low, novelty):
    onsets repeating at the beat and at two beats, kick and bass repeating at the beat, harmony changing at a
    bar of 3 or 4 beats and at the half bar of 4/4 (chords change on bar lines and half bars, seldom on every
    beat), and a log-normal prior around PRIOR_BPM."""
    p = 60.0 * fps / bpm
    return {"onset": _peak(ac["onset"], p), "onset_2": _peak(ac["onset"], 2 * p), "bass": _peak(ac["low"], p),
            "harmony_bar": max(_peak(ac["novelty"], 3 * p), _peak(ac["novelty"], 4 * p)),
            "harmony_half": _peak(ac["novelty"], 2 * p),
            "prior": -0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2}


def _track(sig: _Signals, bpm: float) -> np.ndarray:
    import librosa

    _, frames = librosa.beat.beat_track(onset_envelope=sig.onset, sr=sig.fps * HOP, hop_length=HOP, bpm=bpm,
                                        trim=False)
    return np.asarray(frames, dtype=np.int64)


def choose_tempo(sig: _Signals, tracker_bpm: float) -> tuple[float, np.ndarray, list[tuple[float, float, dict]]]:
    """The tempo, its tracked beat frames, and every (score, bpm, parts) considered, best first.

    Every candidate gets the frame-level score; the RETRACKED best are tracked at their tempo and add how
    clearly the harmony changes at one phase of a bar of their beats (``bars``): at double tempo a chord per bar
    lands on every other bar line, at half tempo on every second beat, and either blurs that contrast. Then the
    octave: the winner's double and half tempo are tracked too and add what their metrical salience says for
    them against the winner (``octave``, :func:`octave_evidence`); one that then scores higher takes over (fast
    rock or swing read at half speed has its backbeat between the beats)."""
    ac = {"onset": _autocorr(sig.onset), "low": _autocorr(sig.low), "novelty": _autocorr(sig.novelty)}

    def frame_score(bpm: float) -> tuple[float, float, dict]:
        parts = tempo_scores(bpm, ac, sig.fps)
        return sum(TEMPO_WEIGHTS[k] * v for k, v in parts.items()), bpm, parts

    tracked: dict[float, np.ndarray] = {}

    def retrack(entry: tuple[float, float, dict]) -> tuple[float, float, dict]:
        score, bpm, parts = entry
        frames = tracked[bpm] = _track(sig, bpm)
        parts["bars"] = _phase_contrast(_beat_features(sig, frames)[:, 1]) if len(frames) >= MIN_BEATS else 0.0
        return score + TEMPO_WEIGHTS["bars"] * parts["bars"], bpm, parts

    scored = sorted((frame_score(b) for b in tempo_candidates(tracker_bpm, ac["onset"], sig.fps) or [tracker_bpm]),
                    key=lambda s: -s[0])
    scored[:RETRACKED] = sorted((retrack(e) for e in scored[:RETRACKED]), key=lambda s: -s[0])
    best = scored[0]
    family = [best]
    for ratio in (2.0, 0.5):
        near = [e for e in scored if abs(np.log2(e[1] / (best[1] * ratio))) < OCTAVE_TOLERANCE]
        if near:
            entry = max(near, key=lambda e: e[0])
            family.append(entry if entry[1] in tracked else retrack(entry))
        elif MIN_BPM <= best[1] * ratio <= MAX_BPM:
            family.append(retrack(frame_score(best[1] * ratio)))
    final = [best]
    for score, bpm, parts in family[1:]:
        slow, fast = (tracked[best[1]], tracked[bpm]) if bpm > best[1] else (tracked[bpm], tracked[best[1]])
        parts["octave"] = octave_evidence(sig, slow, fast) * (1.0 if bpm > best[1] else -1.0)
        final.append((score + TEMPO_WEIGHTS["octave"] * parts["octave"], bpm, parts))
    final.sort(key=lambda s: -s[0])
    rest = [e for e in scored if all(e[1] != f[1] for f in final)]
    return final[0][1], tracked[final[0][1]], final + rest


def _at(env: np.ndarray, frames: np.ndarray, reach: int = 1) -> np.ndarray:
    """The peak of ``env`` within ``reach`` frames of each (fractional) frame position."""
    idx = np.clip(np.round(frames).astype(np.int64), 0, len(env) - 1)
    return np.max(np.stack([env[np.clip(idx + d, 0, len(env) - 1)] for d in range(-reach, reach + 1)]), axis=0)


def metrical_salience(onset: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """How loud the onsets are at points of the beat grid ``frames``, above the envelope's median and relative
    to the beats themselves: ``half`` at the midpoints between beats, ``third``/``two_thirds`` at the thirds of
    each beat, and ``alternate`` at the weaker of the two parities of beats (odd or even). A beat level whose
    midpoints are nearly as loud as its beats (a backbeat between them) is half the tempo the music moves in;
    one whose every other beat is faint (hats between kick and snare) is double it; onsets at both thirds and
    not at the half make a compound (ternary) beat."""
    if len(frames) < 4:
        return {"half": 0.0, "third": 0.0, "two_thirds": 0.0, "alternate": 0.0}
    env = onset - float(np.median(onset))
    start, step = frames[:-1].astype(float), np.diff(frames).astype(float)
    on = max(float(_at(env, start).mean()), 1e-9)
    beat = np.maximum(_at(env, start), 0.0)
    parity = sorted([float(beat[0::2].mean()), float(beat[1::2].mean())])
    return {"half": float(_at(env, start + step / 2).mean()) / on,
            "third": float(_at(env, start + step / 3).mean()) / on,
            "two_thirds": float(_at(env, start + 2 * step / 3).mean()) / on,
            "alternate": parity[0] / max(parity[1], 1e-9)}


def octave_evidence(sig: _Signals, slow: np.ndarray, fast: np.ndarray) -> float:
    """What speaks for the faster of two beat grids a tempo octave apart (``slow`` has half the beats of
    ``fast``), from their metrical salience: the onsets midway between the slow grid's beats - its ``half`` and
    the fast grid's weaker ``alternate`` beats, the same places found by two tracks - louder than OCTAVE_SPLIT
    of the beats (a backbeat between them: fast rock read at half speed), on the onset curve and on the
    magnitude flux (the dB curve flattens loud against soft); plus how much better the fast grid's own beats
    look as a beat level than the slow grid's (:func:`octave_salience`)."""
    between, level = [], 0.0
    for env in (sig.onset, sig.accent):
        s_slow, s_fast = metrical_salience(env, slow), metrical_salience(env, fast)
        between += [s_slow["half"], s_fast["alternate"]]
        if env is sig.onset:
            level = octave_salience(s_fast) - octave_salience(s_slow)
    return float(np.mean(between)) - OCTAVE_SPLIT + level


def octave_salience(sal: dict[str, float]) -> float:
    """How much a grid looks like the beat rather than its double or half (from :func:`metrical_salience`):
    every beat about as loud as the next (else the level is a subdivision and half of it is the beat) and
    little between the beats (else the music moves twice as fast)."""
    return sal["alternate"] - sal["half"]


def _phase_contrast(values: np.ndarray, meters: tuple[int, ...] = (3, 4)) -> float:
    """How much more ``values`` are at the best phase of a bar of 3 or 4 beats than at the other beats."""
    best = 0.0
    for m in meters:
        for phase in range(m):
            off = np.delete(values, np.arange(phase, len(values), m))
            best = max(best, float(values[phase::m].mean() - off.mean()))
    return best


def _beat_features(sig: _Signals, beats_frames: np.ndarray) -> np.ndarray:
    """Per beat: (low-band onset, harmonic change, accent), each z-scored over the beats."""
    n = sig.chroma.shape[1]
    bounds = np.clip(np.concatenate([beats_frames, [n]]), 0, n)
    seg = np.stack([sig.chroma[:, a:max(a + 1, b)].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    seg = seg / (np.linalg.norm(seg, axis=0, keepdims=True) + 1e-9)
    change = np.zeros(len(beats_frames))
    change[1:] = 1.0 - np.sum(seg[:, 1:] * seg[:, :-1], axis=0)
    change[0] = change[1:].mean() if len(change) > 1 else 0.0

    # the peak within +-2 frames: beat times are quantised to the hop
    feats = np.stack([_at(sig.low, beats_frames, 2), change, _at(sig.onset, beats_frames, 2)], axis=1)
    return (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-9)


def bar_scores(sig: _Signals, frames: np.ndarray, meters: tuple[int, ...]) -> list[tuple[float, int, int]]:
    """(score, beats per bar, phase) for every meter and phase, best first: how much more the beats at that
    phase look like first beats than the others (FEATURE_WEIGHTS over the z-scored per-beat features, the
    harmonic change weighted by its own clarity: it leads where chords change on bar lines and keeps out of
    the way over a one-chord vamp), plus how strongly onsets and harmony repeat at that bar length."""
    feats = _beat_features(sig, frames)
    weights = FEATURE_WEIGHTS * np.array([1.0, _phase_contrast(feats[:, 1], meters), 1.0])
    per_beat = feats @ weights
    beat = float(np.median(np.diff(frames)))
    ac_on, ac_h = _autocorr(sig.onset), _autocorr(sig.novelty)
    out = []
    for m in meters:
        periodic = METER_PERIODICITY * (max(_peak(ac_on, m * beat), 0.0) + max(_peak(ac_h, m * beat), 0.0))
        for phase in range(m):
            on = per_beat[phase::m]
            off = np.delete(per_beat, np.arange(phase, len(per_beat), m))
            out.append((float(on.mean() - off.mean()) + periodic, m, phase))
    return sorted(out, reverse=True)


def _settle_start(frames: np.ndarray, tol: float = 0.08) -> np.ndarray:
    """The tracker's first beats, before its path settles, drift off the steady grid (the dynamic programme
    has no past to lean on there): from the first beat whose next four intervals are steady, step back one
    median period at a time over the earlier beats, keeping a beat only where it is within ``tol`` of it."""
    if len(frames) < MIN_BEATS:
        return frames
    d = np.diff(frames).astype(float)
    period = float(np.median(d))
    steady = np.abs(d - period) <= tol * period
    start = next((i for i in range(len(steady) - 3) if steady[i:i + 4].all()), 0)
    out = frames.astype(float).copy()
    for i in range(start - 1, -1, -1):
        expected = out[i + 1] - period
        if abs(out[i] - expected) > tol * period:
            out[i] = expected
    return np.round(out[out >= 0]).astype(np.int64)


def pulse_strength(onset: np.ndarray, frames: np.ndarray) -> float:
    """How clearly the onsets repeat at the beat period: the onset envelope's autocorrelation at that lag
    (relative to lag 0), or 0 when there are hardly any onsets (the 90th percentile of the envelope, in dB of
    spectral flux, below ONSET_FLOOR: a drone or a sustained tone)."""
    if len(frames) < 2 or float(np.percentile(onset, 90)) < ONSET_FLOOR:
        return 0.0
    period = int(np.median(np.diff(frames)))
    x = onset[20:-20] if len(onset) > 80 else onset
    x = x - x.mean()
    if period < 1 or len(x) <= period + 3 or float(np.dot(x, x)) <= 0:
        return 0.0
    ac = np.array([float(np.dot(x[:-lag], x[lag:])) for lag in range(max(1, period - 2), period + 3)])
    return float(ac.max() / np.dot(x, x))


def is_compound(sal: dict[str, float]) -> bool:
    """Ternary subdivision (from :func:`metrical_salience`): onsets at both thirds of the beat, louder than at its
    half. A swung eighth, at the second third only, is not compound; a straight eighth is at the half."""
    return min(sal["third"], sal["two_thirds"]) - sal["half"] > TERNARY_MIN


def estimate_beats(y: np.ndarray, sr: int, *, meters: tuple[int, ...] = (3, 4),
                   compound_meters: tuple[int, ...] = COMPOUND_METERS) -> BeatEstimate:
    """Beats, downbeats and meter of mono samples ``y`` at ``sr``: ``meters`` (beats per bar) are tried when the
    beat divides in two, ``compound_meters`` (dotted-quarter beats per bar: 2 is 6/8) when it divides in three."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.size < sr or not np.isfinite(y).all() or float(np.abs(y).max()) < 1e-4:
        return BeatEstimate(np.zeros(0), np.zeros(0), 0.0, 4, 0.0,
                            ("the recording is too short or silent to find a beat",))
    sig = _signals(y, sr)
    tracker_bpm = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=sig.onset, sr=sr, hop_length=HOP))[0])
    bpm, frames, _ = choose_tempo(sig, tracker_bpm)
    frames = _settle_start(frames)
    beats = librosa.frames_to_time(frames, sr=sr, hop_length=HOP)
    if len(frames) < MIN_BEATS:
        return BeatEstimate(beats, beats[:0], bpm, 4, 0.0,
                            (f"only {len(frames)} beats found: no steady pulse (rubato, free time or no rhythm)",))
    pulse = max(pulse_strength(sig.onset, frames), pulse_strength(sig.onset, frames[::2]))
    if pulse < MIN_PULSE:
        return BeatEstimate(beats, beats[:0], bpm, 4, 0.0,
                            ("no steady pulse: the recording has no rhythmic onsets to follow (a drone, noise, "
                             "free time); the beat grid is not shown",))
    compound = bool(compound_meters) and is_compound(metrical_salience(sig.onset, frames))
    candidates = bar_scores(sig, frames, compound_meters if compound else meters)
    best, m, phase = candidates[0]
    runner = candidates[1][0] if len(candidates) > 1 else 0.0
    confidence = float(np.clip(best - runner, 0.0, 1.0))
    warnings = []
    if confidence < 0.15:
        warnings.append("the bar lines are uncertain: no beat stands out as the first of the bar")
    onset_cv = float(np.std(np.diff(beats)) / max(1e-9, np.mean(np.diff(beats))))
    if onset_cv > 0.15:
        warnings.append("the tempo varies: beats were tracked but the grid is not steady")
    return BeatEstimate(beats, beats[phase::m], bpm, m, confidence, tuple(warnings), 3 if compound else 2)
