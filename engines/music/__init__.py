"""Music engines: chord recognition (BTC and a classical template baseline). Light at import: no torch."""
from engines.core.domains import DomainManifest
from engines.music.recognize import BTCChordEngine, BTCLargeChordEngine, TemplateChordEngine

ENGINES: list = [BTCChordEngine, BTCLargeChordEngine, TemplateChordEngine]

# What this domain gives the core (samples, `inspect` describers, readers), found through the
# csi_workstation.domains entry point; each reference is imported only when it is used.
DOMAIN = DomainManifest(
    id="music",
    samples="engines.music.samples:SAMPLES",
    readers={"audio": "engines.music.audio:load_audio", "midi": "engines.music.audio:load_audio",
             "score": "engines.music.audio:load_audio"},
)
