"""Music lab engines: melody harmonization (BLSTM), melody generation over chords (CVAE), cover identification.

Light at import: no torch, no music21, no librosa (they load inside the engines' methods)."""
from engines.music_lab.cover_embed import CoverEmbeddingEngine
from engines.music_lab.covers import CoverIdEngine
from engines.music_lab.generator import MelodyGeneratorEngine
from engines.music_lab.harmonizer import MelodyHarmonizerEngine

ENGINES: list = [MelodyHarmonizerEngine, MelodyGeneratorEngine, CoverIdEngine, CoverEmbeddingEngine]
