"""A small CLEVR-like world: deterministic scenes, rendered images, and questions answered from the scene graph.

Everything here is numpy + skimage.draw (no torch, no Qt), so the GUI, the tests and the training script
share exactly the same generator. A scene is a list of objects with colour, shape, size, material and a
position; the image is rendered from it; each question comes from one of six families and its answer is
computed from the scene graph, never from the pixels.

Seeds: scene ``i`` of split ``s`` uses ``numpy.random.default_rng((SPLIT_SEEDS[s], i))``, so the train,
validation and test splits never share a scene and every scene can be re-made from its id alone.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

IMAGE_SIZE = 64
COLORS = {
    "red": (200, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 220),
    "yellow": (225, 200, 40), "purple": (140, 60, 190), "cyan": (40, 200, 210),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 5, "large": 8}  # radius in pixels
MATERIALS = ("metal", "rubber")
ATTRIBUTES = ("color", "shape", "size", "material")
ATTR_VALUES = {"color": tuple(COLORS), "shape": SHAPES, "size": tuple(SIZES), "material": MATERIALS}
MAX_COUNT = 6
ANSWERS = ("yes", "no") + tuple(str(i) for i in range(MAX_COUNT + 1)) + tuple(COLORS) + SHAPES + tuple(SIZES) \
    + MATERIALS
FAMILIES = ("existence", "counting", "attribute", "comparison", "spatial", "multi-hop")
RELATIONS = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}
SPLIT_SEEDS = {"train": 1001, "val": 2002, "test": 3003, "sample": 4004}
MAX_TOKENS = 20
_PAD, _UNK = "<pad>", "<unk>"


@dataclass
class SceneObject:
    color: str
    shape: str
    size: str
    material: str
    x: float
    y: float

    def attr(self, name: str) -> str:
        return getattr(self, name)


@dataclass
class Question:
    text: str
    answer: str
    family: str


# -- scenes -----------------------------------------------------------------------------------------
def make_scene(rng: np.random.Generator, n_min: int = 3, n_max: int = 6) -> list[SceneObject]:
    """Place 3-6 non-overlapping objects with random attributes."""
    n = int(rng.integers(n_min, n_max + 1))
    objects: list[SceneObject] = []
    tries = 0
    while len(objects) < n and tries < 500:
        tries += 1
        size = str(rng.choice(tuple(SIZES)))
        r = SIZES[size]
        x = float(rng.uniform(r + 2, IMAGE_SIZE - r - 2))
        y = float(rng.uniform(r + 2, IMAGE_SIZE - r - 2))
        if any(np.hypot(x - o.x, y - o.y) < r + SIZES[o.size] + 3 for o in objects):
            continue
        objects.append(SceneObject(color=str(rng.choice(tuple(COLORS))), shape=str(rng.choice(SHAPES)),
                                   size=size, material=str(rng.choice(MATERIALS)), x=x, y=y))
    return objects


def render_scene(objects: list[SceneObject], rng: np.random.Generator | None = None) -> np.ndarray:
    """Render to an IMAGE_SIZE x IMAGE_SIZE x 3 uint8 image: grey floor, metal shaded with a highlight."""
    from skimage.draw import disk, polygon

    n = IMAGE_SIZE
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    img = np.empty((n, n, 3), np.float32)
    img[:] = (118 + 30 * (yy / n))[..., None]  # a floor lit from the back
    for o in sorted(objects, key=lambda o: o.y):
        r = SIZES[o.size]
        if o.shape == "circle":
            rr, cc = disk((o.y, o.x), r, shape=(n, n))
        elif o.shape == "square":
            s = r * 0.85
            rr, cc = polygon([o.y - s, o.y - s, o.y + s, o.y + s], [o.x - s, o.x + s, o.x + s, o.x - s], (n, n))
        else:
            rr, cc = polygon([o.y - r, o.y + r * 0.8, o.y + r * 0.8], [o.x, o.x + r, o.x - r], (n, n))
        # a soft shadow below-right first
        sr, sc = rr + 1, cc + 1
        keep = (sr < n) & (sc < n)
        img[sr[keep], sc[keep]] *= 0.75
        base = np.asarray(COLORS[o.color], np.float32)
        if o.material == "metal":
            d = np.hypot(yy[rr, cc] - (o.y - r * 0.35), xx[rr, cc] - (o.x - r * 0.35)) / (1.6 * r)
            shade = (1.25 - 0.75 * np.clip(d, 0, 1))[:, None]
            spec = np.clip(1 - d / 0.25, 0, 1)[:, None] * 255
            img[rr, cc] = np.clip(base * shade * 0.9 + spec, 0, 255)
        else:
            img[rr, cc] = base * 0.8
    if rng is not None:
        img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


# -- questions --------------------------------------------------------------------------------------
def _phrase(filt: dict[str, str]) -> str:
    words = [filt[a] for a in ("size", "color", "material") if a in filt]
    noun = filt.get("shape", "thing")
    return " ".join(words + [noun])


def _matches(o: SceneObject, filt: dict[str, str]) -> bool:
    return all(o.attr(a) == v for a, v in filt.items())


def _select(objects, filt):
    return [o for o in objects if _matches(o, filt)]


def _random_filter(rng, n_attr: int, like: SceneObject | None = None) -> dict[str, str]:
    attrs = list(rng.choice(ATTRIBUTES, size=n_attr, replace=False))
    if like is not None:
        return {a: like.attr(a) for a in attrs}
    return {a: str(rng.choice(ATTR_VALUES[a])) for a in attrs}


def _unique_filter(rng, objects, obj) -> dict[str, str] | None:
    """The shortest attribute filter that picks out ``obj`` alone (random among the shortest)."""
    for n_attr in (1, 2, 3, 4):
        for _ in range(6):
            filt = _random_filter(rng, n_attr, like=obj)
            if _select(objects, filt) == [obj]:
                return filt
    return None


def _related(objects, anchor, relation):
    axis, sign = RELATIONS[relation]
    key = (lambda o: o.x) if axis == 0 else (lambda o: o.y)
    return [o for o in objects if o is not anchor and sign * (key(o) - key(anchor)) > 1.0]


def _yes_no(b: bool) -> str:
    return "yes" if b else "no"


def ask(rng: np.random.Generator, objects: list[SceneObject], family: str) -> Question | None:
    """One question of ``family`` about the scene, or None when this draw was ill-posed."""
    if family == "existence":
        if rng.random() < 0.5:
            filt = _random_filter(rng, int(rng.integers(1, 3)), like=objects[rng.integers(len(objects))])
        else:
            filt = _random_filter(rng, int(rng.integers(2, 4)))
        return Question(f"is there a {_phrase(filt)}?", _yes_no(bool(_select(objects, filt))), family)
    if family == "counting":
        filt = _random_filter(rng, int(rng.integers(0, 3)))
        noun = _phrase(filt) if filt else "thing"
        plural = {"thing": "things", "circle": "circles", "square": "squares", "triangle": "triangles"}
        last = noun.split()[-1]
        noun = " ".join(noun.split()[:-1] + [plural[last]])
        return Question(f"how many {noun} are there?", str(min(len(_select(objects, filt)), MAX_COUNT)), family)
    if family == "attribute":
        obj = objects[rng.integers(len(objects))]
        filt = _unique_filter(rng, objects, obj)
        if filt is None:
            return None
        asked = [a for a in ATTRIBUTES if a not in filt]
        if not asked:
            return None
        a = str(rng.choice(asked))
        return Question(f"what {a} is the {_phrase(filt)}?", obj.attr(a), family)
    if family == "comparison":
        if rng.random() < 0.5:  # count comparison
            fa, fb = _random_filter(rng, 1), _random_filter(rng, 1)
            if fa == fb:
                return None
            na, nb = len(_select(objects, fa)), len(_select(objects, fb))
            word = str(rng.choice(("more", "fewer")))
            truth = na > nb if word == "more" else na < nb
            return Question(f"are there {word} {_plural(fa)} than {_plural(fb)}?", _yes_no(truth), family)
        if len(objects) < 2:
            return None
        i, j = rng.choice(len(objects), size=2, replace=False)
        a, b = objects[i], objects[j]
        fa, fb = _unique_filter(rng, objects, a), _unique_filter(rng, objects, b)
        if fa is None or fb is None:
            return None
        attr = str(rng.choice(ATTRIBUTES))
        return Question(f"is the {_phrase(fa)} the same {attr} as the {_phrase(fb)}?",
                        _yes_no(a.attr(attr) == b.attr(attr)), family)
    if family == "spatial":
        anchor = objects[rng.integers(len(objects))]
        fa = _unique_filter(rng, objects, anchor)
        if fa is None:
            return None
        relation = str(rng.choice(tuple(RELATIONS)))
        related = _related(objects, anchor, relation)
        kind = rng.random()
        if kind < 0.4:
            return Question(f"how many things are {relation} the {_phrase(fa)}?",
                            str(min(len(related), MAX_COUNT)), family)
        if kind < 0.7:
            filt = _random_filter(rng, 1, like=objects[rng.integers(len(objects))])
            return Question(f"is there a {_phrase(filt)} {relation} the {_phrase(fa)}?",
                            _yes_no(bool(_select(related, filt))), family)
        if len(related) != 1:
            return None
        a = str(rng.choice(ATTRIBUTES))
        return Question(f"what {a} is the thing {relation} the {_phrase(fa)}?", related[0].attr(a), family)
    if family == "multi-hop":
        anchor = objects[rng.integers(len(objects))]
        fa = _unique_filter(rng, objects, anchor)
        if fa is None:
            return None
        same = str(rng.choice(ATTRIBUTES))
        others = [o for o in objects if o is not anchor and o.attr(same) == anchor.attr(same)]
        if rng.random() < 0.5:
            return Question(f"how many other things have the same {same} as the {_phrase(fa)}?",
                            str(min(len(others), MAX_COUNT)), family)
        if len(others) != 1:
            return None
        asked = str(rng.choice([a for a in ATTRIBUTES if a != same]))
        return Question(f"what {asked} is the other thing with the same {same} as the {_phrase(fa)}?",
                        others[0].attr(asked), family)
    raise ValueError(f"unknown question family {family}")


def _plural(filt: dict[str, str]) -> str:
    p = _phrase(filt)
    last = p.split()[-1]
    return " ".join(p.split()[:-1] + [last + "s"])


def questions_for(rng, objects, n: int) -> list[Question]:
    """``n`` questions, families in rotation so each scene covers them evenly; duplicates are skipped."""
    out: list[Question] = []
    seen: set[str] = set()
    slot = 0
    while len(out) < n and slot < n * 3:
        family = FAMILIES[slot % len(FAMILIES)]
        slot += 1
        for _ in range(20):  # a few draws per family; some scenes cannot pose some questions
            q = ask(rng, objects, family)
            if q is not None and q.text not in seen:
                seen.add(q.text)
                out.append(q)
                break
    return out


# -- vocabulary -------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def build_vocab() -> list[str]:
    """Every word the generator can emit (fixed, so shipped weights never depend on a data run)."""
    words = {_PAD, _UNK}
    words.update("is there a how many are what the same as other things thing have with than more fewer".split())
    words.update("circles squares triangles".split())
    for vals in ATTR_VALUES.values():
        words.update(vals)
    words.update(ATTRIBUTES)
    for rel in RELATIONS:
        words.update(rel.split())
    return [_PAD, _UNK] + sorted(words - {_PAD, _UNK})


VOCAB = build_vocab()
_INDEX = {w: i for i, w in enumerate(VOCAB)}


def encode_question(text: str) -> tuple[np.ndarray, list[str]]:
    """Token ids (length MAX_TOKENS, 0-padded) and the words not in the vocabulary."""
    toks = tokenize(text)
    unknown = [t for t in toks if t not in _INDEX]
    ids = [_INDEX.get(t, 1) for t in toks][:MAX_TOKENS]
    arr = np.zeros(MAX_TOKENS, np.int64)
    arr[:len(ids)] = ids
    return arr, unknown


def question_family(text: str) -> str:
    """The family of a question written in the generator's language (keyword rules, for free text too)."""
    t = " ".join(tokenize(text))
    if "same" in t and ("other" in t):
        return "multi-hop"
    if any(r in t for r in RELATIONS):
        return "spatial"
    if t.startswith("are there more") or t.startswith("are there fewer") or " the same " in f" {t} ":
        return "comparison"
    if t.startswith("how many"):
        return "counting"
    if t.startswith("what"):
        return "attribute"
    return "existence"


