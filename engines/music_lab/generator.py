"""Melody generation over a chord progression (seed 3.3 [13]): a conditional VAE whose prior network reads the
chords and whose posterior network reads melody and chords; plus the random-walk baseline and the melody
statistics used to judge both.

On the engine template (engines.core.model_engine): ``prepare`` parses the chord progression against the
model's input contract (unknown symbols and no-chord marks are refused with the reason; sevenths,
inversions and more than two chords in a bar are warned about), ``infer`` samples the melodies window by window
on the network's device, ``finish`` turns tokens into notes with their statistics. A generator has no input
that could be out of its training distribution other than that progression: its checks say so. The model card's
figures come from ``evaluate_generator`` over the same ``predict``."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.checks import Check, Checks
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import ModelEngine
from engines.music_lab.melody import (CHORD_CLASSES, Note, chord_class_of, chord_class_symbol, class_pitch_classes,
                                      write_result_file)

WEIGHTS = "music_lab-melody-cvae"
ARCH = "melody-cvae@1"
STEPS_PER_BAR = 16
WINDOW_BARS = 4
PITCH_LO, PITCH_HI = 48, 91  # token 2 + (pitch - PITCH_LO)
REST, HOLD = 0, 1
N_TOKENS = 2 + PITCH_HI - PITCH_LO + 1
START = N_TOKENS
MAX_PROGRESSION = 256  # bars


# -- tokens <-> notes ---------------------------------------------------------------------------------
def grid_tokens(grid: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """(bars, 16) soprano grid (-1 rest, -2 beyond bar) + onsets -> (bars*16,) tokens."""
    g, o = grid.reshape(-1), onset.reshape(-1)
    tok = np.full(len(g), REST, np.int64)
    for i, (p, on) in enumerate(zip(g, o)):
        if p < 0:
            continue
        p = int(np.clip(p, PITCH_LO, PITCH_HI))
        tok[i] = 2 + p - PITCH_LO if on or i == 0 or g[i - 1] != g[i] else HOLD
    return tok


def tokens_to_notes(tokens: Sequence[int], step_beats: float = 0.25) -> list[Note]:
    notes: list[Note] = []
    sounding = False
    for i, t in enumerate(tokens):
        t = int(t)
        if t >= 2:
            notes.append(Note(i * step_beats, step_beats, PITCH_LO + t - 2))
            sounding = True
        elif t == HOLD and sounding:
            notes[-1].dur += step_beats
        else:
            sounding = False
    return notes


def notes_to_steps(notes: Sequence[Note], n_steps: int, step_beats: float = 0.25) -> np.ndarray:
    """Sounding MIDI pitch per step (-1 silent)."""
    out = np.full(n_steps, -1, int)
    for n in notes:
        a, b = int(round(n.start / step_beats)), int(round(n.end / step_beats))
        out[max(a, 0):min(b, n_steps)] = n.pitch
    return out


# -- progressions -------------------------------------------------------------------------------------
def parse_progression(text: str | Sequence[str]) -> list[list[int]]:
    """'C G Am F' (one chord per bar) or 'C G | Am F' (bars split by |, chords share the bar) -> per-bar
    lists of chord classes. A .lab path is read through the music workspace's chord track."""
    if isinstance(text, (list, tuple)):
        text = " ".join(str(t) for t in text)
    text = str(text).strip()
    if text.lower().endswith(".lab") and Path(text).exists():
        return progression_from_lab(Path(text))
    if not text:
        raise EngineError("the chord progression is empty: type chords such as 'C G Am F'")
    bars: list[list[int]] = []
    if "|" in text:
        for part in text.split("|"):
            syms = part.split()
            if syms:
                bars.append([chord_class_of(s) for s in syms])
    else:
        bars = [[chord_class_of(s)] for s in re.split(r"[\s,]+", text) if s]
    if not bars:
        raise EngineError("the chord progression is empty: type chords such as 'C G Am F'")
    if len(bars) > MAX_PROGRESSION:
        raise EngineError(f"{len(bars)} bars is too long a progression (at most {MAX_PROGRESSION})")
    return bars


