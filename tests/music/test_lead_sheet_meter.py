"""The lead sheet takes the beat tracker's meter and downbeat: chords that change on the recording's bar lines
sit on the first beat of the lead sheet's bars, in 3/4 and in 6/8 as in 4/4."""
import music21
import pytest

from engines.core.engine import EngineError
from engines.music.chords import ChordSegment, ChordTrack
from engines.music.export import export_track

LABELS = ["C:maj", "G:maj", "A:min", "F:maj", "C:maj", "G:maj"]


def bar_track(bar_s: float, downbeat: float) -> ChordTrack:
    segs = [ChordSegment(0.0, downbeat, "N")]
    segs += [ChordSegment(downbeat + i * bar_s, downbeat + (i + 1) * bar_s, lab) for i, lab in enumerate(LABELS)]
    return ChordTrack(segs, downbeat + len(LABELS) * bar_s, key="C major")


def chord_positions(path):
    score = music21.converter.parse(str(path))
    out = []
    for c in score.recurse().getElementsByClass("ChordSymbol"):
        if c.figure == "N.C.":
            continue
        out.append((c.figure, c.getContextByClass("Measure").number, float(c.offset)))
    sig = score.recurse().getElementsByClass("TimeSignature")[0].ratioString
    return sig, out


@pytest.mark.parametrize("meter,bpm", [("6/8", 80.0), ("3/4", 120.0), ("4/4", 100.0)])
def test_chords_on_the_recordings_bar_lines_land_on_beat_one(tmp_path, meter, bpm):
    beats_per_bar = {"6/8": 2, "3/4": 3, "4/4": 4}[meter]
    bar_s = beats_per_bar * 60.0 / bpm
    downbeat = 0.37 + bar_s  # a pickup bar, then the recording's first downbeat
    out = export_track(bar_track(bar_s, downbeat), tmp_path / "sheet.musicxml", tempo_bpm=bpm,
                       first_beat_s=downbeat, meter=meter)
    sig, chords = chord_positions(out)
    assert sig == meter
    assert [c[0] for c in chords] == ["C", "G", "Am", "F", "C", "G"]
    assert all(offset == 0.0 for _, _, offset in chords), chords  # each change on the bar's first beat
    measures = [m for _, m, _ in chords]
    assert measures == list(range(measures[0], measures[0] + len(LABELS)))  # one chord per bar


def test_a_compound_tempo_mark_counts_dotted_quarters(tmp_path):
    out = export_track(bar_track(1.5, 0.0), tmp_path / "sheet.musicxml", tempo_bpm=80.0, meter="6/8")
    mark = music21.converter.parse(str(out)).recurse().getElementsByClass("MetronomeMark")[0]
    assert round(mark.number) == 80 and mark.referent.quarterLength == 1.5


def test_an_unknown_meter_is_refused_plainly(tmp_path):
    with pytest.raises(EngineError, match="7/8"):
        export_track(bar_track(2.0, 0.0), tmp_path / "sheet.musicxml", tempo_bpm=120.0, meter="7/8")
