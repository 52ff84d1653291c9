"""Bundled music samples (see engines/core/samples.py for the contract)."""
from __future__ import annotations

import shutil
from pathlib import Path

from engines.core.engine import EngineError
from engines.core.paths import resources_dir

SAMPLES = {
    "chorale-audio": "engines.music.samples:make_chorale_audio",
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
