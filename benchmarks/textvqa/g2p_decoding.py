"""NSGD vs left-to-right decoding of the shipped canvas G2P on the whole CMUdict test split.

    .venv/bin/python benchmarks/textvqa/g2p_decoding.py [--words N]

Reports PER/WER for both orders, the same on the words g2p_en can read (no apostrophe), and the paired
word-level comparison (words only one order gets right), so a small PER gap can be judged.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--words", type=int, default=0, help="first N test words (0: all)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "textvqa" / "results" / "g2p-decoding.json")
    args = p.parse_args()
    import torch

    from engines.textvqa import g2p_data as G
    from engines.textvqa.g2p_engine import G2pNsgdEngine

    torch.set_num_threads(1)
    engine = G2pNsgdEngine()
    engine.load("cpu")
    d = G.load_dictionary()
    words = G.split_words()["test"]
    if args.words:
        words = words[:args.words]
    preds = {}
    out = {"test_words": len(words)}
    for order in ("nsgd", "l2r"):
        t0 = time.time()
        preds[order] = {}
        for i in range(0, len(words), 2000):  # the engine takes at most 2000 words per call
            r = engine.predict({"words": words[i:i + 2000], "order": order, "alternatives": 0, "compare": False})
            preds[order].update({w["word"]: w["phonemes"] for w in r["words"]})
        out[order] = G.score(preds[order], {w: d[w] for w in words})
        out[order]["seconds"] = time.time() - t0
        plain = [w for w in words if "'" not in w]
        out[f"{order}_no_apostrophe"] = G.score({w: preds[order][w] for w in plain}, {w: d[w] for w in plain})
        print(order, out[order], flush=True)
    right = {o: {w for w in words if tuple(preds[o][w]) in set(d[w])} for o in preds}
    out["only_nsgd_right"] = len(right["nsgd"] - right["l2r"])
    out["only_l2r_right"] = len(right["l2r"] - right["nsgd"])
    out["differ"] = sum(preds["nsgd"][w] != preds["l2r"][w] for w in words)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
