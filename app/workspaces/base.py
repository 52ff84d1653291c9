"""The base class of workspace views, and the shell services a view may use (ShellContext)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from app.worker import TaskManager
from app.workspaces.manifest import WorkspaceManifest


@dataclass
class ShellContext:
    """What the shell offers every workspace. Views use it instead of reaching into the main window."""

    tasks: TaskManager
    notify: Callable[[str, str, str], None]  # (level, message, detail)
    add_recent: Callable[[Path], None]
    registry: Callable[[], object]  # -> engines.core.registry.EngineRegistry (discovered on first call)
    device: Callable[[], str]  # the device string engines should use ("auto" until resolved)


class WorkspaceView(QWidget):
    """A workspace's view. Subclasses implement ``open_path``; long work goes through ``context.tasks``."""

    opened = Signal(str)  # a path finished opening
    busy_changed = Signal(bool)

    def __init__(self, manifest: WorkspaceManifest, context: ShellContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.manifest = manifest
        self.context = context

    def open_path(self, path: Path) -> None:
        raise NotImplementedError

    def open_sample(self, sample_id: str | None = None) -> None:
        """Prepare (first time) and open one of the workspace's samples, off the GUI thread.

        With no ``sample_id`` the default sample opens; when it cannot be prepared (a real sample that setup
        has not fetched), the manifest's fallbacks are tried in order and the user is told why.
        """
        chosen = sample_id or self.manifest.sample
        if not chosen:
            self.context.notify("info", f"{self.manifest.title} has no bundled sample yet.", "")
            return
        from engines.core.engine import EngineError
        from engines.core.samples import sample_path

        candidates = [chosen] + ([] if sample_id else list(self.manifest.sample_fallbacks))

        def prepare(progress, cancel):
            first_error: EngineError | None = None
            for candidate in candidates:
                try:
                    return candidate, sample_path(candidate), first_error
                except EngineError as exc:
                    first_error = first_error or exc
            raise first_error  # type: ignore[misc]

        def opened(found) -> None:
            candidate, path, skipped = found
            if skipped is not None:
                self.context.notify("info", f"Opened the sample '{candidate}' instead: {skipped}", "")
            self.open_path(Path(path))

        self.context.tasks.submit(prepare, title=f"Preparing sample '{chosen}'", owner=f"{self.manifest.id}:sample",
                                  on_result=opened,
                                  on_error=lambda msg, detail: self.context.notify("error", msg, detail))

    def shutdown(self) -> None:
        """Called before the window closes; running tasks are cancelled by the shell."""


class PlaceholderView(WorkspaceView):
    """An honest empty workspace: says what it will hold, and describes any file opened into it."""

    def __init__(self, manifest: WorkspaceManifest, context: ShellContext, parent: QWidget | None = None) -> None:
        super().__init__(manifest, context, parent)
        title = QLabel(f"<h2>{manifest.title}</h2><p>{manifest.summary}.</p>")
        holds = "".join(f"<li>{h}</li>" for h in manifest.will_hold)
        body = QLabel(f"<p>This workspace is not built yet. It will hold:</p><ul>{holds}</ul>"
                      f"<p>Until then, files dropped here are described (what they are and what they "
                      f"contain) so you can check them.</p>")
        body.setWordWrap(True)
        body.setTextFormat(Qt.RichText)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Open or drop a file to see what it contains.")
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(body)
        if manifest.sample:
            button = QPushButton("Open the bundled sample")
            button.clicked.connect(self.open_sample)
            layout.addWidget(button, 0, Qt.AlignLeft)
        layout.addWidget(self.details, 1)

    def open_path(self, path: Path) -> None:
        from engines.core.inspect import inspect_path

        def done(report: dict) -> None:
            self.details.setPlainText(json.dumps(report, indent=2, default=str))
            self.context.add_recent(path)
            for finding in report.get("findings", []):
                self.context.notify("warning", f"{Path(path).name}: {finding}", "")
            self.opened.emit(str(path))

        self.context.tasks.submit(lambda progress, cancel: inspect_path(path), title=f"Reading {Path(path).name}",
                                  owner=self.manifest.id, on_result=done,
                                  on_error=lambda msg, detail: self.context.notify("error", msg, detail))
