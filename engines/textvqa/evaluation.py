"""The VQA and G2P engines' evaluation and calibration through the path users run (``engine.predict``),
shared by scripts/textvqa/eval_textvqa.py, the training scripts and the tests, so the model cards measure
what users get.

- VQA: every question of the first N scenes of a split, asked of ``engine.predict`` with the scene picture
  (the same reading, scene check, tokenising and ensemble as in the window). Calibration: the temperature of
  the ensemble's log mean probability, fitted on the validation split; the OOD reference is the members'
  mean energy per question on that split.
- G2P: words of a split through ``engine.predict`` (NSGD or left-to-right), scored with g2p_data.score.
  Calibration: each fill step's logits at the chosen position against the closest dictionary pronunciation's
  symbol at that position, on dev words; the OOD reference is the per-word energy on those words.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from engines.textvqa import g2p_data as G
from engines.textvqa import scenes as S


# -- VQA ------------------------------------------------------------------------------------------------
def vqa_questions(split: str, n_scenes: int, n_questions: int = 10) -> Iterator[tuple[np.ndarray, Any]]:
    """(scene picture, question) for every question of the split's first ``n_scenes`` scenes."""
    for i in range(n_scenes):
        _, image, questions = S.make_example(split, i, n_questions)
        for q in questions:
            yield image, q


def run_vqa(engine, split: str, n_scenes: int) -> dict[str, np.ndarray]:
    """Ask every question through ``engine.predict``: answers, truths, families, the uncalibrated log mean
    probabilities (N x A) and the energies (N)."""
    pred, truth, family, log_mean, energy = [], [], [], [], []
    for image, q in vqa_questions(split, n_scenes):
        r = engine.predict({"image": image, "question": q.text, "keep_logits": True})
        z = np.asarray(r["member_logits"], np.float64)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        log_mean.append(np.log(np.clip(p.mean(0), 1e-12, None)))
        pred.append(S.ANSWERS.index(r["answer"]))
        truth.append(S.ANSWERS.index(q.answer))
        family.append(S.FAMILIES.index(r["family"]))
        energy.append(r.scores["ood"]["score"])
    return {"pred": np.asarray(pred), "truth": np.asarray(truth), "family": np.asarray(family),
            "log_mean": np.asarray(log_mean), "energy": np.asarray(energy)}


def vqa_metrics(run: dict[str, np.ndarray], prefix: str = "test") -> dict[str, Any]:
    ok = run["pred"] == run["truth"]
    out = {f"{prefix}_top1": round(float(ok.mean() * 100), 3), f"{prefix}_questions": int(len(ok))}
    out[f"{prefix}_family_top1"] = {f: round(float(ok[run["family"] == i].mean() * 100), 3)
                                    for i, f in enumerate(S.FAMILIES) if (run["family"] == i).any()}
    return out


def calibrate_vqa(engine, n_scenes: int = 200) -> dict[str, Any]:
    from engines.core.calibration import calibrate

    engine.card.calibration = {}
    run = run_vqa(engine, "val", n_scenes)
    cal = calibrate(run["log_mean"], run["truth"], ood_scores=run["energy"])
    cal["data"] = (f"validation split, first {n_scenes} scenes ({len(run['truth'])} questions), through "
                   f"engine.predict; temperature on the log of the ensemble's mean probability, OOD reference: "
                   f"the members' mean energy per question")
    return cal


# -- G2P ------------------------------------------------------------------------------------------------
def run_g2p(engine, words: list[str], order: str = "nsgd", chunk: int = 500,
            keep_logits: bool = False) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(words), chunk):
        r = engine.predict({"words": words[i:i + chunk], "order": order, "alternatives": 0, "compare": False,
                            "keep_logits": keep_logits})
        out.extend(r["words"])
    return out


def g2p_metrics(engine, words: list[str], order: str = "nsgd") -> dict[str, float]:
    d = G.load_dictionary()
    preds = {w["word"]: w["phonemes"] for w in run_g2p(engine, words, order)}
    return G.score(preds, {w: d[w] for w in words})


def _step_labels(entry: dict[str, Any], prons: list) -> tuple[np.ndarray, np.ndarray]:
    """The placed steps' logits and, as labels, the symbol at each step's position of the dictionary
    pronunciation that agrees with the most placed symbols."""
    fill = entry["fill_order"]
    n = len(entry["phonemes"]) + 1  # the phonemes and the first end mark
    steps = [s for s in range(G.MAX_LEN) if fill[s]["position"] <= n]
    pos = np.array([fill[s]["position"] - 1 for s in steps])
    chosen = np.array([G.CANVAS_SYMBOLS.index(fill[s]["symbol"]) - 1 for s in steps])
    best = max((G.encode_pron(p) - 1 for p in prons), key=lambda t: int((t[pos] == chosen).sum()))
    return np.asarray(entry["step_logits"])[steps], best[pos]


def calibrate_g2p(engine, n_words: int = 1000) -> dict[str, Any]:
    from engines.core.calibration import calibrate

    engine.card.calibration = {}
    d = G.load_dictionary()
    words = G.split_words()["dev"][:n_words]
    entries = run_g2p(engine, words, keep_logits=True)
    logits, labels = zip(*(_step_labels(e, d[e["word"]]) for e in entries))
    cal = calibrate(np.concatenate(logits), np.concatenate(labels),
                    ood_scores=np.asarray([e["energy"] for e in entries]))
    cal["data"] = (f"dev split, first {n_words} words, NSGD through engine.predict: each fill step's logits at "
                   f"its position against the closest dictionary pronunciation ({len(np.concatenate(labels))} "
                   f"steps); OOD reference: the per-word mean step energy")
    return cal



def with_network(engine, model, card, device: str = "cpu"):
    """``engine`` running ``model`` (a network being trained) instead of its shipped weights, so a training
    script's figures come from the engine's own path."""
    return engine.attach_network(model, card, device)
