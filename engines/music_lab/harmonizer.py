"""The melody harmonizer engine (seed 6.1): a chord per bar (or half bar) for a melody, with locked chords and
sampled alternatives. Methods: the BLSTM over bars (default), the per-bar DNN and the HMM baseline."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.weights import load_state_checked
from engines.music_lab.decode import ChordHMM, sample_path, viterbi
from engines.music_lab.melody import (CHORD_CLASSES, Melody, chord_class_of, chord_class_symbol, coverage,
                                      estimate_shift, melody_from_request, normalize_pc, segment_pc,
                                      transpose_class, write_result_file)

WEIGHTS = "music_lab-harmonizer"
ARCH = "bar-blstm-harmonizer@1"
METHODS = ("blstm", "dnn", "hmm")
#: weight of the chord-transition prior when decoding a network's per-bar distributions (0 = plain argmax)
TRANS_WEIGHT = 0.3


@dataclass
class Harmonization:
    melody: Melody
    chords: list[int]  # chord class per segment, in the melody's key
    probs: np.ndarray  # (segments, 24) per-segment distribution, in the melody's key
    seg_beats: float
    key: str
    shift: int
    method: str
    locks: dict[int, int] = field(default_factory=dict)

    @property
    def symbols(self) -> list[str]:
        return [chord_class_symbol(c) for c in self.chords]

    def labels(self) -> list[str]:
        return [CHORD_CLASSES[c] for c in self.chords]

    def coverage(self) -> float:
        return coverage(segment_pc(self.melody, int(round(self.melody.beats_per_bar / self.seg_beats))), self.chords)


class HarmonizerModels:
    """The three harmonizers from one weights file; per-segment log scores in the normalized key."""

    def __init__(self, tensors: Mapping[str, Any], blstm_args: dict, dnn_args: dict, device: str = "cpu"):
        import torch

        from engines.music_lab.nets import BarBLSTM, BarDNN

        self.device = device
        self.blstm = BarBLSTM(**blstm_args)
        load_state_checked(self.blstm, {k[6:]: v for k, v in tensors.items() if k.startswith("blstm.")},
                           "the BLSTM harmonizer's weights")
        self.dnn = BarDNN(**dnn_args)
        load_state_checked(self.dnn, {k[4:]: v for k, v in tensors.items() if k.startswith("dnn.")},
                           "the DNN harmonizer's weights")
        for m in (self.blstm, self.dnn):
            m.to(device).eval()
        self.hmm = ChordHMM.from_tensors({k: v.cpu() if hasattr(v, "cpu") else v for k, v in tensors.items()})
        self._torch = torch

    def scores(self, pc: np.ndarray, method: str) -> np.ndarray:
        """(T, 24) log scores: log-softmax of a network, or the HMM's emission log-likelihoods."""
        if method == "hmm":
            return self.hmm.emission_scores(pc)
        torch = self._torch
        net = self.blstm if method == "blstm" else self.dnn
        with torch.no_grad():
            x = torch.from_numpy(normalize_pc(pc)).to(self.device)[None]
            return torch.log_softmax(net(x)[0], -1).cpu().numpy().astype(np.float64)

    def decode(self, pc: np.ndarray, method: str, locks: dict[int, int] | None = None,
               trans_weight: float = TRANS_WEIGHT) -> np.ndarray:
        s = self.scores(pc, method)
        if method == "hmm":
            return viterbi(s, self.hmm.log_trans, self.hmm.log_init, locks, 1.0)
        if trans_weight <= 0 and not locks:
            return s.argmax(1)
        return viterbi(s, self.hmm.log_trans, self.hmm.log_init, locks, max(trans_weight, 1e-3))


def evaluate_models(tensors, blstm_args, dnn_args, chorales) -> dict:
    """Accuracy (exact major/minor chord per labelled bar) and chord-tone coverage of the melody on ``chorales``."""
    models = HarmonizerModels(tensors, blstm_args, dnn_args)
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
                pred = models.decode(c.pc, method, None, w)
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


class MelodyHarmonizerEngine(Engine):
    id = "melody-harmonizer"
    aliases = ("harmonize",)

    def __init__(self) -> None:
        super().__init__()
        self.models: HarmonizerModels | None = None
        self.card = None

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

    def load(self, device: str) -> None:
        from engines.core.weights import WeightsError, WeightsStore

        try:
            tensors, card = WeightsStore.default().load(WEIGHTS, "cpu", expect_architecture=ARCH)
        except WeightsError as exc:
            raise EngineError(f"the harmonizer's weights cannot be used: {exc}") from None
        dev = device if device.startswith("cuda") else "cpu"  # tiny models: MPS gains nothing
        self.models = HarmonizerModels(tensors, card.arch_args["blstm"], card.arch_args["dnn"], dev)
        self.card = card
        self.device = device

    def unload(self) -> None:
        self.models = None
        self.device = None

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> Harmonization:
        if self.models is None:
            self.load("cpu")
        cancel = cancel or CancelToken()
        progress(0.05, "reading the melody")
        mel = melody_from_request(dict(request))
        cancel.raise_if_cancelled()
        method = str(request.get("method", "blstm")).lower()
        if method not in METHODS:
            raise EngineError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
        resolution = str(request.get("resolution", "bar")).lower()
        if resolution not in ("bar", "half"):
            raise EngineError("resolution must be 'bar' or 'half'")
        per_bar = 2 if resolution == "half" else 1
        pc = segment_pc(mel, per_bar)
        shift = request.get("shift")
        if shift is None:
            shift, key = estimate_shift(pc)
        else:
            shift, key = int(shift), f"given shift {int(shift)}"
        locks = parse_locks(request.get("locks"), len(pc))
        norm_locks = {i: transpose_class(c, shift) for i, c in locks.items()}
        pc_n = np.roll(pc, shift, axis=1)
        progress(0.4, f"harmonizing {len(pc)} {'half bars' if per_bar == 2 else 'bars'} ({method})")
        scores = self.models.scores(pc_n, method)
        temperature = float(request.get("temperature", 0.0))
        top_k = int(request.get("top_k", 0))
        tw = float(request.get("trans_weight", 1.0 if method == "hmm" else TRANS_WEIGHT))
        cancel.raise_if_cancelled()
        if temperature > 0:
            rng = np.random.default_rng(request.get("seed"))
            path = sample_path(scores, self.models.hmm.log_trans, rng, temperature=temperature, top_k=top_k,
                               locks=norm_locks, trans_weight=tw)
        elif method == "hmm":
            path = viterbi(scores, self.models.hmm.log_trans, self.models.hmm.log_init, norm_locks, 1.0)
        else:
            path = self.models.decode(pc_n, method, norm_locks, tw)
        probs = np.exp(scores - scores.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        # back to the melody's key: class k in the normalized key is class transpose(k, -shift) here
        orig_probs = np.zeros_like(probs)
        for k in range(24):
            orig_probs[:, transpose_class(k, -shift)] = probs[:, k]
        chords = [transpose_class(int(c), -shift) for c in path]
        progress(1.0, "done")
        return Harmonization(mel, chords, orig_probs, mel.beats_per_bar / per_bar, key, shift, method, locks)

    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if len(paths) != 1:
            raise EngineError("give one melody file (MIDI or MusicXML)")
        return {"melody": str(paths[0])}

    def write_result(self, result: Harmonization, out: Path) -> list[Path]:
        mel = result.melody
        return [write_result_file(Path(out), mel.notes, result.chords, result.seg_beats, mel.beats_per_bar, mel.bpm)]

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path as bundled_sample

        return [bundled_sample("music_lab-melody")]
