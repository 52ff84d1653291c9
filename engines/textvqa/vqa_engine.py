"""The VQA engine: an MCL-KD specialized ensemble answers a question about a (generated) scene image.

No torch at import: the model module is imported when the engine template loads the network.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.atomic import atomic_write_text
from engines.core.checks import Checks, checks_of
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import ModelEngine
from engines.core.results import TextAnswer
from engines.textvqa import scenes as S

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 200
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


#: the largest image read at all (the models see 64x64 scenes); PIL's own decompression-bomb limit is higher
MAX_IMAGE_PIXELS = 50_000_000


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 array; a plain-language EngineError for anything that is not a readable image."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file")
    too_big = (f"{path.name} declares an image too large to open safely (more than "
               f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels); it was not read")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise EngineError(f"{too_big} ({w}×{h} pixels)")
                im.load()
                return np.asarray(im.convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise EngineError(too_big) from None
    except UnidentifiedImageError:
        raise EngineError(f"{path.name} is not an image this workspace can read (not a known image format)") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged data; PIL raises SyntaxError for some
        log.info("reading %s failed: %r", path, exc)
        raise EngineError(f"{path.name} is not an image this workspace can read (the file is damaged or "
                          f"truncated)") from None


# -- the input contract: does the picture look like the generated scenes? ------------------------------
#: ranges measured on 400 generated scenes (300 train, 50 val, 50 sample), with a margin; a natural photo
#: (scikit-image's astronaut, coffee, chelsea) falls far outside every one of them
SCENE_LIMITS = {
    "floor": (0.60, 1.0),  # grey floor pixels (measured 0.77-0.97)
    "explained": (0.90, 1.0),  # pixels that are grey (floor, shadow, highlight) or a palette colour (0.98-1.0)
    "floor_gradient": (15.0, 35.0),  # floor brightness, bottom rows minus top rows (22.5-26.8)
    "edges": (0.0, 8.0),  # mean |horizontal brightness step| (2.4-5.1)
}
_SCENE_FEATURE_NAMES = {"floor": "grey floor", "explained": "floor or palette colours",
                        "floor_gradient": "floor lit from the back (brightness rise)", "edges": "edge density"}


def scene_statistics(image: np.ndarray) -> dict[str, float]:
    """Cheap statistics of a 64x64 RGB image that the generated scenes keep within narrow ranges."""
    f = np.asarray(image, np.float32)[..., :3]
    hi, lo, bright = f.max(axis=2), f.min(axis=2), f.mean(axis=2)
    grey = (hi - lo) < 30
    floor = grey & (bright > 80) & (bright < 165)
    palette = np.asarray(list(S.COLORS.values()), np.float32)
    palette /= palette.sum(axis=1, keepdims=True)
    chroma = f / np.maximum(f.sum(axis=2, keepdims=True), 1.0)
    dist = np.linalg.norm(chroma[:, :, None, :] - palette[None, None], axis=-1).min(axis=-1)
    explained = grey | (dist < 0.06)
    rows = [float(bright[r][floor[r]].mean()) for r in range(f.shape[0]) if floor[r].sum() > 5]
    gradient = float(np.mean(rows[-8:]) - np.mean(rows[:8])) if len(rows) > 20 else float("nan")
    return {"floor": float(floor.mean()), "explained": float(explained.mean()), "floor_gradient": gradient,
            "edges": float(np.abs(np.diff(bright, axis=1)).mean())}


def check_scene(image: np.ndarray, checks, name: str = "the picture") -> dict[str, float]:
    """Adds a "scene" check: passed when every statistic lies in the generated scenes' range, else warned."""
    stats = scene_statistics(image)
    outside = []
    for key, (low, high) in SCENE_LIMITS.items():
        value = stats[key]
        if not (low <= value <= high):  # NaN (no floor rows) is outside too
            shown = "none" if value != value else (f"{100 * value:.0f}%" if key in ("floor", "explained")
                                                   else f"{value:.1f}")
            outside.append(f"{_SCENE_FEATURE_NAMES[key]} {shown}")
    if outside:
        checks.warn("scene", f"This picture does not look like the scenes the VQA model was trained on (generated "
                             f"64x64 pictures of flat shapes on a grey floor): {name} is out of range in "
                             f"{', '.join(outside)}. The model's answer is unreliable.")
    else:
        checks.passed("scene", "the picture looks like the generated training scenes")
    return stats


def check_question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise EngineError("the question is empty: type a question such as 'how many circles are there?'")
    if len(question) > MAX_QUESTION_CHARS:
        raise EngineError(f"the question is {len(question)} characters long; the models read at most "
                          f"{MAX_QUESTION_CHARS} characters ({S.MAX_TOKENS} words)")
    if not S.tokenize(question):
        raise EngineError("the question has no words")
    return question.strip()


def specialists_by_family(card_metrics: Mapping[str, Any], k: int) -> dict[str, list[int]]:
    """For each question family, the k models the training rule assigned most of its held-out questions to."""
    table = card_metrics.get("family_assignment_test")
    if not table:
        return {}
    arr = np.asarray(table)  # (M, F)
    return {f: [int(m) for m in np.argsort(-arr[:, i], kind="stable")[:k]] for i, f in enumerate(S.FAMILIES)}


