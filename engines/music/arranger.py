"""Songs with exact labels: an arranger that writes multi-part MIDI from a model of real harmony.

``arrange(seed)`` is deterministic by seed. It picks a style (pop, rock, folk, jazz, blues, ballad), a metre
(4/4, 3/4, 6/8, swung 4/4), a tempo (60-180 beats per minute), a key and a song form (intro, verses,
choruses, a bridge, an outro), draws each section's progression from the style's common progressions in
Roman numerals, and decorates it the way songwriters do: sevenths, secondary dominants, borrowed chords
(iv, bVI, bVII in major), suspensions that resolve, passing diminished chords, augmented dominants,
inversions (a slash bass), and modulations (the last chorus up a step, a bridge in the subdominant).

Parts: GM drums with a pattern per style and metre (fills at section ends, a crash on each new section),
a bass (roots, root-fifth or a walking line with chromatic approaches), a comping instrument (piano,
guitars, organ, strings; block, strummed or arpeggiated, voice-led), a pad, and a lead line made of chord
tones on strong beats and scale tones between them, standing in for a voice.

The labels are exact by construction because they are what the parts play: chords with sevenths and slash
basses (MIREX syntax), the key of every section, every beat and downbeat. No Qt, no torch; the MIDI is a
``pretty_midi.PrettyMIDI`` (rendering is the caller's business: scripts/music/render_arranged.py).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from engines.music.chords import PITCH_NAMES, QUALITY_INTERVALS, Chord, ChordSegment

STYLES = ("pop", "rock", "folk", "jazz", "blues", "ballad")
METERS = {"4/4": (4, 1.0), "3/4": (3, 1.0), "6/8": (2, 1.5)}  # beats per bar, quarter notes per beat

# -- harmony ---------------------------------------------------------------------------------------------
_DEGREE = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
_ROMAN = re.compile(r"^(?P<acc>[b#]?)(?P<num>VII|VI|IV|V|III|II|I|vii|vi|iv|v|iii|ii|i)"
                    r"(?P<kind>o7|o|h7|\+|maj7|7|6|sus4|sus2)?(?:/(?P<of>[b#]?(?:VII|VI|IV|V|III|II|I|vii|vi|iv|"
                    r"v|iii|ii|i)))?(?:_(?P<inv>3|5|b7|7))?$")

#: common progressions per style (one Roman numeral per slot; a slot is a bar unless the style splits bars)
PROGRESSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "pop": {
        "major": ("I V vi IV", "vi IV I V", "I vi IV V", "I IV vi V", "IV I V vi", "I V_3 vi IV", "I iii IV V",
                  "I IV I V", "vi V IV V", "I V vi iii IV I IV V", "IV V iii vi", "I bVII IV I", "ii IV I V"),
        "minor": ("i bVI bIII bVII", "i bVII bVI V", "i iv bVII bIII", "i bVI iv V", "i bIII bVII iv",
                  "i iv i V", "bVI bVII i i"),
    },
    "rock": {
        "major": ("I bVII IV I", "I IV V IV", "I V IV IV", "I bIII IV I", "I bVI bVII I", "IV I V V",
                  "I IV bVII IV", "I V vi IV", "vi IV I V"),
        "minor": ("i bVII bVI bVII", "i bVI bVII i", "i iv bVI V", "i bIII iv bVI", "i bVII iv i"),
    },
    "folk": {
        "major": ("I IV I V", "I IV V I", "I V IV I", "I vi ii V", "I V vi iii IV I IV V", "I IV I_3 V",
                  "I ii V I", "IV I V I", "I I IV V"),
        "minor": ("i bVII i V", "i iv V i", "i bIII bVII i", "i bVI bVII i"),
    },
    "jazz": {
        "major": ("ii7 V7 Imaj7 Imaj7", "Imaj7 vi7 ii7 V7", "iii7 V7/ii ii7 V7", "Imaj7 V7/ii ii7 V7",
                  "Imaj7 I7 IVmaj7 iv7", "ii7 V7 iii7 vi7", "Imaj7 IVmaj7 iii7 V7/ii", "I6 vi7 ii7 V7"),
        "minor": ("iih7 V7 i7 i7", "i7 iv7 bVII7 bIIImaj7", "i7 bVImaj7 iih7 V7", "i6 iv7 iih7 V7"),
    },
    "blues": {
        "major": ("I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7", "I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7",
                  "I7 IV7 I7 I7 IV7 IV7 I7 V7/ii ii7 V7 I7 V7"),
        "minor": ("i7 i7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7", "i7 iv7 i7 i7 iv7 iv7 i7 i7 V7 iv7 i7 V7"),
    },
    "ballad": {
        "major": ("I vi IV V", "I V_3 vi I_5 IV I_3 ii V", "I iii IV V", "I IV vi V", "vi IV I V",
                  "Imaj7 IVmaj7 vi7 V", "I V/vi vi IV"),
        "minor": ("i bVI bIII bVII", "i iv bVII bIII", "i V_3 i_b7 bVI", "i bVI iv V"),
    },
}
#: per style: (tempo range, metre weights {metre: weight}, swing probability, minor probability,
#: seventh-chord probability, bars per chord slot choices)
STYLE_PARAMS: dict[str, dict] = {
    "pop": {"bpm": (76, 132), "meters": {"4/4": 0.85, "6/8": 0.1, "3/4": 0.05}, "swing": 0.05, "minor": 0.3,
            "sevenths": 0.25, "split": 0.25},
    "rock": {"bpm": (96, 168), "meters": {"4/4": 0.9, "6/8": 0.05, "3/4": 0.05}, "swing": 0.05, "minor": 0.35,
             "sevenths": 0.1, "split": 0.2},
    "folk": {"bpm": (60, 140), "meters": {"4/4": 0.45, "3/4": 0.3, "6/8": 0.25}, "swing": 0.05, "minor": 0.3,
             "sevenths": 0.1, "split": 0.2},
    "jazz": {"bpm": (90, 180), "meters": {"4/4": 0.8, "3/4": 0.2}, "swing": 0.85, "minor": 0.3,
             "sevenths": 1.0, "split": 0.5},
    "blues": {"bpm": (60, 130), "meters": {"4/4": 0.8, "6/8": 0.2}, "swing": 0.7, "minor": 0.25,
              "sevenths": 1.0, "split": 0.0},
    "ballad": {"bpm": (60, 90), "meters": {"4/4": 0.5, "6/8": 0.35, "3/4": 0.15}, "swing": 0.0, "minor": 0.35,
               "sevenths": 0.35, "split": 0.3},
}


@dataclass(frozen=True)
class Harmony:
    """A chord relative to a tonic: root offset in semitones, quality, bass offset from the root (None)."""

    root: int
    quality: str
    bass: int | None = None

    def absolute(self, tonic: int) -> Chord:
        root = (tonic + self.root) % 12
        return Chord(root, self.quality, None if self.bass is None else (root + self.bass) % 12)


def _quality(num: str, kind: str | None) -> str:
    upper = num.isupper()
    if kind in (None, ""):
        return "maj" if upper else "min"
    return {"o": "dim", "o7": "dim7", "h7": "hdim7", "+": "aug", "maj7": "maj7", "sus4": "sus4", "sus2": "sus2",
            "7": "7" if upper else "min7", "6": "maj6" if upper else "min6"}[kind]


def parse_roman(token: str) -> Harmony:
    """'V7/ii' (the dominant seventh of ii), 'bVII', 'iih7', 'I_3' (first inversion), 'V+' -> Harmony."""
    m = _ROMAN.match(token)
    if not m:
        raise ValueError(f"not a Roman numeral chord: {token!r}")
    root = _DEGREE[m["num"].upper()] + {"b": -1, "#": 1, "": 0}[m["acc"]]
    quality = _quality(m["num"], m["kind"])
    if m["of"]:
        target = m["of"]
        acc = {"b": -1, "#": 1}.get(target[0], 0)
        root = root + _DEGREE[target.lstrip("b#").upper()] + acc
    bass = None
    if m["inv"]:
        intervals = QUALITY_INTERVALS[quality]
        want = {"3": (3, 4), "5": (6, 7, 8), "b7": (10, 9), "7": (11, 10)}[m["inv"]]
        bass = next((iv for iv in intervals if iv in want), want[0])  # a passing bass (C:min/b7) may be no chord tone
    return Harmony(root % 12, quality, bass)


_SEVENTH_OF = {"maj": "maj7", "min": "min7", "dim": "hdim7"}


def add_seventh(h: Harmony, style: str) -> Harmony:
    """The seventh chord a player would put on this triad in this style (V and blues chords: dominant)."""
    if h.quality == "maj":
        dominant = h.root == 7 or style == "blues" or (h.root == 10 and style == "rock")
        return Harmony(h.root, "7" if dominant else "maj7", h.bass)
    if h.quality in _SEVENTH_OF:
        return Harmony(h.root, _SEVENTH_OF[h.quality], h.bass)
    return h


@dataclass
class Slot:
    """One chord of a section: the harmony (relative to the section's tonic) and its length in beats."""

    harmony: Harmony
    beats: int


def decorate(tokens: Sequence[str], style: str, mode: str, bar_beats: int, rng: random.Random) -> list[Slot]:
    """A progression with the decorations of real songs: sevenths, secondary dominants, borrowed chords,
    suspensions, passing diminished and augmented chords, inversions; one or two chords per bar."""
    p = STYLE_PARAMS[style]
    chords = [parse_roman(t) for t in tokens]
    # borrowed chords in major: iv for IV, bVI for vi, now and then
    if mode == "major":
        for i, h in enumerate(chords):
            if h == Harmony(5, "maj") and rng.random() < 0.12:
                chords[i] = Harmony(5, "min")
            elif h == Harmony(9, "min") and rng.random() < 0.08:
                chords[i] = Harmony(8, "maj")
    if rng.random() < p["sevenths"]:
        chords = [add_seventh(h, style) if rng.random() < (0.9 if p["sevenths"] >= 1 else 0.5) else h
                  for h in chords]
    slots: list[Slot] = []
    for i, h in enumerate(chords):
        nxt = chords[(i + 1) % len(chords)]
        split = bar_beats >= 2 and bar_beats % 2 == 0 and rng.random() < p["split"]
        if split:
            half = bar_beats // 2
            second = _second_half(h, nxt, style, rng)
            slots += [Slot(h, half), Slot(second, half)]
        else:
            slots.append(Slot(h, bar_beats))
    # sus4 that resolves: the dominant's first half held as a suspension
    resolved: list[Slot] = []
    for s in slots:
        if s.harmony.root == 7 and s.harmony.quality in ("maj", "7") and s.beats >= 2 and s.beats % 2 == 0 \
                and rng.random() < 0.15:
            resolved += [Slot(Harmony(7, "sus4"), s.beats // 2), Slot(s.harmony, s.beats // 2)]
        else:
            resolved.append(s)
    slots = resolved
    # inversions: a first-inversion tonic or dominant now and then (a walking bass line)
    for s in slots:
        if s.harmony.bass is None and s.harmony.quality in ("maj", "min") and rng.random() < 0.06:
            third = 4 if s.harmony.quality == "maj" else 3
            s.harmony = Harmony(s.harmony.root, s.harmony.quality, third)
    return slots


def _second_half(h: Harmony, nxt: Harmony, style: str, rng: random.Random) -> Harmony:
    """What fills the second half of a split bar: a secondary dominant of the next chord, a passing
    diminished seventh, an augmented dominant, the same chord in another position, or a neighbour."""
    r = rng.random()
    if r < 0.35 and nxt.quality in ("maj", "min", "min7", "maj7", "7") and nxt.root != 0 or r < 0.1:
        q = "7"
        return Harmony((nxt.root + 7) % 12, q)  # V7 of the next chord
    if r < 0.45:
        return Harmony((nxt.root - 1) % 12, "dim7")  # passing diminished seventh a semitone below
    if r < 0.52 and h.root == 7 and h.quality == "maj":
        return Harmony(7, "aug")
    if r < 0.65 and h.quality in ("maj", "min"):
        third = 4 if h.quality == "maj" else 3
        return Harmony(h.root, h.quality, third if h.bass is None else None)
    if r < 0.8:
        return Harmony(2, "min7" if style == "jazz" else "min") if h.root != 2 else Harmony(7, "7")
    return h


# -- the song ---------------------------------------------------------------------------------------------
@dataclass
class Section:
    name: str
    start: float  # seconds
    end: float
    tonic: int
    mode: str


@dataclass
class ArrangedSong:
    """A generated song: its MIDI and its exact labels."""

    seed: int
    style: str
    meter: str
    swing: bool
    bpm: float  # counted beats per minute (dotted quarters in 6/8)
    tonic: int
    mode: str
    sections: list[Section]
    chords: list[ChordSegment]  # MIREX labels with sevenths and slash basses, N before and after
    beats: np.ndarray  # seconds
    downbeats: np.ndarray  # seconds
    duration: float
    midi: object = None  # pretty_midi.PrettyMIDI
    parts: dict[str, int] = field(default_factory=dict)  # part name -> GM program (drums: -1)

    @property
    def key(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    @property
    def keys(self) -> list[tuple[float, float, str]]:
        return [(s.start, s.end, f"{PITCH_NAMES[s.tonic]} {s.mode}") for s in self.sections]

    def lab_text(self) -> str:
        return "".join(f"{s.start:.6f}\t{s.end:.6f}\t{s.label}\n" for s in self.chords)

    def describe(self) -> str:
        return (f"seed {self.seed}: {self.style}, {self.meter}{' swing' if self.swing else ''}, "
                f"{self.bpm:.0f} bpm, {self.key}, {self.duration:.0f} s, "
                f"{', '.join(s.name for s in self.sections)}")


FORMS = (
    ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "verse", "verse", "chorus", "verse", "chorus", "outro"),
    ("verse", "chorus", "verse", "chorus", "chorus"),
    ("intro", "verse", "chorus", "bridge", "chorus", "outro"),
)

# GM programs per role and style
COMP_PROGRAMS = {
    "pop": (0, 4, 25, 27, 48, 1), "rock": (29, 30, 16, 18, 0, 27), "folk": (24, 25, 0, 21, 105, 46),
    "jazz": (0, 4, 26, 11, 5), "blues": (0, 16, 17, 27, 29), "ballad": (0, 48, 24, 4, 49),
}
BASS_PROGRAMS = {"pop": (33, 34, 38, 39), "rock": (34, 33, 35), "folk": (32, 33), "jazz": (32,), "blues": (33, 32),
                 "ballad": (33, 32, 35)}
PAD_PROGRAMS = (48, 49, 50, 52, 88, 89, 91, 92, 94, 19)
LEAD_PROGRAMS = {"pop": (73, 80, 54, 65, 11, 81, 52), "rock": (29, 30, 81, 56, 65), "folk": (73, 40, 22, 71, 105),
                 "jazz": (65, 66, 56, 11, 73), "blues": (22, 65, 29, 26), "ballad": (73, 40, 54, 52, 68, 71)}
GUITAR_PROGRAMS = set(range(24, 32)) | {105}
DISTORTED = {29, 30}
# GM drum notes
KICK, SIDE, SNARE, CLAP, HAT, PEDAL, OPEN_HAT, CRASH, RIDE, TAMB, SHAKER = 36, 37, 38, 39, 42, 44, 46, 49, 51, 54, 70
TOMS = (50, 47, 45, 43)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, [weights[n] for n in names])[0]


def arrange(seed: int, style: str | None = None, max_seconds: float = 120.0, meter: str | None = None,
            min_seconds: float = 20.0) -> ArrangedSong:
    """A song for ``seed`` (the same seed gives the same song). ``style``/``meter`` force a choice;
    sections are dropped from the end (and the outro kept) until the song fits in ``max_seconds``."""
    import pretty_midi

    rng = random.Random(int(seed) * 7919 + 17)
    style = style or rng.choice(STYLES)
    if style not in STYLE_PARAMS:
        raise ValueError(f"unknown style {style!r}; one of {', '.join(STYLES)}")
    p = STYLE_PARAMS[style]
    meter = meter or _pick(rng, p["meters"])
    if meter not in METERS:
        raise ValueError(f"unknown metre {meter!r}; one of {', '.join(METERS)}")
    bar_beats, quarters_per_beat = METERS[meter]
    swing = meter in ("4/4", "3/4") and rng.random() < p["swing"]
    lo, hi = p["bpm"]
    if meter == "6/8":  # counted in dotted quarters (60-100: 180-300 eighths a minute)
        lo, hi = 60, 100
    bpm = max(60, min(180, round(rng.uniform(lo, hi))))
    spb = 60.0 / bpm
    mode = "minor" if rng.random() < p["minor"] else "major"
    tonic = rng.randrange(12)
    progs = PROGRESSIONS[style][mode]
    form = list(rng.choice(FORMS))
    section_prog: dict[str, list[str]] = {}
    for name in ("verse", "chorus", "bridge"):
        section_prog[name] = rng.choice(progs).split()
    if section_prog["chorus"] == section_prog["verse"] and len(progs) > 1:
        section_prog["chorus"] = rng.choice([q for q in progs if q.split() != section_prog["verse"]]).split()
    section_slots = {name: decorate(toks, style, mode, bar_beats, rng) for name, toks in section_prog.items()}
    intro_slots = section_slots["verse"][: max(1, len(section_slots["verse"]) // 2)]
    # modulations: last chorus up one or two semitones; a bridge in the subdominant or relative key
    mod_last = rng.random() < 0.2
    bridge_key = rng.random() < 0.25
    lead_in = round(rng.uniform(0.2, 1.2), 3)

    plan: list[tuple[str, list[Slot], int, str, int]] = []  # name, slots, tonic, mode, repeats
    n_chorus = form.count("chorus")
    seen_chorus = 0
    for name in form:
        t, m = tonic, mode
        if name == "intro":
            slots, reps = intro_slots, 1
        elif name == "outro":
            slots, reps = [Slot(Harmony(0, "maj" if mode == "major" else "min"), bar_beats * 2)], 1
        else:
            slots = section_slots[name]
            reps = 2 if len(slots) <= 5 and name != "bridge" and style != "blues" else 1
            if name == "chorus":
                seen_chorus += 1
                if mod_last and seen_chorus == n_chorus and n_chorus > 1:
                    t = (tonic + rng.choice((1, 2))) % 12
            if name == "bridge" and bridge_key:
                if mode == "major":
                    t = (tonic + 5) % 12
                else:
                    t, m = (tonic + 3) % 12, "major"
        plan.append((name, slots, t, m, reps))
    # fit the length: the song runs section by section until the time is up (cut at a slot boundary),
    # then the outro ends it; an intro that would leave no room for a verse is dropped
    outro = plan[-1] if plan[-1][0] == "outro" else None
    budget_beats = (max_seconds - lead_in) / spb - (sum(s.beats for s in outro[1]) if outro else 0)
    body = plan[:-1] if outro else plan
    if body and body[0][0] == "intro" and len(body) > 1:
        intro_beats = sum(s.beats for s in body[0][1])
        if intro_beats + sum(s.beats for s in body[1][1]) > budget_beats:
            body = body[1:]
    fitted, used = [], 0
    for name, sl, t, m, reps in body:
        keep = []
        for s in list(sl) * reps:
            if used + s.beats > budget_beats and (fitted or keep):
                break
            keep.append(s)
            used += s.beats
        if keep:
            fitted.append((name, keep, t, m, 1))
        if len(keep) < len(sl) * reps:
            break
    plan = fitted + ([outro] if outro else [])

    # timeline of chords and sections
    chords: list[tuple[float, float, Chord, int]] = []  # start, end, chord, start beat index
    sections: list[Section] = []
    beat = 0
    for name, slots, t, m, reps in plan:
        s_start = lead_in + beat * spb
        for _ in range(reps):
            for s in slots:
                chords.append((lead_in + beat * spb, lead_in + (beat + s.beats) * spb, s.harmony.absolute(t), beat))
                beat += s.beats
        sections.append(Section(name, s_start, lead_in + beat * spb, t, m))
    total_beats = beat
    music_end = lead_in + total_beats * spb
    tail = 1.5
    duration = music_end + tail
    beats = lead_in + np.arange(total_beats) * spb
    downbeats = beats[::bar_beats]

    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm * quarters_per_beat)
    num, den = (6, 8) if meter == "6/8" else (bar_beats, 4)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, 0.0))
    hum = random.Random(rng.random())
    ctx = _Ctx(rng=rng, hum=hum, spb=spb, bar_beats=bar_beats, meter=meter, swing=swing, style=style,
               lead_in=lead_in, total_beats=total_beats)
    parts: dict[str, int] = {}

    # drums: sometimes tacet in the intro of a ballad or folk song
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    if not (style in ("folk", "ballad") and rng.random() < 0.25):
        _drums(ctx, drums, sections)
        pm.instruments.append(drums)
        parts["drums"] = -1
    bass_prog = rng.choice(BASS_PROGRAMS[style])
    bass = pretty_midi.Instrument(program=bass_prog, name="bass")
    _bass(ctx, bass, chords)
    pm.instruments.append(bass)
    parts["bass"] = bass_prog
    comp_prog = rng.choice(COMP_PROGRAMS[style])
    comp = pretty_midi.Instrument(program=comp_prog, name="comp")
    power = comp_prog in DISTORTED and rng.random() < 0.6
    _comp(ctx, comp, chords, comp_prog, power=power)
    pm.instruments.append(comp)
    parts["comp" + ("-power" if power else "")] = comp_prog
    if power or rng.random() < 0.45:  # a second comping part fills in the full chord under power chords
        second_prog = rng.choice([q for q in (0, 4, 16, 18, 25, 27, 48) if q != comp_prog])
        comp2 = pretty_midi.Instrument(program=second_prog, name="comp2")
        _comp(ctx, comp2, chords, second_prog, power=False, quiet=True)
        pm.instruments.append(comp2)
        parts["comp2"] = second_prog
    if rng.random() < 0.6:
        pad_prog = rng.choice(PAD_PROGRAMS)
        pad = pretty_midi.Instrument(program=pad_prog, name="pad")
        _pad(ctx, pad, chords, sections, everywhere=style == "ballad" or rng.random() < 0.3)
        pm.instruments.append(pad)
        parts["pad"] = pad_prog
    if rng.random() < 0.85:
        lead_prog = rng.choice(LEAD_PROGRAMS[style])
        lead = pretty_midi.Instrument(program=lead_prog, name="lead")
        _lead(ctx, lead, chords, sections)
        pm.instruments.append(lead)
        parts["lead"] = lead_prog

    segs: list[ChordSegment] = []
    if lead_in > 0:
        segs.append(ChordSegment(0.0, lead_in, "N"))
    for start, end, chord, _ in chords:
        label = chord.label()
        if segs and segs[-1].label == label and abs(segs[-1].end - start) < 1e-6:
            segs[-1].end = end
        else:
            segs.append(ChordSegment(start, end, label))
    segs.append(ChordSegment(music_end, duration, "N"))
    song = ArrangedSong(seed=int(seed), style=style, meter=meter, swing=swing, bpm=float(bpm), tonic=tonic,
                        mode=mode, sections=sections, chords=segs, beats=beats, downbeats=downbeats,
                        duration=duration, midi=pm, parts=parts)
    return song


# -- parts ------------------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    rng: random.Random
    hum: random.Random
    spb: float
    bar_beats: int
    meter: str
    swing: bool
    style: str
    lead_in: float
    total_beats: int

    def time(self, beat: float) -> float:
        """Seconds of a (fractional) beat position, with swing on the off-beat eighths."""
        whole = np.floor(beat + 1e-9)
        frac = beat - whole
        if self.swing and abs(frac - 0.5) < 1e-6:
            frac = 2.0 / 3.0
        return self.lead_in + (whole + frac) * self.spb

    def note(self, inst, pitch: int, start_beat: float, end_beat: float, velocity: int, jitter: float = 0.008,
             offset: float = 0.0) -> None:
        import pretty_midi

        start = self.time(start_beat) + offset + self.hum.gauss(0.0, jitter)
        end = self.time(end_beat) - 0.02
        start = max(0.0, start)
        if end <= start + 0.03:
            end = start + 0.03
        v = int(np.clip(velocity + self.hum.gauss(0, 6), 20, 127))
        inst.notes.append(pretty_midi.Note(velocity=v, pitch=int(pitch), start=start, end=end))


def _subdivision(ctx: _Ctx) -> float:
    return 1.0 / 3.0 if ctx.meter == "6/8" else 0.5


def _drums(ctx: _Ctx, inst, sections: Sequence[Section]) -> None:
    style, meter, bb = ctx.style, ctx.meter, ctx.bar_beats
    rng = ctx.rng
    sub = _subdivision(ctx)
    busy = rng.random() < 0.4  # sixteenth hats
    ride = style == "jazz" or (style == "blues" and ctx.swing)
    for sec in sections:
        b0 = round((sec.start - ctx.lead_in) / ctx.spb)
        b1 = round((sec.end - ctx.lead_in) / ctx.spb)
        if sec.name == "intro" and rng.random() < 0.3:
            continue
        ctx.note(inst, CRASH, b0, b0 + 1, 100)
        for bar in range(b0, b1, bb):
            last = bar + bb >= b1
            for k in range(bb):
                b = bar + k
                if last and k == bb - 1 and sec.name != "outro":  # a fill into the next section
                    steps = 4 if meter != "6/8" else 3
                    for j in range(steps):
                        ctx.note(inst, TOMS[j % len(TOMS)], b + j / steps, b + (j + 1) / steps, 95, 0.004)
                    continue
                if ride:
                    ctx.note(inst, RIDE, b, b + 0.5, 80, 0.004)
                    ctx.note(inst, RIDE, b + 0.5, b + 1, 60, 0.004)
                    if k % 2 == 1:
                        ctx.note(inst, PEDAL, b, b + 0.5, 70, 0.004)
                    if rng.random() < 0.25:
                        ctx.note(inst, SNARE, b + rng.choice((0.5, 1.0 - 1e-3)) - 1e-3, b + 1, 45, 0.004)
                    if k == 0:
                        ctx.note(inst, KICK, b, b + 0.5, 45, 0.004)
                    continue
                # hats or shaker on every subdivision
                n_sub = int(round(1 / sub)) * (2 if busy and meter == "4/4" and not ctx.swing else 1)
                for j in range(n_sub):
                    hat = SHAKER if style == "folk" else (OPEN_HAT if j == n_sub - 1 and k == bb - 1
                                                          and rng.random() < 0.3 else HAT)
                    ctx.note(inst, hat, b + j / n_sub, b + (j + 1) / n_sub, 75 if j == 0 else 55, 0.004)
                if meter == "6/8":
                    if k == 0:
                        ctx.note(inst, KICK, b, b + 0.5, 100, 0.004)
                    else:
                        ctx.note(inst, SNARE if style != "folk" else SIDE, b, b + 0.5, 95, 0.004)
                elif meter == "3/4":
                    ctx.note(inst, KICK if k == 0 else (SIDE if style in ("folk", "ballad") else SNARE),
                             b, b + 0.5, 100 if k == 0 else 70, 0.004)
                else:
                    if k in (0, 2) or (style == "rock" and k == 2) or (style == "pop" and k == 2):
                        ctx.note(inst, KICK, b, b + 0.5, 105, 0.004)
                        if style in ("pop", "rock") and rng.random() < 0.4:
                            ctx.note(inst, KICK, b + 0.5, b + 1, 90, 0.004)
                    if k in (1, 3):
                        if style == "ballad" and k == 1:
                            continue
                        ctx.note(inst, CLAP if style == "pop" and rng.random() < 0.2 else
                                 (SIDE if style == "folk" else SNARE), b, b + 0.5, 100, 0.004)
                    if style == "pop" and sec.name == "chorus" and k in (1, 3):
                        ctx.note(inst, TAMB, b, b + 0.5, 70, 0.004)


def _chord_beats(ctx: _Ctx, start: float) -> float:
    return (start - ctx.lead_in) / ctx.spb


def _bass(ctx: _Ctx, inst, chords) -> None:
    rng = ctx.rng
    style = ctx.style
    walking = style == "jazz" or (style == "blues" and ctx.swing and rng.random() < 0.6)
    root_fifth = style in ("folk",) or (style in ("pop", "ballad", "blues") and rng.random() < 0.3)
    eighths = style == "rock" or (style == "pop" and rng.random() < 0.3)
    for i, (start, end, chord, b0) in enumerate(chords):
        n_beats = round((end - start) / ctx.spb)
        bass_pc = chord.bass_pc()
        base = 28 + (bass_pc - 4) % 12  # E1..D#2
        pcs = chord.pitch_classes()
        fifth = next(((pc - chord.root) % 12 for pc in pcs if (pc - chord.root) % 12 in (6, 7, 8)), 7)
        nxt = chords[i + 1][2] if i + 1 < len(chords) else chord
        nxt_base = 28 + (nxt.bass_pc() - 4) % 12
        if walking:
            line = [base]
            tones = sorted({28 + (pc - 4) % 12 + o for pc in pcs for o in (0, 12)})
            for k in range(1, n_beats):
                if k == n_beats - 1 and i + 1 < len(chords):
                    line.append(nxt_base + rng.choice((-1, 1)))  # chromatic approach into the next chord
                else:
                    cands = [t for t in tones if 0 < abs(t - line[-1]) <= 7] or tones
                    line.append(rng.choice(cands))
            for k, pitch in enumerate(line):
                ctx.note(inst, pitch, b0 + k, b0 + k + 1, 90)
        elif root_fifth:
            step = 1 if ctx.bar_beats == 3 or ctx.meter == "6/8" else 2
            for k in range(0, n_beats, step):
                pitch = base if (k // step) % 2 == 0 or chord.bass is not None else \
                    (base + fifth if base + fifth <= 52 else base + fifth - 12)
                ctx.note(inst, pitch, b0 + k, b0 + k + min(step, n_beats - k), 95)
        elif eighths:
            sub = _subdivision(ctx)
            n = int(round(n_beats / sub))
            for j in range(n):
                ctx.note(inst, base, b0 + j * sub, b0 + (j + 1) * sub, 100 if j % 2 == 0 else 85)
        else:  # roots with a syncopated octave
            ctx.note(inst, base, b0, b0 + min(1.5, n_beats), 100)
            if n_beats >= 2:
                ctx.note(inst, base + 12 if rng.random() < 0.5 else base, b0 + 1.5, b0 + 2, 80)
            for k in range(2, n_beats):
                ctx.note(inst, base, b0 + k, b0 + k + 1, 90)


def _voicing(chord: Chord, prev: list[int] | None, low: int = 52, high: int = 76) -> list[int]:
    """A close voicing of all chord tones, the inversion nearest the previous voicing (voice leading)."""
    pcs = chord.pitch_classes()
    best, best_cost = None, 1e9
    for inv in range(len(pcs)):
        order = pcs[inv:] + pcs[:inv]
        for base_oct in range(low // 12, high // 12 + 1):
            notes = []
            p = base_oct * 12 + order[0]
            for pc in order:
                while p % 12 != pc:
                    p += 1
                notes.append(p)
                p += 1
            if notes[0] < low or notes[-1] > high:
                continue
            center = np.mean(prev) if prev else (low + high) / 2
            cost = abs(np.mean(notes) - center) + (sum(min(abs(a - b) for b in prev) for a in notes) * 0.3
                                                     if prev else 0)
            if cost < best_cost:
                best, best_cost = notes, cost
    return best or [60 + (pc - 0) % 12 for pc in pcs]


def _guitar_voicing(chord: Chord) -> list[int]:
    """An open-position-like guitar voicing: the bass note low, then chord tones stacked upward, each chord
    tone (third and seventh included) at least once."""
    pcs = chord.pitch_classes()
    bass = 40 + (chord.bass_pc() - 4) % 12  # E2..D#3
    notes = [bass]
    p = bass
    need = list(pcs)
    order = [pc for pc in pcs if pc != chord.bass_pc()] + [chord.root]
    k = 0
    while len(notes) < 6 and p < 72:
        pc = order[k % len(order)]
        p += 3
        while p % 12 != pc:
            p += 1
        notes.append(p)
        k += 1
        if all(any(n % 12 == q for n in notes) for q in need) and len(notes) >= 4:
            break
    return notes


def _power(chord: Chord) -> list[int]:
    base = 40 + (chord.bass_pc() - 4) % 12
    fifth = next(((pc - chord.root) % 12 for pc in chord.pitch_classes() if (pc - chord.root) % 12 in (6, 7, 8)), 7)
    root = 40 + (chord.root - 4) % 12
    return sorted({base, root + fifth, root + 12})


def _comp(ctx: _Ctx, inst, chords, program: int, power: bool, quiet: bool = False) -> None:
    rng = ctx.rng
    guitar = program in GUITAR_PROGRAMS
    sustained = program in (48, 49, 50, 16, 18, 19, 52, 89) and rng.random() < 0.6
    rhythm = "strum" if guitar and rng.random() < 0.7 else rng.choice(("block", "arpeggio", "block", "pulse"))
    if sustained:
        rhythm = "hold"
    if ctx.style == "jazz" and not guitar:
        rhythm = rng.choice(("charleston", "block", "arpeggio"))
    vel = 62 if quiet else 82
    prev = None
    sub = _subdivision(ctx)
    # a strumming pattern per song: which subdivisions are struck, down (True) or up
    n_sub = int(round(1 / sub))
    pattern = [rng.random() < 0.8 if j % n_sub == 0 else rng.random() < 0.5 for j in range(ctx.bar_beats * n_sub)]
    for start, end, chord, b0 in chords:
        n_beats = round((end - start) / ctx.spb)
        if power:
            notes = _power(chord)
        elif guitar:
            notes = _guitar_voicing(chord)
        else:
            notes = _voicing(chord, prev, 48 if quiet else 52, 76)
            prev = notes
        if rhythm == "hold":
            for p in notes:
                ctx.note(inst, p, b0, b0 + n_beats, vel - 10)
        elif rhythm == "block":
            step = 1 if rng.random() < 0.6 else 2
            for k in range(0, n_beats, step):
                for p in notes:
                    ctx.note(inst, p, b0 + k, b0 + k + step * 0.9, vel if k == 0 else vel - 10)
        elif rhythm == "pulse":  # eighths, accented on the beat
            for j in range(int(round(n_beats / sub))):
                for p in notes:
                    ctx.note(inst, p, b0 + j * sub, b0 + (j + 1) * sub, vel if j % n_sub == 0 else vel - 15)
        elif rhythm == "charleston":
            for k in range(0, n_beats, 2):
                hits = (0.0, 1.5) if k + 1 < n_beats else (0.0,)
                for h in hits:
                    for p in notes:
                        ctx.note(inst, p, b0 + k + h, b0 + k + h + 0.45, vel - 5)
        elif rhythm == "arpeggio":
            seq = notes + notes[-2:0:-1] if len(notes) > 2 else notes
            steps = int(round(n_beats / sub))
            for j in range(steps):
                p = seq[j % len(seq)]
                ctx.note(inst, p, b0 + j * sub, b0 + min((j + 2) * sub, n_beats), vel - 5)
        else:  # strum: stagger the strings, low to high on down strokes, high to low on up strokes
            steps = int(round(n_beats / sub))
            for j in range(steps):
                if not pattern[j % len(pattern)] and j != 0:
                    continue
                down = (j % n_sub == 0) or rng.random() < 0.3
                order = notes if down else notes[::-1][: max(3, len(notes) - 2)]
                spread = rng.uniform(0.008, 0.025)
                # a strum rings until the next strike
                nxt = next((jj for jj in range(j + 1, steps) if pattern[jj % len(pattern)]), steps)
                for s_i, p in enumerate(order):
                    ctx.note(inst, p, b0 + j * sub, b0 + nxt * sub, vel if down else vel - 15, 0.004,
                             offset=s_i * spread)


def _pad(ctx: _Ctx, inst, chords, sections: Sequence[Section], everywhere: bool) -> None:
    spans = [(s.start, s.end) for s in sections if everywhere or s.name in ("chorus", "bridge", "outro")]
    prev = None
    for start, end, chord, b0 in chords:
        if not any(a - 1e-6 <= start < b for a, b in spans):
            continue
        notes = _voicing(chord, prev, 55, 79)
        prev = notes
        n_beats = round((end - start) / ctx.spb)
        for p in notes:
            ctx.note(inst, p, b0, b0 + n_beats, 55, 0.003)


_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
_BLUES_SCALE = (0, 3, 5, 6, 7, 10)


def _lead(ctx: _Ctx, inst, chords, sections: Sequence[Section]) -> None:
    """A singable line: chord tones on the beats, scale steps between them, phrases of two or four bars
    separated by rests; silent in the intro and outro."""
    rng = ctx.rng
    sub = _subdivision(ctx)
    pitch = 67
    for sec in sections:
        if sec.name in ("intro", "outro"):
            continue
        scale = _BLUES_SCALE if ctx.style == "blues" else (_MAJOR_SCALE if sec.mode == "major" else _MINOR_SCALE)
        scale_pcs = {(sec.tonic + s) % 12 for s in scale}
        phrase_bars = rng.choice((2, 4))
        for start, end, chord, b0 in chords:
            if not (sec.start - 1e-6 <= start < sec.end - 1e-6):
                continue
            n_beats = round((end - start) / ctx.spb)
            bar_index = b0 // ctx.bar_beats
            if bar_index % phrase_bars == phrase_bars - 1 and (b0 % ctx.bar_beats) + n_beats >= ctx.bar_beats \
                    and rng.random() < 0.7:
                continue  # breathe at the end of a phrase
            tones = chord.pitch_classes()
            pos = 0.0
            while pos < n_beats - 1e-6:
                on_beat = abs(pos - round(pos)) < 1e-6
                length = rng.choice((1.0, 1.0, 2.0, sub, sub)) if on_beat else sub
                length = min(length, n_beats - pos)
                if on_beat:  # chord tone nearest the current pitch, within a sixth
                    cands = [q for q in range(57, 84) if q % 12 in tones and abs(q - pitch) <= 9]
                else:  # a scale step
                    cands = [q for q in (pitch - 2, pitch - 1, pitch + 1, pitch + 2) if q % 12 in scale_pcs
                             and 57 <= q <= 84]
                if not cands:
                    cands = [q for q in range(57, 84) if q % 12 in tones]
                pitch = rng.choice(cands)
                if rng.random() < 0.12 and on_beat:
                    pos += length  # a rest
                    continue
                ctx.note(inst, pitch, b0 + pos, b0 + pos + length, 88)
                pos += length
