"""Make the tiny bundled samples of the music lab (resources/samples/music_lab/).

    .venv/bin/python scripts/music_lab/make_samples.py
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from music21 import corpus

    from engines.music_lab.melody import Note, write_midi

    out = ROOT / "resources/samples/music_lab"
    out.mkdir(parents=True, exist_ok=True)
    score = corpus.parse("bach/bwv153.1")
    sop = score.parts[0]
    measures = list(sop.getElementsByClass("Measure"))
    pickup = 4.0 - float(measures[0].duration.quarterLength) if measures[0].duration.quarterLength < 4 else 0.0
    notes = [Note(float(n.getOffsetInHierarchy(sop)) + pickup, float(n.quarterLength), int(n.pitch.midi))
             for n in sop.stripTies().flatten().notes]
    write_midi(out / "bwv153.1-soprano.mid", notes, [], 4.0, 80.0)
    (out / "progression.txt").write_text("C Am F G C F G C\n", encoding="utf-8")
    print("wrote", sorted(p.name for p in out.iterdir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
