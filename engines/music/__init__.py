"""Music engines: chord recognition (BTC and a classical template baseline). Light at import: no torch."""
from engines.music.recognize import BTCChordEngine, BTCLargeChordEngine, TemplateChordEngine

ENGINES: list = [BTCChordEngine, BTCLargeChordEngine, TemplateChordEngine]
