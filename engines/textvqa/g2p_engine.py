"""The G2P engine: ARPAbet for English words, with the NSGD fill order and alternatives. No torch at import."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from engines.core.atomic import atomic_write_text
from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.weights import load_state_checked
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


class G2pNsgdEngine(Engine):
    """Convolutional canvas G2P decoded by non-sequential greedy decoding (most confident position first)."""

    id = "g2p-nsgd"
    aliases = ("g2p",)
    text_inputs = True  # `csi-workstation run g2p knight colonel` pronounces the words themselves
    weights_name = "g2p-canvas-nsgd"

    def __init__(self) -> None:
        super().__init__()
        self.model = None
        self.card = None

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

    def weights_network(self, card):
        """The network the card's architecture arguments describe (load and the weights status share it)."""
        from engines.textvqa.g2p_model import CanvasG2P

        args = {k: v for k, v in card.arch_args.items() if k in ("channels", "blocks", "width", "decoder")}
        return CanvasG2P(**args)

    def load(self, device: str) -> None:
        from engines.core.weights import WeightsError, WeightsStore

        try:
            tensors, card = WeightsStore.default().load(self.weights_name, device="cpu")
        except WeightsError as exc:
            raise EngineError(f"{self.id}: {exc}") from None
        model = self.weights_network(card)
        load_state_checked(model, tensors, "the G2P weights")
        model.eval()
        # the decoding loop is many tiny steps: the CPU is as fast and avoids transfers
        self.model, self.card, self.device = model, card, device

    def unload(self) -> None:
        self.model = None
        self.card = None
        super().unload()

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> dict[str, Any]:
        import numpy as np
        import torch

        from engines.textvqa.g2p_model import canvas_end_fix, decode

        cancel = cancel or CancelToken()
        if self.model is None:
            self.load(self.device or "cpu")
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
        n_alt = max(0, min(int(request.get("alternatives", 3)), 5))
        dictionary = G.load_dictionary()
        results = []
        batch = 128
        for start in range(0, len(words), batch):
            cancel.raise_if_cancelled()
            progress(start / len(words), f"decoding words {start + 1}-{min(start + batch, len(words))}")
            chunk = words[start:start + batch]
            g = torch.from_numpy(np.stack([G.encode_word(w) for w in chunk]))
            canvas, steps, logp = decode(self.model, g, order)
            fixed = canvas_end_fix(canvas)
            other = None
            if request.get("compare", True):
                other_canvas, _, _ = decode(self.model, g, "l2r" if order == "nsgd" else "nsgd")
                other = canvas_end_fix(other_canvas)
            # alternatives: take the runner-up symbol at each of the least confident fill steps
            alts: list[list[tuple[tuple[str, ...], float]]] = [[] for _ in chunk]
            if n_alt:
                n_ph = [(fixed[i] >= 2).sum().item() for i in range(len(chunk))]
                probs = steps[:, :, 2].clone()
                for rank in range(n_alt):
                    # the rank-th least confident step among those that placed a phoneme or the first END
                    weak = []
                    for i in range(len(chunk)):
                        cand = [s for s in range(G.MAX_LEN) if int(steps[i, s, 0]) <= n_ph[i]]
                        cand.sort(key=lambda s: float(probs[i, s]))
                        weak.append(cand[rank] if rank < len(cand) else cand[-1])
                    c2, _, lp2 = decode(self.model, g, order, force=(torch.tensor(weak), 1))
                    for i in range(len(chunk)):
                        alts[i].append((tuple(G.decode_canvas(canvas_end_fix(c2[i:i + 1])[0].tolist())),
                                        float(lp2[i])))
            for i, w in enumerate(chunk):
                phones = G.decode_canvas(fixed[i].tolist())
                fill = []
                for s in range(G.MAX_LEN):
                    pos, sym, p = int(steps[i, s, 0]), int(steps[i, s, 1]), float(steps[i, s, 2])
                    fill.append({"step": s + 1, "position": pos + 1, "symbol": G.CANVAS_SYMBOLS[sym],
                                 "probability": round(p, 4)})
                seen = {tuple(phones)}
                alternatives = []
                for ph, lp in sorted(alts[i], key=lambda t: -t[1]):
                    if ph and ph not in seen:
                        seen.add(ph)
                        alternatives.append({"phonemes": list(ph), "log_prob": round(lp, 3)})
                known = dictionary.get(w)
                results.append({
                    "word": w,
                    # what to show first: the dictionary's pronunciation when it knows the word, else the model's
                    "pronunciation": list(known[0]) if known else phones,
                    "pronunciation_source": "dictionary" if known else "model",
                    "phonemes": phones, "log_prob": round(float(logp[i]), 3), "order": order,
                    "fill_order": fill, "alternatives": alternatives,
                    "other_order": None if other is None else {"order": "l2r" if order == "nsgd" else "nsgd",
                                                               "phonemes": G.decode_canvas(other[i].tolist())},
                    "dictionary": [list(p) for p in known] if known else None,
                    "matches_dictionary": None if not known else tuple(phones) in {tuple(p) for p in known},
                })
        progress(1.0, "done")
        return {"words": results, "skipped": skipped, "model": self.weights_name, "order": order}

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
            atomic_write_text(out, json.dumps(result, indent=1) + "\n")
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

