"""Chord labels, vocabularies and the chord track (a list of timed segments) with its edits.

Labels use the Harte/MIREX syntax that ``mir_eval.chord`` reads: ``N``, ``C:maj``, ``A:min``, ``G:7``,
``F#:min7``, ``C:maj/E`` (a slash bass as a scale degree, as MIREX writes it). No Qt, no torch.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from engines.core.atomic import atomic_write_text
from engines.core.engine import EngineError
from engines.core.history import UndoHistory

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# tonics (pitch classes) whose key signatures use sharps
_SHARP_MAJOR = {7, 2, 9, 4, 11, 6}
_SHARP_MINOR = {4, 11, 6, 1, 8, 3}


def spelling_for_key(key: str) -> tuple[str, ...] | None:
    """Note names to spell chords with in ``key`` ('A minor' -> sharps, so G#m not Abm); None = default."""
    tonic, _, mode = key.partition(" ")
    try:
        pc = pitch_class(tonic)
    except ValueError:
        return None
    sharp = pc in (_SHARP_MINOR if mode == "minor" else _SHARP_MAJOR)
    names = list(SHARP_NAMES if sharp else FLAT_NAMES)
    leading = (pc - 1) % 12  # the leading tone is a raised degree: G# in A minor, C# in D minor
    if "b" in names[leading]:
        names[leading] = SHARP_NAMES[leading]
    return tuple(names)
_NOTE_TO_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

#: quality -> intervals (semitones above the root) for the qualities the workstation writes
QUALITY_INTERVALS: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "hdim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9), "minmaj7": (0, 3, 7, 11), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9),
    "sus2": (0, 2, 7), "sus4": (0, 5, 7),
}
#: scale degree names used for slash basses (interval above the root -> degree)
_DEGREES = {0: "1", 1: "b2", 2: "2", 3: "b3", 4: "3", 5: "4", 6: "b5", 7: "5", 8: "#5", 9: "6", 10: "b7",
            11: "7"}

#: the 25-class vocabulary (BTC's small one): 12 major, 12 minor, no chord
MAJMIN_VOCAB: tuple[str, ...] = tuple(f"{r}:maj" for r in PITCH_NAMES) + tuple(f"{r}:min" for r in PITCH_NAMES) + ("N",)


def pitch_class(name: str) -> int:
    """'C' -> 0, 'F#' -> 6, 'Bb' -> 10, 'Cb' -> 11."""
    name = name.strip()
    if not name or name[0].upper() not in _NOTE_TO_PC:
        raise ValueError(f"not a note name: {name!r}")
    pc = _NOTE_TO_PC[name[0].upper()]
    for ch in name[1:]:
        pc += 1 if ch == "#" else -1 if ch == "b" else 0
        if ch not in "#b":
            raise ValueError(f"not a note name: {name!r}")
    return pc % 12


@dataclass(frozen=True)
class Chord:
    """A parsed chord: root pitch class (None for N/X), quality, bass pitch class."""

    root: int | None
    quality: str = "maj"
    bass: int | None = None  # absolute pitch class of the bass; None = the root

    @property
    def is_none(self) -> bool:
        return self.root is None

    def pitch_classes(self) -> list[int]:
        if self.root is None:
            return []
        return [(self.root + i) % 12 for i in QUALITY_INTERVALS.get(self.quality, (0, 4, 7))]

    def bass_pc(self) -> int | None:
        return self.root if self.bass is None else self.bass

    def transpose(self, semitones: int) -> "Chord":
        if self.root is None:
            return self
        return Chord((self.root + semitones) % 12, self.quality,
                     None if self.bass is None else (self.bass + semitones) % 12)

    def label(self) -> str:
        if self.root is None:
            return "N"
        text = f"{PITCH_NAMES[self.root]}:{self.quality}"
        if self.bass is not None and self.bass != self.root:
            text += "/" + _DEGREES[(self.bass - self.root) % 12]
        return text

    def symbol(self, names: Sequence[str] | None = None) -> str:
        """What a musician reads on a lead sheet: C, Am, G7, F#m7, Bdim, C/E (``names`` spells the notes)."""
        names = names or PITCH_NAMES
        if self.root is None:
            return "N.C."
        suffix = {"maj": "", "min": "m", "7": "7", "maj7": "maj7", "min7": "m7", "dim": "dim", "aug": "aug",
                  "hdim7": "m7b5", "dim7": "dim7", "minmaj7": "m(maj7)", "maj6": "6", "min6": "m6",
                  "sus2": "sus2", "sus4": "sus4"}.get(self.quality, self.quality)
        text = names[self.root] + suffix
        if self.bass is not None and self.bass != self.root:
            text += "/" + names[self.bass]
        return text


