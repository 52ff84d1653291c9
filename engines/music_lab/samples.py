"""Bundled music-lab samples (see engines/core/samples.py): tiny files made by scripts/music_lab/make_samples.py."""
from __future__ import annotations

import shutil
from pathlib import Path

from engines.core.engine import EngineError
from engines.core.paths import resources_dir

SAMPLES = {
    "music_lab-melody": "engines.music_lab.samples:make_melody",
    "music_lab-progression": "engines.music_lab.samples:make_progression",
    "music_lab-cover-clips": "engines.music_lab.samples:make_cover_clips",
}


def _copy(name: str, dest: Path) -> Path:
    src = resources_dir() / "samples" / "music_lab" / name
    if not src.exists():
        raise EngineError(f"the bundled sample {name} is missing ({src}); reinstall the workstation")
    shutil.copyfile(src, dest / name)
    return dest / name


def make_melody(dest: Path) -> Path:
    """The soprano of BWV 153.1 (a held-out chorale, never trained on) as a one-track MIDI file."""
    return _copy("bwv153.1-soprano.mid", dest)


def make_progression(dest: Path) -> Path:
    """An eight-bar chord progression as text (one chord per bar)."""
    return _copy("progression.txt", dest)


def make_cover_clips(dest: Path) -> Path:
    """Three 15-s FluidSynth renderings of held-out chorales: BWV 423 twice (different GM instrument, tempo
    and key) and BWV 47.5 once. Made by scripts/music_lab/render_cover_versions.py."""
    src = resources_dir() / "samples" / "music_lab" / "covers"
    clips = sorted(src.glob("*.ogg"))
    if len(clips) < 3:
        raise EngineError(f"the bundled cover clips are missing ({src}); reinstall the workstation")
    folder = dest / "covers"
    folder.mkdir()
    for c in clips:
        shutil.copyfile(c, folder / c.name)
    return folder
