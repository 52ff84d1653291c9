"""Typed, versioned settings stored as JSON under the user config folder (QSettings holds only geometry)."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engines.core.atomic import atomic_write_text
from engines.core.paths import config_dir

log = logging.getLogger(__name__)
SETTINGS_VERSION = 1
MAX_RECENT = 12


@dataclass
class Settings:
    version: int = SETTINGS_VERSION
    recent_files: list[str] = field(default_factory=list)
    last_workspace: str = ""
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    show_tasks: bool = True
    show_messages: bool = True

    @staticmethod
    def path() -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> tuple["Settings", str]:
        """Return (settings, problem); a missing file is no problem, a corrupt one gives defaults and says so."""
        path = cls.path()
        if not path.exists():
            return cls(), ""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return cls(), f"settings file {path} was unreadable ({exc}); using defaults"
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        settings = cls(**values)
        if not isinstance(settings.recent_files, list):
            settings.recent_files = []
        settings.recent_files = [str(p) for p in settings.recent_files][:MAX_RECENT]
        settings.version = SETTINGS_VERSION
        return settings, ""

    def save(self) -> None:
        try:
            atomic_write_text(self.path(), json.dumps(asdict(self), indent=2) + "\n")
        except OSError as exc:
            log.error("could not save settings: %s", exc)

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).expanduser().resolve())
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]
