"""Bundled music samples (see engines/core/samples.py for the contract)."""
from __future__ import annotations

import shutil
from pathlib import Path

from engines.core.engine import EngineError
from engines.core.paths import resources_dir

SAMPLES = {
    "chorale-audio": "engines.music.samples:make_chorale_audio",
    "real-song": "engines.music.samples:make_real_song",
}
CHORALE = "bwv153.1-piano"


def make_chorale_audio(dest: Path) -> Path:
    """BWV 153.1 rendered with FluidSynth (piano, 76 bpm; a held-out chorale) plus its reference .lab.

    Made by scripts/music/make_sample.py; shipped so that nothing renders at run or test time.
    """
    src = resources_dir() / "samples" / "music"
    ogg, lab = src / f"{CHORALE}.ogg", src / f"{CHORALE}.lab"
    if not ogg.exists():
        raise EngineError(f"the bundled chorale is missing ({ogg}); reinstall the workstation")
    shutil.copyfile(ogg, dest / ogg.name)
    if lab.exists():
        shutil.copyfile(lab, dest / f"{CHORALE}.reference.lab")
    return dest / ogg.name


REAL_SONG = "sectoid-feelings-excerpt"


def make_real_song(dest: Path) -> Path:
    """40 s of "Feelings" by Sectoid (Frets on Fire song pack, Debian fretsonfire-songs-sectoid, MIT-style
    licence, shipped beside it): a produced rock recording with drums, bass and guitars, no chord labels.
    One of the real tracks held out of chord training."""
    src = resources_dir() / "samples" / "music"
    ogg, lic = src / f"{REAL_SONG}.ogg", src / f"{REAL_SONG}.LICENSE.txt"
    if not ogg.exists():
        raise EngineError(f"the bundled song is missing ({ogg}); reinstall the workstation")
    shutil.copyfile(ogg, dest / ogg.name)
    if lic.exists():
        shutil.copyfile(lic, dest / lic.name)
    return dest / ogg.name
