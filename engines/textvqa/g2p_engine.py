"""The G2P engine: ARPAbet for English words, with the NSGD fill order and alternatives. No torch at import."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.atomic import atomic_write_text
from engines.core.checks import checks_of
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import ModelEngine
from engines.core.results import TextAnswer
from engines.textvqa import g2p_data as G

MAX_WORDS = 2000
TEXT_SUFFIXES = {".txt", ".text", ".lst", ".csv", ""}


def words_from_text(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Split free text into words the model can read, and the tokens it skipped with the reason."""
    words, skipped = [], []
    for token in text.split():
        token = token.strip(".,;:!?\"()[]{}<>«»“”‘-–—*_/\\")
        if not token:
            continue
        try:
            w = G.check_word(token)
        except EngineError as exc:
            skipped.append({"token": token, "reason": str(exc)})
            continue
        if w not in words:
            words.append(w)
    return words, skipped


class G2pNsgdEngine(ModelEngine):
    """Convolutional canvas G2P decoded by non-sequential greedy decoding (most confident position first).

    On the engine template: the network lives on the device it is loaded on (the decoding loop runs there);
    prepare checks the words, infer decodes them in batches, finish returns a ``TextAnswer`` (``words`` as
    before) whose step probabilities and word confidences are calibrated by the card's temperature, with the
    energy of each word's fill steps as OOD score."""

    id = "g2p-nsgd"
    aliases = ("g2p",)
    text_inputs = True  # `csi-workstation run g2p knight colonel` pronounces the words themselves
    weights_name = "g2p-canvas-nsgd"
    architecture = "g2p-canvas-cnn"
    model_noun = "the G2P model"
    cpu_batch = 128
    gpu_batch = 512

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="G2P: convolutional canvas model, non-sequential greedy decoding",
            task="grapheme-to-phoneme", workspace="textvqa",
            inputs="words (a text file, or --set words='knight read') - letters a-z and apostrophes",
            outputs="ARPAbet per word (.txt: WORD<TAB>PHONEMES; .json: fill order, alternatives, dictionary)",
            labels=G.CANVAS_SYMBOLS, weights=self.weights_name,
            description="Fills an all-blank phoneme canvas one position per step, most confident position "
                        "first (NSGD); 'order': 'l2r' decodes left to right for comparison. Stress is not "
                        "predicted. Trained on the CMU Pronouncing Dictionary.",
            extra={"self_test_out": "pronunciations.txt"})

    def build_network(self, card):
        """The network the card's architecture arguments describe (load and the weights status share it)."""
        from engines.textvqa.g2p_model import CanvasG2P

        args = {k: v for k, v in card.arch_args.items() if k in ("channels", "blocks", "width", "decoder")}
        return CanvasG2P(**args)

    @property
    def model(self):
        """The network on the current device (None when not loaded)."""
        return self._networks.get(self.device or "") if self.loaded else None

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> dict[str, Any]:
        skipped: list[dict[str, str]] = []
        raw = request.get("words")
        if isinstance(raw, str):
            words, skipped = words_from_text(raw)
        elif raw is not None:
            words = [G.check_word(str(w)) for w in raw]
        else:
            words, skipped = words_from_text(str(request.get("text", "")))
        if not words:
            why = f" ({skipped[0]['reason']})" if skipped else ""
            raise EngineError(f"no word to pronounce{why}")
        if len(words) > MAX_WORDS:
            raise EngineError(f"{len(words)} words; at most {MAX_WORDS} per call")
        order = str(request.get("order", "nsgd"))
        if order not in ("nsgd", "l2r"):
            raise EngineError("order must be 'nsgd' or 'l2r'")
        return {"words": words, "skipped": skipped, "order": order,
                "alternatives": max(0, min(int(request.get("alternatives", 3)), 5)),
                "compare": bool(request.get("compare", True))}

    def infer(self, inputs: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> list[dict[str, Any]]:
        import torch

        from engines.textvqa.g2p_model import canvas_end_fix, decode

        words, order, n_alt = inputs["words"], inputs["order"], inputs["alternatives"]
        net, dev, t = self.network, self.device or "cpu", self.temperature
        batch = self.batch_size()
        chunks = []
        for start in range(0, len(words), batch):
            cancel.raise_if_cancelled()
            progress(start / len(words), f"decoding words {start + 1}-{min(start + batch, len(words))}")
            chunk = words[start:start + batch]
            g = torch.from_numpy(np.stack([G.encode_word(w) for w in chunk])).to(dev)
            canvas, steps, logp, logits = decode(net, g, order, temperature=t, return_logits=True)
            fixed = canvas_end_fix(canvas)
            other = None
            if inputs["compare"]:
                other = canvas_end_fix(decode(net, g, "l2r" if order == "nsgd" else "nsgd")[0])
            # alternatives: take the runner-up symbol at each of the least confident fill steps
            alts: list[list[tuple[tuple[str, ...], float]]] = [[] for _ in chunk]
            n_ph = [(fixed[i] >= 2).sum().item() for i in range(len(chunk))]
            if n_alt:
                probs = steps[:, :, 2].clone()
                for rank in range(n_alt):
                    # the rank-th least confident step among those that placed a phoneme or the first END
                    weak = []
                    for i in range(len(chunk)):
                        cand = [s for s in range(G.MAX_LEN) if int(steps[i, s, 0]) <= n_ph[i]]
                        cand.sort(key=lambda s: float(probs[i, s]))
                        weak.append(cand[rank] if rank < len(cand) else cand[-1])
                    c2, _, lp2 = decode(net, g, order, force=(torch.tensor(weak), 1), temperature=t)
                    for i in range(len(chunk)):
                        alts[i].append((tuple(G.decode_canvas(canvas_end_fix(c2[i:i + 1])[0].tolist())),
                                        float(lp2[i])))
            chunks.append({"words": chunk, "fixed": fixed, "steps": steps, "logp": logp, "logits": logits,
                           "other": other, "alts": alts, "n_ph": n_ph})
        progress(1.0, "done")
        return chunks

    def finish(self, chunks: list[dict[str, Any]], inputs: Mapping[str, Any],
               request: Mapping[str, Any]) -> TextAnswer:
        from engines.core.calibration import energy_score

        order = inputs["order"]
        dictionary = G.load_dictionary()
        results = []
        worst: tuple[float, str] | None = None
        for c in chunks:
            steps, fixed, other = c["steps"], c["fixed"], c["other"]
            energy = energy_score(c["logits"].numpy(), 1.0, axis=2)  # (B, L): one per fill step
            for i, w in enumerate(c["words"]):
                phones = G.decode_canvas(fixed[i].tolist())
                fill = []
                for s in range(G.MAX_LEN):
                    pos, sym, p = int(steps[i, s, 0]), int(steps[i, s, 1]), float(steps[i, s, 2])
                    fill.append({"step": s + 1, "position": pos + 1, "symbol": G.CANVAS_SYMBOLS[sym],
                                 "probability": round(p, 4)})
                # the word's OOD score: the mean energy of the steps that placed its phonemes and its end
                placed = [s for s in range(G.MAX_LEN) if int(steps[i, s, 0]) <= c["n_ph"][i]]
                word_energy = float(energy[i, placed].mean())
                if worst is None or word_energy > worst[0]:
                    worst = (word_energy, w)
                seen = {tuple(phones)}
                alternatives = []
                for ph, lp in sorted(c["alts"][i], key=lambda t_: -t_[1]):
                    if ph and ph not in seen:
                        seen.add(ph)
                        alternatives.append({"phonemes": list(ph), "log_prob": round(lp, 3)})
                known = dictionary.get(w)
                entry = {
                    "word": w,
                    # what to show first: the dictionary's pronunciation when it knows the word, else the model's
                    "pronunciation": list(known[0]) if known else phones,
                    "pronunciation_source": "dictionary" if known else "model",
                    "phonemes": phones, "log_prob": round(float(c["logp"][i]), 3),
                    "confidence": round(float(np.exp(float(c["logp"][i]))), 4), "energy": round(word_energy, 4),
                    "order": order, "fill_order": fill, "alternatives": alternatives,
                    "other_order": None if other is None else {"order": "l2r" if order == "nsgd" else "nsgd",
                                                               "phonemes": G.decode_canvas(other[i].tolist())},
                    "dictionary": [list(p) for p in known] if known else None,
                    "matches_dictionary": None if not known else tuple(phones) in {tuple(p) for p in known},
                }
                if request.get("keep_logits"):
                    entry["step_logits"] = c["logits"][i].numpy()
                results.append(entry)
        checks = []
        if worst is not None:
            check = self.ood_check(worst[0], what=f"the word '{worst[1]}'")
            if check is not None:
                checks.append(check)
        ref = (getattr(self.card, "calibration", None) or {}).get("ood") or {}
        confidence = float(np.mean([r["confidence"] for r in results]))
        return TextAnswer(
            engine=self.id, weights=self.weights_name, device=str(self.device or "cpu"), checks=checks,
            text="\n".join(f"{r['word']}\t{' '.join(r['phonemes'])}" for r in results), confidence=confidence,
            alternatives=[(" ".join(a["phonemes"]), a["log_prob"]) for a in results[0]["alternatives"]],
            scores={"confidence": confidence, "temperature": self.temperature,
                    "ood": {"name": "energy", "score": round(worst[0], 4), "word": worst[1],
                            **{k: ref[k] for k in ("p95", "p99") if k in ref}}},
            extra={"words": results, "skipped": inputs["skipped"], "model": self.weights_name, "order": order})

    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        texts = []
        for p in paths:
            p = Path(p)
            if not p.exists():  # a word typed on the command line, not a file
                texts.append(str(p))
                continue
            if p.suffix.lower() not in TEXT_SUFFIXES:
                raise EngineError(f"{p.name}: expected a plain text file of words (.txt)")
            try:
                texts.append(p.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                raise EngineError(f"{p.name} is not UTF-8 text") from None
        return {"text": "\n".join(texts)}

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        out = Path(out)
        if out.suffix.lower() == ".json":
            plain = dict(result.extra) if isinstance(result, TextAnswer) else dict(result)
            plain["words"] = [{k: v for k, v in w.items() if k != "step_logits"} for w in plain["words"]]
            if isinstance(result, TextAnswer):
                plain.update(confidence=result.confidence, scores=result.scores, device=result.device,
                             checks=[c.as_dict() for c in checks_of(result)])
            atomic_write_text(out, json.dumps(plain, indent=1, default=float) + "\n")
        elif out.suffix.lower() in (".txt", ".tsv", ".dict"):
            lines = [f"{r['word'].upper()}\t{' '.join(r['phonemes'])}" for r in result["words"]]
            lines += [f"# skipped {s['token']}: {s['reason']}" for s in result.get("skipped", [])]
            atomic_write_text(out, "\n".join(lines) + "\n")
        else:
            raise EngineError("--out must be .txt (WORD<TAB>PHONEMES) or .json (with fill order and alternatives)")
        return [out]

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path

        return [sample_path("g2p-words")]


def arpabet_pretty(phones: Sequence[str]) -> str:
    return " ".join(phones) if phones else "(nothing)"

