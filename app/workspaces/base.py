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

    def open_sample(self) -> None:
        """Generate (first time) and open the workspace's bundled sample, off the GUI thread."""
        if not self.manifest.sample:
            self.context.notify("info", f"{self.manifest.title} has no bundled sample yet.", "")
            return
        from engines.core.samples import sample_path

        sample = self.manifest.sample
        self.context.tasks.submit(lambda progress, cancel: sample_path(sample),
                                  title=f"Preparing sample '{sample}'", owner=f"{self.manifest.id}:sample",
                                  on_result=lambda p: self.open_path(Path(p)),
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
