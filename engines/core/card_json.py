"""Merge measured figures into a model card's JSON without touching its weights (their SHA-256 stays valid)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(value), default=float))  # numpy numbers -> JSON numbers


def update_card(name: str, *, metrics: Mapping[str, Any] | None = None,
                calibration: Mapping[str, Any] | None = None, directory: Path | None = None,
                **sections: Mapping[str, Any]) -> Path:
    """Update the card of ``name`` (in ``directory``, else wherever the default weights store finds it):
    ``metrics`` and any other dict field given in ``sections`` (e.g. ``inputs=``) are merged into what the card
    has; ``calibration`` replaces the card's (it is one fit). Written atomically; the card is validated by
    reading it as a ModelCard first, so a damaged card is refused rather than rewritten."""
    from engines.core.atomic import atomic_write_text
    from engines.core.weights import ModelCard, WeightsStore

    card_path = (Path(directory) / f"{name}.card.json" if directory is not None
                 else WeightsStore.default().paths(name)[1])
    card = ModelCard.from_json(card_path.read_text(encoding="utf-8"))
    if metrics:
        card.metrics = {**card.metrics, **_plain(metrics)}
    if calibration is not None:
        card.calibration = _plain(calibration)
    for key, value in sections.items():
        current = getattr(card, key)
        if not isinstance(current, dict):
            raise TypeError(f"the card field {key!r} is not a dict")
        setattr(card, key, {**current, **_plain(value)})
    atomic_write_text(card_path, card.to_json())
    return card_path