def parse_label(label: str) -> Chord:
    """Parse a MIREX label (or a lead-sheet symbol such as 'Am7' or 'C/E'); raise ValueError if unreadable."""
    text = label.strip()
    if text in ("N", "X", "", "N.C.", "NC"):
        return Chord(None)
    if ":" not in text:
        return _parse_symbol(text)
    root_txt, _, rest = text.partition(":")
    quality, _, bass_txt = rest.partition("/")
    quality = quality.split("(")[0] or "maj"
    root = pitch_class(root_txt)
    if quality not in QUALITY_INTERVALS:
        raise ValueError(f"unknown chord quality {quality!r} in {label!r}")
    bass = None
    if bass_txt:
        inverse = {v: k for k, v in _DEGREES.items()}
        if bass_txt in inverse:
            bass = (root + inverse[bass_txt]) % 12
        else:
            bass = pitch_class(bass_txt)
    return Chord(root, quality, bass)


def _parse_symbol(text: str) -> Chord:
    main, _, bass_txt = text.partition("/")
    n = 2 if len(main) > 1 and main[1] in "#b" else 1
    root = pitch_class(main[:n])
    suffix = main[n:]
    table = {"": "maj", "M": "maj", "maj": "maj", "m": "min", "min": "min", "-": "min", "7": "7",
             "maj7": "maj7", "M7": "maj7", "m7": "min7", "min7": "min7", "dim": "dim", "o": "dim", "aug": "aug",
             "+": "aug", "m7b5": "hdim7", "ø": "hdim7", "dim7": "dim7", "o7": "dim7", "6": "maj6", "m6": "min6",
             "sus2": "sus2", "sus4": "sus4", "sus": "sus4", "m(maj7)": "minmaj7"}
    if suffix not in table:
        raise ValueError(f"unknown chord symbol {text!r}")
    bass = pitch_class(bass_txt) if bass_txt else None
    return Chord(root, table[suffix], bass)


def normalize_label(label: str) -> str:
    """A canonical MIREX label ('Am' -> 'A:min'); raises ValueError for unreadable input."""
    return parse_label(label).label()


def to_majmin(chord: Chord) -> str:
    """Map any chord to the 25-class vocabulary (as BTC's small vocabulary does)."""
    if chord.root is None:
        return "N"
    minor = chord.quality in ("min", "min7", "minmaj7", "min6", "dim", "hdim7", "dim7")
    return f"{PITCH_NAMES[chord.root]}:{'min' if minor else 'maj'}"


