"""Write resources/models/<domain>/README.md: a readable index of the model cards (NAME.card.json) there.

    .venv/bin/python scripts/model_cards.py
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "resources" / "models"


def _fmt(value) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value[:40]) + (" …" if len(value) > 40 else "")
    return str(value)


def main() -> None:
    for folder in sorted(p for p in ROOT.iterdir() if p.is_dir()):
        cards = sorted(folder.glob("*.card.json"))
        if not cards:
            continue
        lines = [f"# Model cards: {folder.name}", "",
                 "Generated from the `*.card.json` files beside the weights by `scripts/model_cards.py`; the JSON "
                 "cards are what the workstation reads (and checks against each file's SHA-256).", ""]
        for path in cards:
            card = json.loads(path.read_text(encoding="utf-8"))
            lines += [f"## {card.get('name', path.stem)}", "",
                      f"- weights: `{path.name.replace('.card.json', '.safetensors')}` (SHA-256 `{card.get('sha256', '')[:16]}…`)",
                      f"- architecture: {card.get('architecture')} ({_fmt(card.get('arch_args', {}))})",
                      f"- task: {card.get('task', '')}",
                      f"- inputs: {_fmt(card.get('inputs', {}))}",
                      f"- training data: {card.get('training_data', '')}",
                      f"- training command: `{card.get('training_command', '')}`",
                      f"- metrics: {_fmt(card.get('metrics', {}))}",
                      f"- limits: {card.get('limits', '')}",
                      f"- intended use: {card.get('intended_use', '')}", ""]
        (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")
        print(f"wrote {folder / 'README.md'} ({len(cards)} cards)")


if __name__ == "__main__":
    main()