def progression_from_lab(path: Path, beats_per_bar: int = 4, bpm: float = 60.0) -> list[list[int]]:
    """A .lab chord file -> one chord per beat-bar (seconds at ``bpm``): the chord sounding at each half bar."""
    from engines.music.chords import ChordTrack, parse_label, to_majmin

    try:
        track = ChordTrack.read_lab(path)
    except Exception as exc:  # noqa: BLE001 - their reader raises ValueError/EngineError
        raise EngineError(f"{path.name}: not a readable .lab chord file ({exc})") from None
    bar_s = beats_per_bar * 60.0 / bpm
    bars = []
    t = 0.0
    prev = 0
    while t < track.duration - 1e-6 and len(bars) < MAX_PROGRESSION:
        halves = []
        for h in (0.0, 0.5):
            label = track.label_at(t + h * bar_s + 1e-3)
            c = parse_label(label)
            if c.is_none:
                halves.append(prev)
            else:
                mm = parse_label(to_majmin(c))
                prev = mm.root * 2 + (1 if mm.quality == "min" else 0)
                halves.append(prev)
        bars.append(halves if halves[0] != halves[1] else halves[:1])
        t += bar_s
    if not bars:
        raise EngineError(f"{path.name}: the chord file is empty")
    return bars


def step_chords(bars: Sequence[Sequence[int]]) -> np.ndarray:
    """Per-bar chord lists -> chord class per 16th step (chords in a bar share it equally)."""
    out = []
    for chords in bars:
        k = len(chords)
        for s in range(STEPS_PER_BAR):
            out.append(chords[min(k - 1, s * k // STEPS_PER_BAR)])
    return np.array(out, np.int64)


def check_progression(raw: Any, checks: Checks) -> list[list[int]]:
    """The generator's input contract: ``raw`` parses into bars of the 24 major/minor chords it was trained on.
    Unknown symbols, no-chord marks and empty or overlong progressions are refused (InputRefused, with the
    reason); chords folded to a triad (sevenths, sus, inversions) and bars with more than two chords warn."""
    if raw is None:
        checks.refuse("progression", "no chord progression given: type chords such as 'C G Am F'")
    try:
        bars = parse_progression(raw)
    except EngineError as exc:
        checks.refuse("progression", str(exc))
    folded = _folded_symbols(raw)
    if folded:
        shown = ", ".join(f"{a} as {b}" for a, b in folded[:6]) + (" ..." if len(folded) > 6 else "")
        checks.warn("chord vocabulary", f"the model knows only major and minor triads: it plays {shown}")
    crowded = [i + 1 for i, b in enumerate(bars) if len(b) > 2]
    if crowded:
        checks.warn("chord rhythm", f"bar {crowded[0]} has {len(bars[crowded[0] - 1])} chords: the model was trained "
                                    f"on one chord per bar (two per bar work); faster changes get melodies that "
                                    f"do not follow them" + (f" ({len(crowded)} such bars)" if len(crowded) > 1 else ""))
    checks.passed("progression", f"{len(bars)} bars, {len({c for b in bars for c in b})} distinct major/minor chords")
    checks.passed("out-of-distribution", "not applicable: a melody generator reads nothing but its chord "
                                         "progression, which the checks above cover")
    return bars


def _folded_symbols(raw: Any) -> list[tuple[str, str]]:
    """(typed symbol, triad it is played as) for each chord that is not a plain major or minor triad."""
    from engines.music.chords import parse_label

    if isinstance(raw, (list, tuple)):
        raw = " ".join(str(t) for t in raw)
    text = str(raw).strip()
    if text.lower().endswith(".lab"):
        return []
    out, seen = [], set()
    for sym in re.split(r"[\s,|]+", text):
        if not sym or sym in seen:
            continue
        seen.add(sym)
        chord = parse_label(sym)
        if chord.quality not in ("maj", "min") or (chord.bass is not None and chord.bass != chord.root):
            out.append((sym, chord_class_symbol(chord_class_of(sym))))
    return out


# -- statistics ---------------------------------------------------------------------------------------
def melody_stats(steps: np.ndarray, chords: np.ndarray, notes: Sequence[Note]) -> dict[str, float]:
    """steps: sounding pitch per 16th (-1 silent); chords: chord class per step."""
    strong = [i for i in range(len(steps)) if i % 8 == 0 and steps[i] >= 0]
    ct = [steps[i] % 12 in class_pitch_classes(int(chords[i])) for i in strong]
    pitches = [n.pitch for n in notes]
    iv = np.abs(np.diff(pitches)) if len(pitches) > 1 else np.zeros(0)
    return {
        "strong_beat_chord_tones": float(np.mean(ct)) if ct else float("nan"),
        "range": float(max(pitches) - min(pitches)) if pitches else 0.0,
        "mean_abs_interval": float(iv.mean()) if len(iv) else 0.0,
        "stepwise_share": float((iv <= 2).mean()) if len(iv) else 0.0,
        "leap_share_gt7": float((iv > 7).mean()) if len(iv) else 0.0,
        "notes_per_bar": len(notes) / max(1, len(steps) / STEPS_PER_BAR),
        "silent_share": float((steps < 0).mean()),
    }


def diversity(samples: Sequence[np.ndarray]) -> float:
    """Mean pairwise share of 16th steps whose sounding pitch differs between samples."""
    d = [float((a != b).mean()) for i, a in enumerate(samples) for b in samples[i + 1:]]
    return float(np.mean(d)) if d else 0.0


def random_walk(chords: np.ndarray, rng: np.random.Generator, start: int = 67) -> list[Note]:
    """Baseline: a quarter note per beat, each a chord tone of the beat's chord near the previous note
    (within a fifth, uniformly at random)."""
    notes = []
    prev = start
    for beat in range(len(chords) // 4):
        c = int(chords[beat * 4])
        pcs = class_pitch_classes(c)
        cands = [p for p in range(prev - 7, prev + 8) if p % 12 in pcs and 57 <= p <= 81] or \
                [p for p in range(57, 82) if p % 12 in pcs]
        prev = int(rng.choice(cands))
        notes.append(Note(beat * 1.0, 1.0, prev))
    return notes


# -- sampling ----------------------------------------------------------------------------------------
def sample_tokens(net, chords: np.ndarray, n: int, distance: float, temperature: float, seed: int | None,
                  device: str = "cpu", cancel: CancelToken | None = None) -> list[np.ndarray]:
    """n token sequences over ``chords`` (per step), window by window (4 bars), each continuing the last.
    The random draws come from one CPU generator seeded with ``seed``, so a seed gives the same melodies
    whatever device the network is on."""
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31)))
    W = WINDOW_BARS * STEPS_PER_BAR
    T = len(chords)
    padded = np.concatenate([chords, np.repeat(chords[-1:], (-T) % W)])
    out = torch.zeros((n, len(padded)), dtype=torch.long)
    prev = torch.full((n,), START, dtype=torch.long, device=device)
    for w in range(0, len(padded), W):
        if cancel is not None:
            cancel.raise_if_cancelled()
        c = torch.from_numpy(padded[w:w + W]).long()[None].expand(n, -1).contiguous().to(device)
        mu, logvar = net.prior(c)
        eps = torch.randn(mu.shape, generator=gen).to(device)
        z = mu + float(distance) * torch.exp(0.5 * logvar) * eps
        toks = net.generate(z, c, prev, temperature, gen).cpu()
        if w > 0:
            toks = _octave_place(toks, out[:, :w])
        out[:, w:w + W] = toks
        prev = toks[:, -1].to(device)
    return [o[:T].numpy() for o in out]


def _octave_place(new, before):
    """Windows are sampled one after another; move each new window by octaves so that it starts near where
    the previous one ended (chord tones are unchanged by an octave)."""
    new = new.clone()
    for r in range(new.shape[0]):
        prev_p = [int(t) for t in before[r].tolist() if t >= 2]
        cur = [int(t) for t in new[r].tolist() if t >= 2]
        if not prev_p or not cur:
            continue
        k = int(round((prev_p[-1] - cur[0]) / 12.0))
        lo, hi = min(cur) + 12 * k, max(cur) + 12 * k
        while k and (lo < 2 or hi > N_TOKENS - 1):
            k -= 1 if k > 0 else -1
            lo, hi = min(cur) + 12 * k, max(cur) + 12 * k
        m = new[r] >= 2
        new[r][m] += 12 * k
    return new


@dataclass
class GeneratedMelodies:
    bars: list[list[int]]  # chord classes per bar
    melodies: list[list[Note]]
    stats: list[dict[str, float]]
    diversity: float
    distance: float
    bpm: float = 100.0
    chosen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: the progression's contract checks (engines.core.checks.Check)
    checks: list = field(default_factory=list)
    #: {"strong_beat_chord_tones": mean over the melodies, "chance_chord_tones": 0.25, "diversity": ...}
    scores: dict[str, Any] = field(default_factory=dict)

    @property
    def step_chords(self) -> np.ndarray:
        return step_chords(self.bars)

    def chord_symbols(self) -> list[str]:
        return [" ".join(chord_class_symbol(c) for c in b) for b in self.bars]

    def half_bar_chords(self) -> list[int]:
        return [b[min(len(b) - 1, h * len(b) // 2)] for b in self.bars for h in (0, 1)]

    def warning_lines(self) -> list[str]:
        from engines.core.checks import warning_lines

        return warning_lines(self)


#: version of the melody generator's autosave (the chosen melody for one progression)
CHOSEN_MELODY_SCHEMA = 1


def chosen_melody_payload(chords: str, distance: float, notes: Sequence[Note]) -> dict:
    return {"chords": chords, "distance": float(distance), "notes": [[n.start, n.dur, n.pitch] for n in notes]}


def chosen_melody_from_autosave(data: Any) -> dict:
    """Validate a saved chosen melody: {"chords": str, "distance": float, "notes": [Note, ...]}.

    Raises ValueError/TypeError naming the first problem (the autosave service then sets the file aside).
    """
    if not isinstance(data, dict):
        raise TypeError(f"a saved melody is an object, not {type(data).__name__}")
    chords, distance, raw = data.get("chords"), data.get("distance"), data.get("notes")
    if not isinstance(chords, str):
        raise TypeError("the saved progression is not text")
    if not isinstance(distance, (int, float)) or isinstance(distance, bool) or not 0 <= distance <= 5:
        raise ValueError(f"the latent distance {str(distance)[:20]!r} is not a number from 0 to 5")
    if not isinstance(raw, list):
        raise TypeError("the saved notes are not a list")
    notes = []
    for n, item in enumerate(raw, 1):
        ok = (isinstance(item, list) and len(item) == 3
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in item))
        if not ok or item[0] < 0 or item[1] <= 0 or not 0 <= item[2] <= 127 or item[2] != int(item[2]):
            raise ValueError(f"note {n} is not [start, duration, MIDI pitch]")
        notes.append(Note(float(item[0]), float(item[1]), int(item[2])))
    return {"chords": chords, "distance": float(distance), "notes": notes}


@dataclass
class GeneratorInputs:
    bars: list[list[int]]
    chords: np.ndarray  # chord class per 16th step
    n: int
    distance: float
    temperature: float
    seed: int | None
    bpm: float
    checks: Checks


class MelodyGeneratorEngine(ModelEngine):
    id = "melody-generator"
    aliases = ("melody-generation",)
    weights_name = WEIGHTS
    architecture = ARCH
    model_noun = "the melody generator"

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Melody generator over chords (CVAE)", task="melody generation", workspace="music",
            inputs="chords: a progression such as 'C G Am F' (one chord per bar; 'C G | Am F' for two per bar) or a "
                   ".lab file; distance (latent distance, 0..3), n (melodies), temperature, seed",
            outputs="n melodies (note lists) with statistics; MIDI (melody + chords) or MusicXML lead sheet: the "
                    "chosen melody at the output path and each other one beside it as <name>-2, <name>-3, ... "
                    "(every file written is listed)",
            labels=tuple(CHORD_CLASSES), weights=WEIGHTS,
            description="Melody generation with a conditional VAE; the chord sequence goes through a prior network, the "
                        "melody through a posterior network; melodies are decoded from z = prior mean + distance x "
                        "prior sigma x noise. Trained on Bach chorale sopranos over their bar chords.",
            extra={"self_test_out": "melody.mid"})

    def build_network(self, card):
        from engines.music_lab.nets import MelodyCVAE

        return MelodyCVAE(**card.arch_args)

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> GeneratorInputs:
        checks = Checks()
        bars = check_progression(request.get("chords", request.get("progression")), checks)
        n = int(request.get("n", 4))
        if not 1 <= n <= 32:
            raise EngineError("ask for 1 to 32 melodies")
        distance = float(request.get("distance", 1.0))
        if not 0 <= distance <= 5:
            raise EngineError("the latent distance must be between 0 and 5")
        return GeneratorInputs(bars, step_chords(bars), n, distance, float(request.get("temperature", 0.9)),
                               request.get("seed"), float(request.get("bpm", 100.0)), checks)

    def infer(self, inputs: GeneratorInputs, *, progress: ProgressFn, cancel: CancelToken) -> list[np.ndarray]:
        progress(0.1, f"sampling {inputs.n} melodies over {len(inputs.bars)} bars")
        return sample_tokens(self.network, inputs.chords, inputs.n, inputs.distance, inputs.temperature,
                             inputs.seed, self.device or "cpu", cancel)

    def finish(self, outputs: list[np.ndarray], inputs: GeneratorInputs,
               request: Mapping[str, Any]) -> GeneratedMelodies:
        chords = inputs.chords
        melodies = [tokens_to_notes(t) for t in outputs]
        steps = [notes_to_steps(m, len(chords)) for m in melodies]
        stats = [melody_stats(s, chords, m) for s, m in zip(steps, melodies)]
        div = diversity(steps)
        fit = [s["strong_beat_chord_tones"] for s in stats if s["strong_beat_chord_tones"] == s["strong_beat_chord_tones"]]
        scores = {"strong_beat_chord_tones": round(float(np.mean(fit)), 4) if fit else None,
                  "chance_chord_tones": 0.25, "diversity": round(div, 4)}
        return GeneratedMelodies(inputs.bars, melodies, stats, div, inputs.distance, inputs.bpm,
                                 checks=list(inputs.checks.items), scores=scores)

    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if not paths:
            return {}  # the progression comes from --set chords="C G Am F"
        if len(paths) != 1:
            raise EngineError("give one progression file (.txt with chord symbols, or .lab)")
        p = Path(paths[0])
        if p.suffix.lower() == ".lab":
            return {"chords": str(p)}
        try:
            return {"chords": p.read_text(encoding="utf-8")}
        except (OSError, UnicodeDecodeError):
            raise EngineError(f"{p.name}: not a text file with chord symbols") from None

    def write_result(self, result: GeneratedMelodies, out: Path) -> list[Path]:
        """Write the chosen melody to ``out`` and melody i (1-based, not chosen) to ``<stem>-i<suffix>`` beside it;
        returns every path written, so the caller can name them all."""
        out = Path(out)
        written = []
        for i, mel in enumerate(result.melodies):
            target = out if i == result.chosen else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
            written.append(write_result_file(target, mel, result.half_bar_chords(), 2.0, 4.0, result.bpm))
        return written

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path as bundled_sample

        return [bundled_sample("music_lab-progression")]


# -- evaluation (the model card's figures, through the engine's predict) ----------------------------------
def heldout_windows(chorales) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """4-bar windows of 4/4 bars: (tokens (64,), chords per step (64,), previous token). Unknown bar chords
    take the previous one; windows with an unknown chord left or more than half rests are skipped."""
    W = WINDOW_BARS * STEPS_PER_BAR
    out = []
    for c in chorales:
        ok = (c.bar_len == 4.0)
        chords = c.chord.copy()
        for i in range(1, len(chords)):
            if chords[i] >= 24:
                chords[i] = chords[i - 1]
        tok_all = grid_tokens(c.grid, c.onset)
        for b in range(0, len(chords) - WINDOW_BARS + 1):
            if not ok[b:b + WINDOW_BARS].all() or (chords[b:b + WINDOW_BARS] >= 24).any():
                continue
            tok = tok_all[b * 16:(b + WINDOW_BARS) * 16]
            if (tok == 0).mean() > 0.5:
                continue
            prev = tok_all[b * 16 - 1] if b > 0 else START
            out.append((tok, np.repeat(chords[b:b + WINDOW_BARS], 16), int(prev)))
    return out


def window_progression(chords: np.ndarray) -> list[str]:
    """A window's per-step chord classes as the symbols a user types, one per bar."""
    return [chord_class_symbol(int(chords[b * STEPS_PER_BAR])) for b in range(len(chords) // STEPS_PER_BAR)]


def evaluate_generator(engine: MelodyGeneratorEngine, windows, *, n_samples: int = 4, max_windows: int = 200,
                       distances: Sequence[float] = (0.5, 1.0, 2.0), temperature: float = 0.9,
                       choose_seed: int = 1, log=None) -> dict:
    """Melody statistics of the real sopranos, of the CVAE (``engine.predict`` on each window's progression,
    seeded by the window's index) at each latent distance, and of the random walk over chord tones."""
    W = WINDOW_BARS * STEPS_PER_BAR
    rng = np.random.default_rng(choose_seed)
    idx = rng.choice(len(windows), size=min(max_windows, len(windows)), replace=False)
    names = ["real chorale sopranos"] + [f"cvae distance {d}" for d in distances] + ["random walk over chord tones"]
    rows: dict[str, list] = {k: [] for k in names}
    div: dict[str, list] = {k: [] for k in names}
    for k, i in enumerate(idx):
        tok, ch, _ = windows[i]
        real = tokens_to_notes(tok)
        rows["real chorale sopranos"].append(melody_stats(notes_to_steps(real, W), ch, real))
        for dist in distances:
            r = engine.predict({"chords": window_progression(ch), "n": n_samples, "distance": dist,
                                "temperature": temperature, "seed": int(i)})
            rows[f"cvae distance {dist}"] += r.stats
            div[f"cvae distance {dist}"].append(r.diversity)
        mels = [random_walk(ch, rng) for _ in range(n_samples)]
        steps = [notes_to_steps(m, W) for m in mels]
        rows["random walk over chord tones"] += [melody_stats(s, ch, m) for s, m in zip(steps, mels)]
        div["random walk over chord tones"].append(diversity(steps))
        if log is not None and k % 50 == 0:
            log(f"evaluated {k}/{len(idx)} windows")
    out: dict[str, Any] = {}
    for name, stats in rows.items():
        out[name] = {key: round(float(np.nanmean([s[key] for s in stats])), 4) for key in stats[0]}
        out[name]["diversity_between_samples"] = round(float(np.mean(div[name])), 4) if div[name] else None
    out["held_out_windows_evaluated"] = int(len(idx))
    out["samples_per_window"] = n_samples
    return out


def held_out_sample(engine: MelodyGeneratorEngine, chorales) -> dict:
    """The small held-out figure a model card records and a test reproduces: strong-beat chord tones at
    distance 1.0 on 12 windows of ``chorales`` (the tests' 40 held-out chorales), two melodies each."""
    m = evaluate_generator(engine, heldout_windows(chorales), n_samples=2, max_windows=12, distances=(1.0,))
    return {"cvae distance 1.0": m["cvae distance 1.0"]["strong_beat_chord_tones"],
            "real chorale sopranos": m["real chorale sopranos"]["strong_beat_chord_tones"],
            "windows": m["held_out_windows_evaluated"], "samples_per_window": 2,
            "sample": "tests/music_lab/data/heldout_bars.npz (4-bar windows of 40 held-out chorales)"}
