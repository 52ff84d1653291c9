"""Merge measured figures into a model card's JSON without touching its weights (their SHA-256 stays valid)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def update_card(name: str, **sections: dict[str, Any]) -> Path:
    """Merge each of ``sections`` (e.g. ``metrics=...``, ``calibration=...``) into that dict of the card of
    ``name`` in the default weights store; written atomically."""
    from engines.core.atomic import atomic_write_text
    from engines.core.weights import WeightsStore

    _, card_path = WeightsStore.default().paths(name)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    for key, value in sections.items():
        card.setdefault(key, {}).update(value)
    atomic_write_text(card_path, json.dumps(card, indent=2) + "\n")
    return card_path
