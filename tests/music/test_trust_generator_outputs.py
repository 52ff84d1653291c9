"""The melody generator names every file it writes: the engine says so in its description, write_result returns
each path, and `csi-workstation run melody-generator --out` prints them all (melody-2/3/4 included)."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def test_the_engine_describes_the_extra_files():
    from engines.music_lab.generator import MelodyGeneratorEngine

    outputs = MelodyGeneratorEngine().info().outputs
    assert "<name>-2" in outputs and "listed" in outputs


def test_the_cli_names_every_melody_file_it_writes(tmp_path, capsys):
    import torch

    from app.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "melody.mid"
        assert main(["run", "melody-generator", "--set", "chords=C G Am F", "--set", "n=3", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    written = sorted(p for p in tmp_path.iterdir() if p.suffix == ".mid")
    assert [p.name for p in written] == ["melody-2.mid", "melody-3.mid", "melody.mid"]
    for path in tmp_path.iterdir():  # nothing lands beside --out without being named
        assert str(path) in printed, (path, printed)
