"""The VQA engine: an MCL-KD specialized ensemble answers a question about a (generated) scene image.

No torch at import: the model module is imported in ``load``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.atomic import atomic_write_text
from engines.core.checks import Checks, checks_of
from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.weights import load_state_checked
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


class VqaMclKdEngine(Engine):
    """M=5 stacked-attention VQA models specialised with MCL-KD (k from the model card)."""

    id = "vqa-mclkd"
    aliases = ("vqa",)
    #: the stacked attention ensemble is preferred; the MLP one is used when only it is installed
    weight_candidates = ("vqa-san-mclkd", "vqa-mlp-mclkd")

    @property
    def weights_name(self) -> str:
        if self.card is not None:
            return self.card.name
        from engines.core.weights import WeightsStore

        store = WeightsStore.default()
        for name in self.weight_candidates:
            if store.status(name) == "ok":
                return name
        return self.weight_candidates[0]

    def __init__(self) -> None:
        super().__init__()
        self.model = None
        self.card = None

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

    # -- life cycle ----------------------------------------------------------------------------------
    @staticmethod
    def _ensemble(card):
        from engines.textvqa.vqa_model import Ensemble

        a = card.arch_args
        return Ensemble(a["kind"], int(a["members"]), vocab=a["vocab"], answers=a["answers"], channels=a["channels"],
                        embed=a["embed"], hidden=a["hidden"], hops=a["hops"])

    def weights_network(self, card) -> dict:
        """Tensor name -> shape of the ensemble the card describes, as stored in the file (members.*)."""
        return {f"members.{k}": list(v.shape) for k, v in self._ensemble(card).members.state_dict().items()}

    def load(self, device: str) -> None:
        from engines.core.weights import WeightsError, WeightsStore

        try:
            tensors, card = WeightsStore.default().load(self.weights_name, device="cpu")
        except WeightsError as exc:
            raise EngineError(f"{self.id}: {exc}") from None
        card.name = card.name or self.weights_name
        model = self._ensemble(card)
        load_state_checked(model.members, {k.removeprefix("members."): v for k, v in tensors.items()},
                           "the VQA ensemble's weights")
        model.eval()
        self.model = model.to(device)
        self.card = card
        self.device = device

    def unload(self) -> None:
        self.model = None
        self.card = None
        super().unload()

    # -- prediction ----------------------------------------------------------------------------------
    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> dict[str, Any]:
        import torch

        cancel = cancel or CancelToken()
        if self.model is None:
            self.load(self.device or "cpu")
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
        cancel.raise_if_cancelled()
        progress(0.4, "asking the five models")
        dev = self.device or "cpu"
        img_t = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(dev)
        tok_t = torch.from_numpy(tokens)[None].to(dev)
        with torch.no_grad():
            logits, maps = self.model(img_t, tok_t, return_attention=True)
        probs = torch.softmax(logits[:, 0].float(), -1).cpu().numpy()  # (M, A)
        mean = probs.mean(0)
        family = S.question_family(question)
        k = int(self.card.arch_args.get("k", 1))
        spec = specialists_by_family(self.card.metrics, k)
        assign = np.asarray(self.card.metrics.get("family_assignment_test", [[0.0] * len(S.FAMILIES)] * len(probs)))
        members = []
        for m, p in enumerate(probs):
            best = int(p.argmax())
            att = None
            if maps[m] is not None:
                att = maps[m][0].reshape(-1, 8, 8).cpu().numpy()  # (hops, 8, 8)
            members.append({"model": m + 1, "answer": S.ANSWERS[best], "confidence": float(p[best]),
                            "specialist": m in spec.get(family, []),
                            "share_of_family": float(assign[m, S.FAMILIES.index(family)]),
                            "specialist_for": [f for f, ms in spec.items() if m in ms],
                            "attention": None if att is None else np.round(att, 4).tolist()})
        top = np.argsort(-mean)[:5]
        answer = S.ANSWERS[int(top[0])]
        truth = None
        if sidecar:
            norm = S.normalize_question(question)
            for q in sidecar.get("questions", []):
                if S.normalize_question(q["text"]) == norm:
                    truth = q["answer"]
                    break
        progress(1.0, "done")
        scene_check = checks.items[0]
        in_domain = scene_check.status == "passed"
        return {
            # out of domain, the warning is the headline and the answer comes after it, marked unreliable
            "headline": None if in_domain else scene_check.reason,
            "reliable": in_domain,
            "answer_text": answer if in_domain else f"{scene_check.reason} Model's answer (unreliable): {answer}",
            "question": question, "family": family, "answer": answer, "confidence": float(mean[top[0]]),
            "top": [{"answer": S.ANSWERS[int(i)], "probability": float(mean[i])} for i in top],
            "members": members, "k": k, "specialists": [m + 1 for m in spec.get(family, [])],
            "truth": truth, "correct": None if truth is None else answer == truth,
            "oracle": None if truth is None else any(mm["answer"] == truth for mm in members),
            "notes": notes, "image_path": str(image_path) if image_path else None,
            "suggested": [q["text"] for q in sidecar["questions"]] if sidecar else suggested_questions(),
            "model": self.weights_name, "checks": list(checks.items),
        }

    # -- headless ------------------------------------------------------------------------------------
    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if len(paths) != 1:
            raise EngineError(f"{self.id} takes one image, got {len(paths)}")
        return {"image_path": Path(paths[0])}

    def write_result(self, result: Mapping[str, Any], out: Path) -> list[Path]:
        out = Path(out)
        if out.suffix.lower() != ".json":
            raise EngineError("--out must be a .json file")
        plain = dict(result, checks=[c.as_dict() for c in checks_of(result)])
        atomic_write_text(out, json.dumps(plain, indent=1) + "\n")
        return [out]

    def sample_paths(self) -> list[Path]:
        from engines.core.samples import sample_path

        return [sample_path("vqa-scene")]


def suggested_questions() -> list[str]:
    return ["how many things are there?", "is there a red circle?", "what color is the large square?",
            "are there more circles than squares?", "how many things are left of the blue thing?",
            "how many other things have the same color as the small circle?"]
