"""The melody harmonizer engine (seed 6.1): a chord per bar (or half bar) for a melody, with locked chords and
sampled alternatives. Methods: the BLSTM over bars (default), the per-bar DNN and the HMM baseline.

On the engine template (engines.core.model_engine): ``prepare`` reads the melody, checks it against what the
models were trained on (chorale sopranos: a tonal melody in bars of 3 or 4 quarter notes) and makes the bar
pitch-class vectors in C major / A minor; ``infer`` runs the networks (or reads the HMM's emission scores);
``finish`` decodes the chord path (argmax, Viterbi with the transition prior, or sampling around locked
chords), transposes it back and reports the calibrated per-bar confidence and the energy OOD score.
Evaluation scripts call the same path on pre-extracted bars (request ``bar_pitch_classes``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.checks import Check, Checks
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import ModelEngine
from engines.music_lab.decode import ChordHMM, sample_path, viterbi
from engines.music_lab.melody import (CHORD_CLASSES, Melody, chord_class_of, chord_class_symbol, coverage,
                                      estimate_shift, melody_from_request, normalize_pc, segment_pc,
                                      transpose_class, write_result_file)

WEIGHTS = "music_lab-harmonizer"
ARCH = "bar-blstm-harmonizer@1"
METHODS = ("blstm", "dnn", "hmm")
#: weight of the chord-transition prior when decoding a network's per-bar distributions (0 = plain argmax)
TRANS_WEIGHT = 0.3
#: bar lengths (quarter notes) of the training chorales; other metres get a warning
TRAINED_BAR_BEATS = (3.0, 4.0)
#: below this Krumhansl-Schmuckler correlation the key (and so the transposition to C / Am) is a guess
KEY_CORRELATION_MIN = 0.5


@dataclass
class Harmonization:
    melody: Melody | None  # None when harmonizing pre-extracted bars (evaluation)
    chords: list[int]  # chord class per segment, in the melody's key
    probs: np.ndarray  # (segments, 24) per-segment distribution (calibrated for the networks), melody's key
    seg_beats: float
    key: str
    shift: int
    method: str
    locks: dict[int, int] = field(default_factory=dict)
    #: the input contract's checks (engines.core.checks.Check) and the out-of-distribution check
    checks: list = field(default_factory=list)
    #: {"confidence": mean per-segment top probability, "temperature", "calibrated", "ood": {...}}
    scores: dict = field(default_factory=dict)
    #: (segments, 24) raw network logits in the melody's key (None for the HMM)
    logits: np.ndarray | None = None

    @property
    def symbols(self) -> list[str]:
        return [chord_class_symbol(c) for c in self.chords]

    def labels(self) -> list[str]:
        return [CHORD_CLASSES[c] for c in self.chords]

    def coverage(self) -> float:
        return coverage(segment_pc(self.melody, int(round(self.melody.beats_per_bar / self.seg_beats))), self.chords)

    def warning_lines(self) -> list[str]:
        from engines.core.checks import warning_lines

        return warning_lines(self)


@dataclass
class HarmonizerInputs:
    melody: Melody | None
    pc: np.ndarray  # (segments, 12) duration-weighted pitch classes in the melody's key
    shift: int  # semitones to C major / A minor
    key: str
    method: str
    per_bar: int
    locks: dict[int, int]
    checks: Checks

    @property
    def pc_in_c(self) -> np.ndarray:
        return np.roll(self.pc, self.shift, axis=1)

    @property
    def locks_in_c(self) -> dict[int, int]:
        return {i: transpose_class(c, self.shift) for i, c in self.locks.items()}


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def evaluate_models(engine: "MelodyHarmonizerEngine", chorales) -> dict:
    """Accuracy (exact major/minor chord per labelled bar) and chord-tone coverage of the melody on ``chorales``
    (key-normalized bar features of the chorale cache), each method through ``engine.predict``."""
    rows = {"blstm (argmax)": ("blstm", 0.0), f"blstm + transitions (w={TRANS_WEIGHT})": ("blstm", TRANS_WEIGHT),
            "dnn (argmax)": ("dnn", 0.0), f"dnn + transitions (w={TRANS_WEIGHT})": ("dnn", TRANS_WEIGHT),
            "hmm (viterbi)": ("hmm", 1.0)}
    out: dict[str, Any] = {}
    total = sum(int((c.chord < 24).sum()) for c in chorales)
    counts = np.bincount(np.concatenate([c.chord[c.chord < 24] for c in chorales]), minlength=24)
    for name, (method, w) in list(rows.items()) + [("tonic chord every bar (C / Am)", (None, 0))]:
        ok = 0
        cov_num = cov_den = 0.0
        for c in chorales:
            m = c.chord < 24
            if method is None:
                pred = np.zeros(len(c.chord), int)
                mode_minor = c.pc.sum(0)[9] > c.pc.sum(0)[0]
                pred[:] = 19 if mode_minor else 0
            else:
                pred = np.asarray(engine.predict({"bar_pitch_classes": c.pc, "shift": 0, "method": method,
                                                  "trans_weight": w}).chords)
            ok += int((pred[m] == c.chord[m]).sum())
            cov_num += coverage(c.pc[m], pred[m]) * float(c.pc[m].sum())
            cov_den += float(c.pc[m].sum())
        out[name] = {"accuracy": round(ok / max(total, 1), 4), "chord_tone_coverage": round(cov_num / max(cov_den, 1e-9), 4)}
    gt_num = sum(coverage(c.pc[c.chord < 24], c.chord[c.chord < 24]) * float(c.pc[c.chord < 24].sum()) for c in chorales)
    gt_den = sum(float(c.pc[c.chord < 24].sum()) for c in chorales)
    out["bach's own chords (reference)"] = {"accuracy": 1.0, "chord_tone_coverage": round(gt_num / gt_den, 4)}
    out["held_out_bars"] = total
    out["chance (uniform over 24)"] = round(1 / 24, 4)
    out["majority class share"] = round(float(counts.max() / max(total, 1)), 4)
    return out


def network_logits(engine: "MelodyHarmonizerEngine", chorales, method: str = "blstm") -> list[np.ndarray]:
    """Per chorale, the raw (segments, 24) logits of ``method`` through ``engine.predict`` (for calibration)."""
    return [engine.predict({"bar_pitch_classes": c.pc, "shift": 0, "method": method, "trans_weight": 0.0}).logits
            for c in chorales]


def parse_locks(raw: Any, n: int) -> dict[int, int]:
    """{segment index: chord} from a dict ({"0": "C"}), a list of [index, chord] or a list with None gaps."""
    if not raw:
        return {}
    if isinstance(raw, str):
        import json

        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise EngineError("locks must be JSON, e.g. {\"0\": \"C\", \"3\": \"Am\"}") from None
    items = raw.items() if isinstance(raw, Mapping) else (
        raw if raw and isinstance(raw[0], (list, tuple)) else [(i, s) for i, s in enumerate(raw) if s])
    locks = {}
    for k, v in items:
        try:
            i = int(k)
        except (TypeError, ValueError):
            raise EngineError(f"lock position '{k}' is not a bar number") from None
        if not 0 <= i < n:
            raise EngineError(f"cannot lock bar {i + 1}: the melody has {n} segments")
        locks[i] = int(v) if isinstance(v, (int, np.integer)) else chord_class_of(str(v))
    return locks


class MelodyHarmonizerEngine(ModelEngine):
    id = "melody-harmonizer"
    aliases = ("harmonize",)
    weights_name = WEIGHTS
    architecture = ARCH
    model_noun = "the melody harmonizer"
    cpu_batch = gpu_batch = 1  # one melody per call

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="Melody harmonizer (BLSTM over bars)", task="harmonization", workspace="music",
            inputs="melody: MIDI / MusicXML / note list [[start_beats, dur_beats, midi], ...]",
            outputs="a major/minor chord per bar or half bar; MIDI (melody + chords) or MusicXML lead sheet",
            labels=tuple(CHORD_CLASSES), weights=WEIGHTS,
            description="Lim et al. 2017: bi-directional LSTM over bars of 12-d pitch-class vectors, "
                        "trained on Bach chorales with keys normalized. Options: method=blstm|dnn|hmm, "
                        "resolution=bar|half, locks={bar: chord}, temperature (0 = best), top_k, seed.",
            extra={"self_test_out": "harmonized.mid", "methods": METHODS})

    def build_network(self, card):
        from engines.music_lab.nets import BarHarmonizers

        return BarHarmonizers(card.arch_args["blstm"], card.arch_args["dnn"])

    def hmm(self) -> ChordHMM:
        """The HMM baseline (its tables are buffers of the loaded network)."""
        tables = self.network.hmm.state_dict()
        return ChordHMM.from_tensors({f"hmm.{k}": v.detach().cpu() for k, v in tables.items()})

    def calibration_of(self, method: str) -> dict:
        """The card's calibration of ``method``: the BLSTM's is the card's own, the DNN's is under "dnn"."""
        cal = dict(getattr(self.card, "calibration", None) or {})
        if method == "blstm":
            return cal
        return dict(cal.get(method) or {})

    # -- prepare: read, check the contract, make the bar features -------------------------------------
    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> HarmonizerInputs:
        method = str(request.get("method", "blstm")).lower()
        if method not in METHODS:
            raise EngineError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
        resolution = str(request.get("resolution", "bar")).lower()
        if resolution not in ("bar", "half"):
            raise EngineError("resolution must be 'bar' or 'half'")
        per_bar = 2 if resolution == "half" else 1
        checks = Checks()
        if request.get("bar_pitch_classes") is not None:  # evaluation: bars extracted beforehand
            mel = None
            pc = np.asarray(request["bar_pitch_classes"], dtype=np.float32).reshape(-1, 12)
            if not len(pc):
                raise EngineError("no bars given")
            per_bar = 1
            checks.passed("melody", f"{len(pc)} bars of pitch-class durations (extracted beforehand)")
        else:
            progress(0.05, "reading the melody")
            mel = melody_from_request(dict(request))
            pc = segment_pc(mel, per_bar)
            self._check_melody(mel, pc, per_bar, checks)
        cancel.raise_if_cancelled()
        shift = request.get("shift")
        if shift is None:
            shift, key = estimate_shift(pc)
            self._check_key(pc, key, checks)
        else:
            shift, key = int(shift), f"given shift {int(shift)}"
        locks = parse_locks(request.get("locks"), len(pc))
        return HarmonizerInputs(mel, pc, int(shift), key, method, per_bar, locks, checks)

    @staticmethod
    def _check_melody(mel: Melody, pc: np.ndarray, per_bar: int, checks: Checks) -> None:
        checks.passed("melody", f"{len(mel.notes)} notes in {mel.n_bars} bars of {mel.beats_per_bar:g} quarter notes")
        if not any(abs(mel.beats_per_bar - b) < 1e-6 for b in TRAINED_BAR_BEATS):
            checks.warn("metre", f"bars of {mel.beats_per_bar:g} quarter notes: the harmonizer was trained on chorale "
                                 f"bars of 3 or 4 quarter notes, so its chord rhythm may not fit this metre")
        empty = float((pc.sum(axis=1) <= 0).mean())
        if empty > 0.5:
            seg = "half bars" if per_bar == 2 else "bars"
            checks.warn("melody", f"{empty:.0%} of the {seg} have no melody notes: their chords come only from "
                                  f"their neighbours")

    @staticmethod
    def _check_key(pc: np.ndarray, key: str, checks: Checks) -> None:
        from engines.music.keys import estimate_key

        est = estimate_key(pc.sum(axis=0))
        if est is None:
            checks.warn("key", "the melody has no tonal centre the key finder can name: harmonized as if in C major")
        elif est.correlation < KEY_CORRELATION_MIN:
            checks.warn("key", f"the key is uncertain ({key}, profile correlation {est.correlation:.2f} < "
                               f"{KEY_CORRELATION_MIN}): the models read melodies transposed to C major / A minor, "
                               f"so chords may be off for an atonal or modal tune")
        else:
            checks.passed("key", f"{key} (profile correlation {est.correlation:.2f})")

    # -- infer: the networks' logits, or the HMM's emission scores ------------------------------------
    def infer(self, inputs: HarmonizerInputs, *, progress: ProgressFn, cancel: CancelToken) -> dict:
        pc_c = inputs.pc_in_c
        hmm = self.hmm()
        if inputs.method == "hmm":
            return {"scores": hmm.emission_scores(pc_c), "logits": None, "hmm": hmm}
        seg = "half bars" if inputs.per_bar == 2 else "bars"
        both = self.forward_batches([normalize_pc(pc_c)], progress=progress, cancel=cancel, span=(0.4, 0.9),
                                    message=f"harmonizing {len(pc_c)} {seg} ({inputs.method})")[0]
        logits = both[0 if inputs.method == "blstm" else 1].astype(np.float64)
        return {"scores": _log_softmax(logits), "logits": logits, "hmm": hmm}

    # -- finish: decode, transpose back, confidence and OOD -------------------------------------------
    def finish(self, outputs: dict, inputs: HarmonizerInputs, request: Mapping[str, Any]) -> Harmonization:
        from engines.core.calibration import energy_score, ood_check, softmax, temperature_of

        scores, logits, hmm = outputs["scores"], outputs["logits"], outputs["hmm"]
        method, locks = inputs.method, inputs.locks_in_c
        temperature = float(request.get("temperature", 0.0))  # sampling temperature, not the calibration's
        top_k = int(request.get("top_k", 0))
        tw = float(request.get("trans_weight", 1.0 if method == "hmm" else TRANS_WEIGHT))
        if temperature > 0:
            rng = np.random.default_rng(request.get("seed"))
            path = sample_path(scores, hmm.log_trans, rng, temperature=temperature, top_k=top_k, locks=locks,
                               trans_weight=tw)
        elif method == "hmm":
            path = viterbi(scores, hmm.log_trans, hmm.log_init, locks, 1.0)
        elif tw <= 0 and not locks:
            path = scores.argmax(1)
        else:
            path = viterbi(scores, hmm.log_trans, hmm.log_init, locks, max(tw, 1e-3))
        cal = SimpleNamespace(calibration=self.calibration_of(method))
        t_cal = temperature_of(cal)
        probs = softmax(logits, t_cal) if logits is not None else softmax(scores)
        checks = list(inputs.checks.items)
        result_scores: dict[str, Any] = {"confidence": round(float(probs.max(axis=1).mean()), 4), "method": method,
                                         "temperature": round(t_cal, 4),
                                         "calibrated": bool(cal.calibration.get("temperature"))}
        if logits is not None:
            energy = float(energy_score(logits, t_cal).mean())
            ref = cal.calibration.get("ood") or {}
            result_scores["ood"] = {"name": "energy", "score": round(energy, 4), "p99": ref.get("p99")}
            check = ood_check(energy, cal, what="the melody")
            checks.append(check or Check("out-of-distribution", "passed",
                                         f"energy score {energy:.2f} (no validation reference on the card)"))
        else:
            checks.append(Check("out-of-distribution", "passed",
                                "not measured: the HMM baseline has no logits to score"))
        # back to the melody's key: class k in C major / A minor is class transpose(k, -shift) here
        back = [transpose_class(k, -inputs.shift) for k in range(24)]
        orig_probs = np.zeros_like(probs)
        orig_probs[:, back] = probs
        orig_logits = None
        if logits is not None:
            orig_logits = np.zeros_like(logits)
            orig_logits[:, back] = logits
        chords = [back[int(c)] for c in path]
        seg_beats = (inputs.melody.beats_per_bar if inputs.melody is not None else 4.0) / inputs.per_bar
        return Harmonization(inputs.melody, chords, orig_probs, seg_beats, inputs.key, inputs.shift, method,
                             inputs.locks, checks, result_scores, orig_logits)

    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if len(paths) != 1:
            raise EngineError("give one melody file (MIDI or MusicXML)")
        return {"melody": str(paths[0])}

    def write_result(self, result: Harmonization, out: Path) -> list[Path]:
        mel = result.melody
        if mel is None:
            raise EngineError("these chords were made from bar features without a melody: nothing to write")
        return [write_result_file(Path(out), mel.notes, result.chords, result.seg_beats, mel.beats_per_bar, mel.bpm)]

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path as bundled_sample

        return [bundled_sample("music_lab-melody")]
