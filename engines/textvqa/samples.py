"""Bundled textvqa samples, generated deterministically on first use."""
from __future__ import annotations

from pathlib import Path

SAMPLES = {
    "vqa-scene": "engines.textvqa.samples:make_vqa_scene",
    "g2p-words": "engines.textvqa.samples:make_g2p_words",
}

G2P_SAMPLE_TEXT = """knight read colonel
thoroughly pneumonia Worcestershire
the workstation reads Bach chorales and radiology reports
"""


def make_vqa_scene(dest: Path) -> Path:
    """A generated scene (its own seed, in no training split) with its scene graph and 12 questions beside it."""
    from engines.textvqa.scenes import write_scene

    for i in range(1, 4):  # a few more scenes, so the question history can move between images
        write_scene(dest, "sample", i)
    return write_scene(dest, "sample", 0)


def make_g2p_words(dest: Path) -> Path:
    target = Path(dest) / "words.txt"
    target.write_text(G2P_SAMPLE_TEXT, encoding="utf-8")
    return target