@dataclass
class VqaInputs:
    """What ``prepare`` hands to ``infer``: the checked question, the 64x64 picture, its tokens and checks."""

    question: str
    image: np.ndarray
    tokens: np.ndarray
    checks: Checks
    notes: list[str]
    image_path: Any
    sidecar: Mapping[str, Any] | None


class VqaMclKdEngine(ModelEngine):
    """M=5 stacked-attention VQA models specialised with MCL-KD (k from the model card).

    On the engine template: prepare reads and checks the picture and the question, infer runs the ensemble,
    finish returns a ``TextAnswer`` whose confidence is calibrated (softmax of the log mean probability over
    the card's temperature) with the members' mean energy as OOD score; every key the view reads stays."""

    id = "vqa-mclkd"
    aliases = ("vqa",)
    model_noun = "the VQA ensemble"
    #: the stacked attention ensemble is preferred; the MLP one is used when only it is installed
    weight_candidates = ("vqa-san-mclkd", "vqa-mlp-mclkd")

    @property
    def weights_name(self) -> str:
        if self.card is not None:
            return self.card.name
        from engines.core.weights import WeightsError, WeightsStore

        store = WeightsStore.default()
        key = []
        for name in self.weight_candidates:  # the choice is hashed once per state of the files, not per call
            try:
                stat = store.paths(name)[0].stat()
                key.append((name, stat.st_mtime_ns, stat.st_size))
            except (WeightsError, OSError):
                key.append((name, None, None))
        cached = getattr(self, "_weights_choice", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        choice = next((n for n in self.weight_candidates if store.status(n) == "ok"), self.weight_candidates[0])
        self._weights_choice = (key, choice)
        return choice

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="VQA: MCL-KD specialized ensemble (SAN, or MLP if only that is installed)", task="visual question answering",
            workspace="textvqa", inputs="an image (generated 64x64 scene) and a question (--set question=...)",
            outputs="answer JSON: ensemble answer, each model's answer and confidence, attention maps",
            labels=S.ANSWERS, weights=self.weights_name,
            description="Five stacked attention networks trained independently, then specialised with multiple "
                        "choice learning and knowledge distillation (Mun et al., NeurIPS 2018), on a CLEVR-like "
                        "world generated here. Prediction is the mean of the five softmaxes.",
            extra={"self_test_out": "answer.json"})

    # -- the network ---------------------------------------------------------------------------------
    def build_network(self, card):
        from engines.textvqa.vqa_model import Ensemble

        a = card.arch_args
        return Ensemble(a["kind"], int(a["members"]), vocab=a["vocab"], answers=a["answers"], channels=a["channels"],
                        embed=a["embed"], hidden=a["hidden"], hops=a["hops"])

    @property
    def model(self):
        """The ensemble on the current device (None when not loaded)."""
        return self._networks.get(self.device or "") if self.loaded else None

    # -- prediction ----------------------------------------------------------------------------------
    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> VqaInputs:
        image_path = request.get("image_path")
        sidecar = S.read_sidecar(Path(image_path)) if image_path else None
        question = request.get("question")
        if question is None and sidecar and sidecar.get("questions"):
            question = sidecar["questions"][0]["text"]
        question = check_question(question)
        progress(0.1, "reading the image")
        image = request.get("image")
        if image is None:
            if not image_path:
                raise EngineError("no image given")
            image = read_image(Path(image_path))
        image = np.asarray(image)
        notes = []
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise EngineError(f"expected an RGB image, got an array of shape {image.shape}")
        image = image[..., :3]
        if image.shape[:2] != (S.IMAGE_SIZE, S.IMAGE_SIZE):
            from PIL import Image

            notes.append(f"image resized from {image.shape[1]}x{image.shape[0]} to {S.IMAGE_SIZE}x{S.IMAGE_SIZE}; "
                         f"the models only know generated scenes")
            image = np.asarray(Image.fromarray(image.astype(np.uint8)).resize((S.IMAGE_SIZE, S.IMAGE_SIZE),
                                                                              Image.BILINEAR))
        checks = Checks()
        check_scene(image, checks, Path(image_path).name if image_path else "the picture")
        tokens, unknown = S.encode_question(question)
        if unknown:
            notes.append(f"words the models never saw (ignored): {', '.join(unknown)}")
        if len(S.tokenize(question)) > S.MAX_TOKENS:
            notes.append(f"only the first {S.MAX_TOKENS} words were read")
        return VqaInputs(question, image, tokens, checks, notes, image_path, sidecar)

    def infer(self, inputs: VqaInputs, *, progress: ProgressFn, cancel: CancelToken):
        import torch

        progress(0.4, "asking the five models")
        dev = self.device or "cpu"
        img_t = torch.from_numpy(inputs.image.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(dev)
        tok_t = torch.from_numpy(inputs.tokens)[None].to(dev)
        logits, maps = self.network(img_t, tok_t, return_attention=True)
        attention = [None if m is None else m[0].reshape(-1, 8, 8).float().cpu().numpy() for m in maps]
        return logits[:, 0].float().cpu().numpy(), attention  # (M, A) logits, per member (hops, 8, 8)

    def finish(self, outputs, inputs: VqaInputs, request: Mapping[str, Any]) -> TextAnswer:
        from engines.core.calibration import energy_score, softmax

        logits, attention = outputs
        probs = softmax(logits)  # (M, A) each member's softmax
        log_mean = np.log(np.clip(probs.mean(0), 1e-12, None))
        mean = softmax(log_mean[None], self.temperature)[0]  # the ensemble's calibrated probabilities
        question = inputs.question
        family = S.question_family(question)
        k = int(self.card.arch_args.get("k", 1))
        spec = specialists_by_family(self.card.metrics, k)
        assign = np.asarray(self.card.metrics.get("family_assignment_test", [[0.0] * len(S.FAMILIES)] * len(probs)))
        members = []
        for m, p in enumerate(probs):
            best = int(p.argmax())
            att = attention[m]
            members.append({"model": m + 1, "answer": S.ANSWERS[best], "confidence": float(p[best]),
                            "specialist": m in spec.get(family, []),
                            "share_of_family": float(assign[m, S.FAMILIES.index(family)]),
                            "specialist_for": [f for f, ms in spec.items() if m in ms],
                            "attention": None if att is None else np.round(att, 4).tolist()})
        top = np.argsort(-mean)[:5]
        answer = S.ANSWERS[int(top[0])]
        truth = None
        if inputs.sidecar:
            norm = S.normalize_question(question)
            for q in inputs.sidecar.get("questions", []):
                if S.normalize_question(q["text"]) == norm:
                    truth = q["answer"]
                    break
        energy = float(energy_score(logits, 1.0).mean())  # the members' mean energy on this question
        checks = list(inputs.checks.items)
        scene_check = checks[0]
        ood = self.ood_check(energy, what="this picture and question")
        if ood is not None:
            checks.append(ood)
        warned = next((c for c in checks if c.status != "passed"), None)
        in_domain = warned is None
        ref = (getattr(self.card, "calibration", None) or {}).get("ood") or {}
        image_path = inputs.image_path
        extra = {
            # out of domain, the warning is the headline and the answer comes after it, marked unreliable
            "headline": None if in_domain else warned.reason,
            "reliable": in_domain,
            "answer_text": answer if in_domain else f"{warned.reason} Model's answer (unreliable): {answer}",
            "question": question, "family": family, "answer": answer,
            "raw_confidence": float(probs.mean(0)[top[0]]),
            "top": [{"answer": S.ANSWERS[int(i)], "probability": float(mean[i])} for i in top],
            "members": members, "k": k, "specialists": [m + 1 for m in spec.get(family, [])],
            "truth": truth, "correct": None if truth is None else answer == truth,
            "oracle": None if truth is None else any(mm["answer"] == truth for mm in members),
            "notes": inputs.notes, "image_path": str(image_path) if image_path else None,
            "suggested": [q["text"] for q in inputs.sidecar["questions"]] if inputs.sidecar else suggested_questions(),
            "model": self.weights_name, "scene_check": scene_check.status,
        }
        if request.get("keep_logits"):
            extra["member_logits"] = logits
        confidence = float(mean[top[0]])
        return TextAnswer(engine=self.id, weights=self.weights_name, device=str(self.device or "cpu"),
                          checks=checks, text=answer, confidence=confidence,
                          alternatives=[(S.ANSWERS[int(i)], float(mean[i])) for i in top[1:]],
                          scores={"confidence": confidence, "temperature": self.temperature,
                                  "ood": {"name": "energy", "score": round(energy, 4),
                                          **{k_: ref[k_] for k_ in ("p95", "p99") if k_ in ref}}},
                          extra=extra)

    # -- headless ------------------------------------------------------------------------------------
    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if len(paths) != 1:
            raise EngineError(f"{self.id} takes one image, got {len(paths)}")
        return {"image_path": Path(paths[0])}

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        out = Path(out)
        if out.suffix.lower() != ".json":
            raise EngineError("--out must be a .json file")
        plain = dict(result.extra) if isinstance(result, TextAnswer) else dict(result)
        plain.pop("member_logits", None)
        if isinstance(result, TextAnswer):  # the headline first, then the answer, then how sure and why
            plain = {"headline": plain.pop("headline", None), **plain, "confidence": result.confidence,
                     "alternatives": [list(a) for a in result.alternatives], "scores": result.scores,
                     "engine": result.engine, "weights": result.weights, "device": result.device}
        plain["checks"] = [c.as_dict() for c in checks_of(result)]
        atomic_write_text(out, json.dumps(plain, indent=1, default=float) + "\n")
        return [out]

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path

        return [sample_path("vqa-scene")]


def suggested_questions() -> list[str]:
    return ["how many things are there?", "is there a red circle?", "what color is the large square?",
            "are there more circles than squares?", "how many things are left of the blue thing?",
            "how many other things have the same color as the small circle?"]
