"""Confidence a user can act on: temperature scaling, reliability diagrams and an out-of-distribution score.

- ``fit_temperature(logits, labels)``: the one scalar T that minimises the negative log-likelihood of
  ``softmax(logits / T)`` on a validation split (Guo et al. 2017). Dividing by T keeps the argmax, so
  accuracy and masks do not change; only the scores become honest.
- ``reliability(confidence, correct)``: the bins of a reliability diagram and the expected calibration error.
- ``energy_score(logits, T)``: ``-T·logsumexp(logits/T)`` (Liu et al. 2020): high (less negative) for inputs
  the network has not seen the like of. The training scripts store its percentiles on the validation split in
  the model card (``calibration["ood"]``); ``ood_check`` compares an input's score with them.

Model cards keep all of it under ``card.calibration``::

    {"temperature": 1.7, "ece_before": 0.08, "ece_after": 0.02, "bins": [...],
     "ood": {"name": "energy", "p50": -9.1, "p95": -6.0, "p99": -4.8}}
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from engines.core.checks import Check


#: a reference from fewer validation inputs than this gets a margin (see ood_check)
SMALL_REFERENCE = 30


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / float(temperature)))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    lp = _log_softmax(np.asarray(logits, dtype=np.float64) / float(temperature))
    return float(-lp[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the NLL of ``labels`` under ``softmax(logits / T)`` (logits: N x C)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError("fit_temperature needs N x C logits and N labels")
    res = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                          bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(res.x))


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability-diagram bins (equal width over [0, 1]) and the expected calibration error (ECE)."""
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    bins, ece, n = [], 0.0, max(1, len(confidence))
    for b in range(n_bins):
        sel = which == b
        count = int(sel.sum())
        if count:
            conf, acc = float(confidence[sel].mean()), float(correct[sel].mean())
            ece += count / n * abs(conf - acc)
            bins.append({"lo": round(float(edges[b]), 3), "hi": round(float(edges[b + 1]), 3), "count": count,
                         "confidence": round(conf, 4), "accuracy": round(acc, 4)})
    return {"ece": round(float(ece), 4), "bins": bins}


def energy_score(logits: np.ndarray, temperature: float = 1.0, axis: int = 1) -> np.ndarray:
    """-T·logsumexp(logits/T) along ``axis`` (the class axis): higher means less like the training data."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    m = z.max(axis=axis, keepdims=True)
    lse = np.squeeze(m, axis=axis) + np.log(np.exp(z - m).sum(axis=axis))
    return -float(temperature) * lse


def ood_reference(scores: np.ndarray, name: str = "energy") -> dict[str, Any]:
    """Percentiles of an OOD score on in-distribution (validation) inputs, for the model card."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    return {"name": name, "p50": round(float(np.percentile(s, 50)), 4),
            "p95": round(float(np.percentile(s, 95)), 4), "p99": round(float(np.percentile(s, 99)), 4)}


def calibrate(logits: np.ndarray, labels: np.ndarray, *, ood_scores: np.ndarray | None = None,
              n_bins: int = 10) -> dict[str, Any]:
    """Everything a card's ``calibration`` holds, from validation logits (N x C) and labels (N)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    before = softmax(logits)
    t = fit_temperature(logits, labels)
    after = softmax(logits, t)
    pred = before.argmax(1)
    correct = pred == labels
    rel_before = reliability(before.max(1), correct, n_bins)
    rel_after = reliability(after.max(1), correct, n_bins)
    out = {"temperature": round(t, 4), "ece_before": rel_before["ece"], "ece_after": rel_after["ece"],
           "nll_before": round(nll(logits, labels), 4), "nll_after": round(nll(logits, labels, t), 4),
           "n": int(len(labels)), "bins": rel_after["bins"], "bins_before": rel_before["bins"]}
    scores = energy_score(logits, t) if ood_scores is None else np.asarray(ood_scores)
    out["ood"] = ood_reference(scores)
    return out


def temperature_of(card: Any) -> float:
    """The card's fitted temperature, 1.0 when it has none (an uncalibrated model)."""
    cal = getattr(card, "calibration", None) or {}
    try:
        t = float(cal.get("temperature", 1.0))
    except (TypeError, ValueError):
        return 1.0
    return t if np.isfinite(t) and t > 0 else 1.0


def ood_check(score: float, card: Any, *, what: str = "the input") -> Check | None:
    """A check comparing an input's OOD score with the card's validation percentiles (None without them)."""
    ref: Mapping[str, Any] = (getattr(card, "calibration", None) or {}).get("ood") or {}
    if "p99" not in ref or not np.isfinite(score):
        return None
    p95, p99 = float(ref.get("p95", ref["p99"])), float(ref["p99"])
    name = str(ref.get("name", "energy"))
    n = int(ref.get("n_volumes", ref.get("n", SMALL_REFERENCE)) or 0)
    limit = p99
    if n < SMALL_REFERENCE:
        # with few validation inputs the 99th percentile is their maximum, itself a noisy draw: allow one more
        # p50 -> p99 spread before calling an input unlike the training data
        limit = p99 + max(0.0, p99 - float(ref.get("p50", p99)))
    if score > limit:
        return Check("out-of-distribution", "warned",
                     f"{what} looks unlike the model's training data ({name} score {score:.2f} is above the "
                     f"99th percentile of its validation inputs, {p99:.2f}"
                     f"{'' if limit == p99 else f', by more than their spread (limit {limit:.2f})'}): treat the "
                     f"result with caution")
    if score > p95:
        return Check("out-of-distribution", "passed",
                     f"{name} score {score:.2f}: within the model's range but above its 95th percentile ({p95:.2f})")
    return Check("out-of-distribution", "passed", f"{name} score {score:.2f} (validation 99th percentile {p99:.2f})")
