"""g2p_en's bundled checkpoint as a peer on our CMUdict test words (PER/WER, stress stripped).

    .venv/bin/python benchmarks/textvqa/g2p_en_peer.py [--npz PATH/checkpoint20.npz] [--words 2000]

`import g2p_en` tries nltk.download() for its tagger and cmudict at import time, which fails offline, so this
script does not import the package: it reads the bundled `checkpoint20.npz` (found through importlib without
executing the package, or given with --npz) and runs the same numpy GRU encoder-decoder as g2p_en's
`G2p.predict` (Apache-2.0, Kyubyong Park and Jongseok Kim). Only the neural network is measured, not its
dictionary lookup. Caveat: g2p_en was trained on CMUdict with its own split, so many of our test words were
probably in its training data; its numbers are optimistic.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.textvqa import g2p_data as G  # noqa: E402

GRAPHEMES = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
PHONEMES = ["<pad>", "<unk>", "<s>", "</s>"] + (
    "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 EH1 EH2 ER0 ER1 ER2 EY0 "
    "EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW UW0 "
    "UW1 UW2 V W Y Z ZH").split()


def find_npz() -> Path | None:
    spec = importlib.util.find_spec("g2p_en")  # locates the package without running its __init__
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "checkpoint20.npz"
        return p if p.exists() else None
    return None


class G2pEnNet:
    def __init__(self, npz: Path) -> None:
        v = np.load(npz)
        self.v = {k: v[k] for k in v.files}

    @staticmethod
    def _cell(x, h, w_ih, w_hh, b_ih, b_hh):
        a, b = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        n2 = a.shape[-1] * 2 // 3
        rz = 1 / (1 + np.exp(-(a[:, :n2] + b[:, :n2])))
        r, z = np.split(rz, 2, -1)
        n = np.tanh(a[:, n2:] + r * b[:, n2:])
        return (1 - z) * n + z * h

    def predict(self, word: str) -> list[str]:
        v = self.v
        ids = [GRAPHEMES.index(c) if c in GRAPHEMES else 1 for c in word] + [2]
        x = v["enc_emb"][ids][None]
        h = np.zeros((1, v["enc_w_hh"].shape[1]), np.float32)
        for t in range(len(ids)):
            h = self._cell(x[:, t], h, v["enc_w_ih"], v["enc_w_hh"], v["enc_b_ih"], v["enc_b_hh"])
        dec = v["dec_emb"][[2]]
        out = []
        for _ in range(20):
            h = self._cell(dec, h, v["dec_w_ih"], v["dec_w_hh"], v["dec_b_ih"], v["dec_b_hh"])
            pred = int((h @ v["fc_w"].T + v["fc_b"]).argmax())
            if pred == 3:
                break
            out.append(pred)
            dec = v["dec_emb"][[pred]]
        return [re.sub(r"\d", "", PHONEMES[i]) for i in out]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--npz", type=Path, default=None)
    p.add_argument("--words", type=int, default=2000)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "textvqa" / "results" / "g2p_en-peer.json")
    args = p.parse_args()
    npz = args.npz or find_npz()
    if npz is None:
        print("g2p_en's checkpoint20.npz not found: pip download g2p_en --no-deps, unzip, pass --npz")
        return 1
    net = G2pEnNet(npz)
    d = G.load_dictionary()
    words = [w for w in G.split_words()["test"][:args.words] if "'" not in w]
    t0 = time.time()
    preds = {w: net.predict(w) for w in words}
    s = G.score(preds, {w: d[w] for w in words})
    s["seconds"] = time.time() - t0
    s["note"] = ("g2p_en peer: `pip install g2p_en` installs, but `import g2p_en` calls nltk.download() for its "
                 "tagger and cmudict, which fails offline; its bundled checkpoint20.npz was run with a numpy port of "
                 "its GRU decoder (benchmarks/textvqa/g2p_en_peer.py), neural network only, stress stripped, "
                 f"on the same first {args.words} test words ({len(words)} after dropping words with an apostrophe, "
                 "which its alphabet lacks). It was trained on CMUdict with its own split, so many of these words "
                 "were likely in its training data: an optimistic peer.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(s, indent=1) + "\n")
    print(json.dumps(s, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