# -- datasets ---------------------------------------------------------------------------------------
def scene_rng(split: str, index: int) -> np.random.Generator:
    return np.random.default_rng((SPLIT_SEEDS[split], index))


def make_example(split: str, index: int, n_questions: int = 10):
    rng = scene_rng(split, index)
    objects = make_scene(rng)
    image = render_scene(objects, rng)
    return objects, image, questions_for(rng, objects, n_questions)


def build_dataset(split: str, n_scenes: int, n_questions: int = 10) -> dict[str, np.ndarray]:
    """Arrays for training/evaluation: images (S,H,W,3) uint8, and per question its scene, tokens, answer, family."""
    images, q_scene, q_tokens, q_answer, q_family = [], [], [], [], []
    for i in range(n_scenes):
        _, image, qs = make_example(split, i, n_questions)
        images.append(image)
        for q in qs:
            q_scene.append(i)
            q_tokens.append(encode_question(q.text)[0])
            q_answer.append(ANSWERS.index(q.answer))
            q_family.append(FAMILIES.index(q.family))
    return {"images": np.stack(images), "q_scene": np.asarray(q_scene, np.int64),
            "q_tokens": np.stack(q_tokens), "q_answer": np.asarray(q_answer, np.int64),
            "q_family": np.asarray(q_family, np.int64)}


def write_scene(dest: Path, split: str, index: int, n_questions: int = 12) -> Path:
    """Write scene ``index`` as PNG plus a JSON sidecar (scene graph and questions with their answers)."""
    from PIL import Image

    objects, image, qs = make_example(split, index, n_questions)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    png = dest / f"scene-{split}-{index:04d}.png"
    Image.fromarray(image).save(png)
    sidecar = {"format": "csi-workstation/vqa-scene@1", "split": split, "index": index,
               "objects": [asdict(o) for o in objects], "questions": [asdict(q) for q in qs]}
    png.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return png


def read_sidecar(image_path: Path) -> dict | None:
    """The scene graph written beside a generated scene, or None (a user's own image)."""
    side = Path(image_path).with_suffix(".json")
    if not side.exists():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == "csi-workstation/vqa-scene@1" else None


def normalize_question(text: str) -> str:
    return " ".join(tokenize(text))