# -- the chord track ----------------------------------------------------------------------------------
@dataclass
class ChordSegment:
    start: float
    end: float
    label: str
    confidence: float = 1.0

    @property
    def chord(self) -> Chord:
        return parse_label(self.label)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class ChordTrack(UndoHistory):
    """Timed chord segments covering [0, duration], plus the estimated key and where they came from.

    Edits keep the segments contiguous and sorted; every edit pushes an undo snapshot.
    """

    segments: list[ChordSegment] = field(default_factory=list)
    duration: float = 0.0
    key: str = ""
    key_confidence: float = 0.0
    source: str = ""  # engine id, "lab file", "edited"
    transpose: int = 0  # semitones applied for display/playback/export (capo), not baked into labels
    checks: list = field(default_factory=list, compare=False)  # engines.core.checks.Check of the input contract
    _undo: list[list[ChordSegment]] = field(default_factory=list, repr=False, compare=False)
    _redo: list[list[ChordSegment]] = field(default_factory=list, repr=False, compare=False)
    #: bumped by every change (edit, undo, redo, transpose): a cheap key for what was derived from the track
    revision: int = field(default=0, repr=False, compare=False)

    # -- queries -----------------------------------------------------------------------------------
    def index_at(self, t: float) -> int | None:
        for i, seg in enumerate(self.segments):
            if seg.start <= t < seg.end:
                return i
        if self.segments and t >= self.segments[-1].end - 1e-9:
            return len(self.segments) - 1
        return None

    def label_at(self, t: float) -> str:
        i = self.index_at(t)
        return "N" if i is None else self.display_label(self.segments[i])

    def display_label(self, seg: ChordSegment) -> str:
        return parse_label(seg.label).transpose(self.transpose).label()

    def display_key(self) -> str:
        """The estimated key as displayed (transposed), e.g. 'B minor'; '' when unknown."""
        tonic, _, mode = self.key.partition(" ")
        try:
            return f"{PITCH_NAMES[(pitch_class(tonic) + self.transpose) % 12]} {mode}"
        except ValueError:
            return ""

    def spelling(self) -> tuple[str, ...] | None:
        return spelling_for_key(self.display_key()) if self.key else None

    def display_symbol(self, seg: ChordSegment) -> str:
        """The lead-sheet symbol as displayed: transposed and spelled for the (transposed) key."""
        return parse_label(self.display_label(seg)).symbol(self.spelling())

    def describe(self, index: int) -> str:
        """One line about segment ``index`` as displayed: 'Am (A:min), 2.00-4.00 s, confidence 0.87'."""
        seg = self.segments[index]
        return (f"{self.display_symbol(seg)} ({self.display_label(seg)}), {seg.start:.2f}-{seg.end:.2f} s, "
                f"confidence {seg.confidence:.2f}")

    def transposed_segments(self) -> list[ChordSegment]:
        return [ChordSegment(s.start, s.end, self.display_label(s), s.confidence) for s in self.segments]

    # -- edits (each undoable) ---------------------------------------------------------------------
    def snapshot(self) -> "ChordTrack":
        """An independent copy of the track as it is now (segments, key, source, transpose; no undo history),
        for a worker thread or an export while the user keeps editing."""
        return ChordTrack([ChordSegment(s.start, s.end, s.label, s.confidence) for s in self.segments],
                          self.duration, self.key, self.key_confidence, self.source, self.transpose,
                          list(self.checks), revision=self.revision)

    def _snapshot(self) -> None:
        self.revision += 1
        self._undo.append(copy.deepcopy(self.segments))
        self._redo.clear()
        if len(self._undo) > 200:
            self._undo.pop(0)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(copy.deepcopy(self.segments))
        self.segments = self._undo.pop()
        self.revision += 1
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(copy.deepcopy(self.segments))
        self.segments = self._redo.pop()
        self.revision += 1
        return True

    def rename(self, index: int, label: str) -> None:
        """Set a segment's chord (the label is read in the displayed, transposed key)."""
        chord = parse_label(label).transpose(-self.transpose)  # raises ValueError for nonsense
        self._snapshot()
        self.segments[index].label = chord.label()
        self.segments[index].confidence = 1.0
        self.source = "edited"

    def split(self, index: int, t: float) -> None:
        seg = self.segments[index]
        if not seg.start + 0.05 < t < seg.end - 0.05:
            raise ValueError("split point must lie inside the chord")
        self._snapshot()
        self.segments.insert(index + 1, ChordSegment(t, seg.end, seg.label, seg.confidence))
        seg.end = t
        self.source = "edited"

    def merge_next(self, index: int) -> None:
        """Merge segment ``index`` with the next one (keeps the first one's chord)."""
        if not 0 <= index < len(self.segments) - 1:
            raise ValueError("there is no next chord to merge with")
        self._snapshot()
        nxt = self.segments.pop(index + 1)
        self.segments[index].end = nxt.end
        self.source = "edited"

    def move_boundary(self, index: int, t: float) -> None:
        """Move the boundary between segment ``index`` and ``index + 1`` to time ``t``."""
        if not 0 <= index < len(self.segments) - 1:
            raise ValueError("no boundary after the last chord")
        a, b = self.segments[index], self.segments[index + 1]
        t = min(max(t, a.start + 0.05), b.end - 0.05)
        self._snapshot()
        a.end = b.start = t
        self.source = "edited"

    def set_transpose(self, semitones: int) -> None:
        self.transpose = int(semitones)
        self.revision += 1

    # -- files ---------------------------------------------------------------------------------------
    def to_lab(self, transposed: bool = True) -> str:
        segs = self.transposed_segments() if transposed else self.segments
        return "".join(f"{s.start:.6f}\t{s.end:.6f}\t{s.label}\n" for s in segs if s.end > s.start)

    def write_lab(self, path: Path, transposed: bool = True) -> Path:
        return atomic_write_text(path, self.to_lab(transposed))

    def to_json(self) -> str:
        return json.dumps({"format": "csi-workstation/chord-track@1", "duration": self.duration, "key": self.key,
                           "key_confidence": self.key_confidence, "source": self.source,
                           "transpose": self.transpose, "segments": [asdict(s) for s in self.segments]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ChordTrack":
        """Read the workstation's chord-track JSON; ValueError/TypeError (with the reason) for anything else."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, raw: Any) -> "ChordTrack":
        """A chord track from its JSON object, checked field by field (autosaves and files are untrusted).

        Raises ValueError or TypeError naming the first problem: not an object, a wrong format tag, a
        duration or time that is not a finite number, segments out of order, an unknown chord label, a
        transpose that is not a whole number of semitones in -11..11.
        """
        if not isinstance(raw, dict):
            raise TypeError(f"a chord track is a JSON object, not {type(raw).__name__}")
        if raw.get("format") != "csi-workstation/chord-track@1":
            raise ValueError("not a chord track file")
        duration = _finite(raw.get("duration"), "duration")
        if duration < 0:
            raise ValueError("the duration is negative")
        transpose = raw.get("transpose", 0)
        if not isinstance(transpose, int) or isinstance(transpose, bool) or not -11 <= transpose <= 11:
            raise ValueError(f"transpose must be a whole number of semitones from -11 to 11, not {transpose!r}")
        texts = {name: raw.get(name, "") for name in ("key", "source")}
        for name, value in texts.items():
            if not isinstance(value, str):
                raise TypeError(f"{name} must be text, not {type(value).__name__}")
        key_conf = _finite(raw.get("key_confidence", 0.0), "key_confidence")
        items = raw.get("segments")
        if not isinstance(items, list):
            raise TypeError("segments must be a list")
        segs: list[ChordSegment] = []
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise TypeError(f"segment {n} is not an object")
            start, end = _finite(item.get("start"), f"segment {n} start"), _finite(item.get("end"), f"segment {n} end")
            if not 0 <= start < end or end > duration + 1.0 or (segs and start < segs[-1].end - 1e-6):
                raise ValueError(f"segment {n} ({start}-{end} s) is out of order or outside the recording")
            label = item.get("label")
            if not isinstance(label, str):
                raise TypeError(f"segment {n} has no chord label")
            try:
                label = normalize_label(label)
            except ValueError:
                raise ValueError(f"segment {n} has an unknown chord label {label[:40]!r}") from None
            conf = _finite(item.get("confidence", 1.0), f"segment {n} confidence")
            segs.append(ChordSegment(start, end, label, min(1.0, max(0.0, conf))))
        return cls(segs, duration, texts["key"], key_conf, texts["source"], transpose)

    @classmethod
    def from_lab_text(cls, text: str, duration: float | None = None, source: str = "lab file") -> "ChordTrack":
        segs: list[ChordSegment] = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 3:
                raise EngineError(f"line {n} of the .lab file is not 'start end label'")
            try:
                start, end = float(parts[0]), float(parts[1])
                label = normalize_label(parts[2])
            except ValueError as exc:
                raise EngineError(f"line {n} of the .lab file: {exc}") from None
            if end > start:
                segs.append(ChordSegment(start, end, label))
        segs.sort(key=lambda s: s.start)
        return cls(segs, duration if duration is not None else (segs[-1].end if segs else 0.0), source=source)

    @classmethod
    def read_lab(cls, path: Path, duration: float | None = None) -> "ChordTrack":
        return cls.from_lab_text(Path(path).read_text(encoding="utf-8"), duration)


def _finite(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {str(value)[:40]!r}")
    return float(value)


#: version of the chord-edit autosave (engines.core.autosave's ``schema``)
CHORD_AUTOSAVE_SCHEMA = 1


def chord_autosave_payload(track: ChordTrack, audio: str) -> dict:
    """What the music view autosaves for one recording: the track (with its transpose) and the file it is for."""
    payload = json.loads(track.to_json())
    payload["audio"] = str(audio)
    payload["saved_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return payload


def chord_track_from_autosave(data: Any) -> tuple[ChordTrack, str]:
    """Validate a chord-edit autosave: (the track, when it was saved); ValueError/TypeError when it is bad."""
    track = ChordTrack.from_dict(data)
    saved = data.get("saved_at", "earlier")
    return track, saved if isinstance(saved, str) and saved else "earlier"


def chord_locks_from_autosave(data: Any) -> dict[int, str]:
    """Validate the harmonizer's locked chords ({"locks": {"2": "Dm"}}): bar index -> chord symbol."""
    if not isinstance(data, dict) or not isinstance(data.get("locks"), dict):
        raise TypeError("the locked chords are not an object")
    locks: dict[int, str] = {}
    for key, value in data["locks"].items():
        if not str(key).isdigit() or not isinstance(value, str):
            raise ValueError(f"bad lock {str(key)[:20]!r}: {str(value)[:40]!r}")
        try:
            chord = parse_label(value)
        except ValueError:
            raise ValueError(f"unknown chord symbol {value[:40]!r}") from None
        if chord.is_none:
            raise ValueError(f"{value!r} is not a chord")
        locks[int(key)] = value.strip()
    return locks


def segments_from_frames(labels: Sequence[str], confidences: Sequence[float], hop_s: float,
                         duration: float) -> list[ChordSegment]:
    """Run-length encode frame labels into contiguous segments covering [0, duration]."""
    segs: list[ChordSegment] = []
    start = 0
    n = len(labels)
    for i in range(1, n + 1):
        if i == n or labels[i] != labels[start]:
            t0 = start * hop_s
            t1 = min(i * hop_s, duration) if i < n else duration
            if t1 > t0:
                conf = float(sum(confidences[start:i]) / max(1, i - start))
                segs.append(ChordSegment(round(t0, 6), round(t1, 6), labels[start], conf))
            start = i
    if not segs and duration > 0:
        segs.append(ChordSegment(0.0, duration, "N", 1.0))
    return segs


def merge_short(segments: Iterable[ChordSegment], min_s: float) -> list[ChordSegment]:
    """Absorb segments shorter than ``min_s`` into the previous one (then merge equal neighbours)."""
    out: list[ChordSegment] = []
    for seg in segments:
        if out and (seg.duration < min_s or seg.label == out[-1].label):
            out[-1].end = seg.end
        else:
            out.append(ChordSegment(seg.start, seg.end, seg.label, seg.confidence))
    return out


# -- vocabularies for the networks --------------------------------------------------------------------
LARGE_QUALITIES: tuple[str, ...] = ("maj", "min", "dim", "aug", "min6", "maj6", "min7", "minmaj7", "maj7", "7",
                                    "dim7", "hdim7", "sus2", "sus4")
#: BTC's large vocabulary: 12 roots x 14 qualities, then X (unknown) and N (no chord): 170 classes
LARGE_VOCAB: tuple[str, ...] = tuple(f"{PITCH_NAMES[r]}:{q}" for r in range(12) for q in LARGE_QUALITIES) + ("X", "N")
VOCABS = {"majmin": MAJMIN_VOCAB, "large": LARGE_VOCAB}


def vocab_index(chord: Chord, vocab: str) -> int:
    """Class index of ``chord`` in a vocabulary ('majmin' or 'large'); slash basses are ignored."""
    if vocab == "majmin":
        return MAJMIN_VOCAB.index(to_majmin(chord))
    if chord.root is None:
        return len(LARGE_VOCAB) - 1
    if chord.quality not in LARGE_QUALITIES:
        return len(LARGE_VOCAB) - 2
    return chord.root * len(LARGE_QUALITIES) + LARGE_QUALITIES.index(chord.quality)


def shift_index(index: int, semitones: int, vocab: str) -> int:
    """The class index of a chord transposed by ``semitones`` (N and X stay)."""
    labels = VOCABS[vocab]
    label = labels[index]
    if label in ("N", "X"):
        return index
    return labels.index(parse_label(label).transpose(semitones).label())


def frame_labels(segments: Sequence[ChordSegment], n_frames: int, frame_s: float, vocab: str) -> list[int]:
    """The class index at each frame time (frame i sits at i * frame_s, as librosa's centred frames do)."""
    out = []
    j = 0
    segs = sorted(segments, key=lambda s: s.start)
    none = vocab_index(Chord(None), vocab)
    cache: dict[str, int] = {}
    for i in range(n_frames):
        t = i * frame_s
        while j < len(segs) and segs[j].end <= t:
            j += 1
        if j < len(segs) and segs[j].start <= t:
            lab = segs[j].label
            if lab not in cache:
                cache[lab] = vocab_index(parse_label(lab), vocab)
            out.append(cache[lab])
        else:
            out.append(none)
    return out
