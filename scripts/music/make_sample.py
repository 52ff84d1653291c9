"""Make the bundled music sample: a held-out Bach chorale rendered with FluidSynth, as OGG plus its .lab.

    .venv/bin/python scripts/music/make_sample.py

BWV 153.1 ("Schau, lieber Gott, wie meine Feind"): its BWV number ends in 3, so it is in the held-out split
and no model was trained on it. Piano (GM 0) at 76 bpm, untransposed. The .lab comes from music21's
chordify of the score (engines/music/chorales.py), so it is a reference, not a model output.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.core.atomic import atomic_path  # noqa: E402
from engines.music.chorales import is_held_out, render_chorale  # noqa: E402
from engines.music.chords import ChordTrack  # noqa: E402

NAME, BPM, PROGRAM = "bach/bwv153.1", 76.0, 0
OUT = Path(__file__).resolve().parents[2] / "resources" / "samples" / "music"


def main() -> int:
    import soundfile as sf

    assert is_held_out(NAME)
    r = render_chorale(NAME, bpm=BPM, program=PROGRAM, transpose=0)
    OUT.mkdir(parents=True, exist_ok=True)
    ogg = OUT / "bwv153.1-piano.ogg"
    with atomic_path(ogg) as tmp:
        sf.write(str(tmp), r.samples * 0.9, r.sr, format="OGG", subtype="VORBIS")
    ChordTrack(r.segments, len(r.samples) / r.sr).write_lab(OUT / "bwv153.1-piano.lab", transposed=False)
    print(f"wrote {ogg} ({ogg.stat().st_size} bytes, {len(r.samples) / r.sr:.1f} s) and its .lab")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
