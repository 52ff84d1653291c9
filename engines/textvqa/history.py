"""The VQA tab's question history per image, kept through the shared autosave service (Qt-free).

Each image has its own autosave (``autosave_path("textvqa", image)``) holding
``{"questions": [{"question", "answer", "truth", "correct"}, ...]}``. Histories written before the shared
service (one ``textvqa/vqa-history.json`` keyed by image path) are still read for an image with no autosave.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from engines.core.autosave import autosave_path, load_autosave
from engines.core.paths import data_dir

log = logging.getLogger(__name__)

HISTORY_KIND = "textvqa"
HISTORY_SCHEMA = 1


def history_autosave_path(image: str | Path) -> Path:
    """Where the question history of ``image`` is autosaved."""
    return autosave_path(HISTORY_KIND, image)


def legacy_history_file() -> Path:
    return data_dir() / "textvqa" / "vqa-history.json"


def _entry(item: object) -> dict:
    if not isinstance(item, dict):
        raise TypeError(f"a history entry is a {type(item).__name__}, not an object")
    question, answer = item["question"], item["answer"]
    truth, correct = item.get("truth"), item.get("correct")
    if not isinstance(question, str) or not isinstance(answer, str):
        raise TypeError("a question or an answer is not text")
    if truth is not None and not isinstance(truth, str):
        raise TypeError("a known answer is not text")
    if correct is not None and not isinstance(correct, bool):
        raise TypeError("'correct' is not true or false")
    return {"question": question, "answer": answer, "truth": truth, "correct": correct}


def clean_history(payload: dict) -> list[dict]:
    """The entries of an autosaved history; raises TypeError/KeyError when it is not one."""
    items = payload["questions"]
    if not isinstance(items, list):
        raise TypeError("'questions' is not a list")
    return [_entry(item) for item in items]


def history_payload(entries: list[dict]) -> dict:
    return {"questions": [dict(e) for e in entries]}


def _legacy_entries(image: Path) -> list[dict]:
    path = legacy_history_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data[str(image.resolve())]
        return [_entry(item) for item in items] if isinstance(items, list) else []
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError, KeyError) as exc:  # an old history is not worth a message
        if not isinstance(exc, KeyError):
            log.info("old question history %s not used: %s", path, exc)
        return []


def load_history(image: str | Path) -> tuple[Path, list[dict], str | None]:
    """(autosave path, entries, a sentence for the user or None) for ``image``. Runs file I/O."""
    image = Path(image)
    path = history_autosave_path(image)
    loaded = load_autosave(path, schema=HISTORY_SCHEMA, validate=clean_history, source_name=image.name)
    if loaded.data is not None:
        return path, loaded.data, None
    if loaded.notice is not None:
        return path, [], loaded.notice
    return path, _legacy_entries(image), None
