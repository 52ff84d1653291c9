"""Music lab engines: melody harmonization (BLSTM), melody generation over chords (CVAE), cover identification.

Light at import: no torch, no music21, no librosa (they load inside the engines' methods)."""
from engines.core.domains import DomainManifest
from engines.music_lab.cover_embed import CoverEmbeddingEngine
from engines.music_lab.covers import CoverIdEngine
from engines.music_lab.generator import MelodyGeneratorEngine
from engines.music_lab.harmonizer import MelodyHarmonizerEngine

ENGINES: list = [MelodyHarmonizerEngine, MelodyGeneratorEngine, CoverIdEngine, CoverEmbeddingEngine]

# What this domain gives the core (samples, `inspect` describers, readers), found through the
# csi_workstation.domains entry point; each reference is imported only when it is used.
DOMAIN = DomainManifest(id="music_lab", samples="engines.music_lab.samples:SAMPLES")
