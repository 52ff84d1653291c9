"""The Text & VQA workspace's state without Qt: the open image, the questions asked about each image (its
autosaved history, engines/textvqa/history.py), the last answer and its input checks.

The view draws a :class:`TextVqaSession` and forwards questions; answers come from the vqa-mclkd engine (run in a
worker) and are recorded here. Events (psygnal) tell the view what changed, so a test or a script runs the same
workflow without a screen. :func:`read_image_for_session` does the file work for a worker thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from engines.textvqa.history import HISTORY_SCHEMA, history_payload, load_history


@dataclass
class OpenedImage:
    """What :func:`read_image_for_session` found for one image (built in a worker)."""

    path: Path
    image: np.ndarray
    sidecar: dict | None  # the generated scene's questions and answers, None for the user's own image
    key: str  # the resolved path: one history per image, however it was reached
    history_file: Path
    entries: list[dict]
    notice: str | None  # a sentence when the saved history was damaged and set aside


def read_image_for_session(path: str | Path) -> OpenedImage:
    """Read an image, its scene sidecar (if generated) and its saved question history. Runs file I/O; raises
    EngineError with a plain reason for a file that is not an image."""
    from engines.textvqa.scenes import read_sidecar
    from engines.textvqa.vqa_engine import read_image

    path = Path(path)
    image = read_image(path)
    history_file, entries, notice = load_history(path)
    return OpenedImage(path, image, read_sidecar(path), str(path.resolve()), history_file, entries, notice)


class TextVqaSessionEvents(SignalGroup):
    opened = Signal(object)  # OpenedImage
    history_changed = Signal(list)  # the open image's entries, oldest first
    answered = Signal(dict)  # the engine's answer as recorded
    dirty_changed = Signal(bool)


class TextVqaSession:
    """Images opened this session, each with its questions; one image is open at a time. Qt-free."""

    def __init__(self) -> None:
        self.events = TextVqaSessionEvents()
        self.opened: OpenedImage | None = None
        self.history: dict[str, list[dict]] = {}  # resolved image path -> its questions (oldest first)
        self.last: dict | None = None
        self.dirty = False

    # -- the open image ----------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self.opened.path if self.opened else None

    @property
    def image(self) -> np.ndarray | None:
        return self.opened.image if self.opened else None

    @property
    def key(self) -> str:
        return self.opened.key if self.opened else ""

    @property
    def history_file(self) -> Path | None:
        return self.opened.history_file if self.opened else None

    def open(self, opened: OpenedImage) -> None:
        """Show ``opened``; its saved questions join, but questions asked this session win over the saved ones."""
        self.opened = opened
        self.history.setdefault(opened.key, list(opened.entries))
        self.last = None
        self._set_dirty(False)
        self.events.opened.emit(opened)
        self.events.history_changed.emit(self.entries())

    def entries(self) -> list[dict]:
        return list(self.history.get(self.key, [])) if self.opened else []

    def suggestions(self) -> list[str]:
        """The scene's own questions when it is a generated scene, else the engine's general ones."""
        from engines.textvqa.vqa_engine import suggested_questions

        sidecar = self.opened.sidecar if self.opened else None
        return [q["text"] for q in sidecar["questions"]] if sidecar else suggested_questions()

    # -- asking ------------------------------------------------------------------------------------------
    def question_problem(self, question: str) -> str | None:
        """Why ``question`` cannot be asked now (a sentence), or None."""
        if self.opened is None:
            return "Open an image first (or the sample scene)."
        if not question.strip():
            return "Type a question first."
        return None

    def request(self, question: str) -> dict[str, Any]:
        """The vqa-mclkd engine's request for ``question`` about the open image; ValueError when it cannot be asked."""
        problem = self.question_problem(question)
        if problem:
            raise ValueError(problem)
        return {"image_path": self.path, "question": question}

    def record_answer(self, result: dict) -> dict:
        """Keep the engine's answer as the last one and in the image's history (a repeated question moves to the
        end with its new answer); returns the history entry."""
        self.last = result
        entry = {"question": result["question"], "answer": result["answer"], "truth": result.get("truth"),
                 "correct": result.get("correct")}
        hist = self.history.setdefault(self.key, [])
        hist[:] = [h for h in hist if h["question"] != entry["question"]] + [entry]
        self._set_dirty(True)
        self.events.answered.emit(result)
        self.events.history_changed.emit(self.entries())
        return entry

    @property
    def reliable(self) -> bool:
        """False when the last answer's image is outside what the model knows (its headline says why)."""
        return bool(self.last is None or self.last.get("reliable", True))

    @property
    def checks(self) -> list:
        """The input checks (engines.core.checks.Check) of the last answer."""
        return list(self.last.get("checks", [])) if self.last else []

    # -- autosave ----------------------------------------------------------------------------------------
    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self.events.dirty_changed.emit(dirty)

    def autosave_payload(self) -> dict | None:
        if self.opened is None:
            return None
        return history_payload(self.entries())

    def save_autosave(self, writer) -> bool:
        """Queue the open image's history on ``writer`` (engines.core.autosave.AutosaveWriter; no disk I/O here)."""
        payload = self.autosave_payload()
        if payload is None:
            return False
        writer.save(self.history_file, payload, schema=HISTORY_SCHEMA)
        self._set_dirty(False)
        return True
