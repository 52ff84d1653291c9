"""Headless runs through the real CLI."""
from __future__ import annotations

import json

from app.cli import main
from engines.textvqa import scenes as S


def test_cli_runs_g2p_on_a_text_file_and_vqa_on_a_scene(tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("knight\nphone\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert main(["run", "g2p-nsgd", str(words), "--out", str(out)]) == 0
    assert [line.split("\t")[0] for line in out.read_text().splitlines()] == ["KNIGHT", "PHONE"]
    png = S.write_scene(tmp_path, "test", 1)
    answer = tmp_path / "answer.json"
    assert main(["run", "vqa-mclkd", str(png), "--set", "question=how many things are there?",
                 "--out", str(answer)]) == 0
    assert json.loads(answer.read_text())["answer"] in S.ANSWERS
    assert main(["run", "vqa-mclkd", str(words), "--set", "question=how many things?", "--out",
                 str(tmp_path / "x.json")]) == 1
    assert "not an image" in capsys.readouterr().err
