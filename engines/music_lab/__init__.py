"""Music lab engines: melody harmonization (BLSTM), melody generation over chords (CVAE), cover identification."""

ENGINES: list = []
