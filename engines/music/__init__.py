"""Music engines (filled in by the music workspace work)."""

ENGINES: list = []
