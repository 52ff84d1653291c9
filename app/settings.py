"""Typed, versioned settings stored as JSON under the user config folder (QSettings holds only geometry).

Every field is checked on load: a value of the wrong type or out of range falls back to that field's default
with one plain sentence (shown in Messages when the window opens, and logged), and the file is rewritten
valid. Keys this version does not know are kept, so a newer version's settings survive a run of this one.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from engines.core.atomic import atomic_write_text
from engines.core.device import DEVICE_PATTERN
from engines.core.paths import config_dir

log = logging.getLogger(__name__)
SETTINGS_VERSION = 1
MAX_RECENT = 12


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _device(value: Any) -> str:
    if not isinstance(value, str) or not DEVICE_PATTERN.match(value.strip().lower()):
        raise TypeError
    return value.strip().lower()


def _version(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError
    return value


# field name -> (checker returning the cleaned value or raising TypeError, what a valid value is)
_CHECKS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "version": (_version, "a version number"),
    "last_workspace": (_str, "a workspace name"),
    "device": (_device, "one of auto, cpu, cuda, cuda:N or mps"),
    "show_tasks": (_bool, "true or false"),
    "show_messages": (_bool, "true or false"),
}


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Settings:
    version: int = SETTINGS_VERSION
    recent_files: list[str] = field(default_factory=list)
    last_workspace: str = ""
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    show_tasks: bool = True
    show_messages: bool = True
    extra: dict = field(default_factory=dict, repr=False)  # keys of newer versions, written back untouched

    @staticmethod
    def path() -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> tuple["Settings", str]:
        """Return (settings, problem): ``load_with_problems`` with its sentences joined ("" when none)."""
        settings, problems = cls.load_with_problems()
        return settings, " ".join(problems)

    @classmethod
    def load_with_problems(cls) -> tuple["Settings", list[str]]:
        """Read the settings; every problem becomes one plain sentence and the file is rewritten valid.

        A missing file is no problem. An unreadable file is set aside as ``settings.json.damaged-<time>`` and
        defaults are used; a field with a wrong value gets its default.
        """
        path = cls.path()
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("it holds no settings object")
        except FileNotFoundError:
            return cls(), []
        except (OSError, ValueError, RecursionError) as exc:  # Unicode/JSONDecodeError are ValueErrors
            if isinstance(exc, OSError):
                reason = exc.strerror or "it could not be read"
            elif isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, RecursionError)):
                reason = "it is not valid JSON"
            else:
                reason = str(exc)
            log.warning("settings file %s unreadable: %r", path, exc)
            settings = cls()
            kept = ""
            if not isinstance(exc, OSError):
                aside = path.with_name(f"{path.name}.damaged-{datetime.now():%Y%m%d-%H%M%S}")
                try:
                    os.replace(path, aside)
                    kept = f" (the old file was kept as {aside.name})"
                except OSError as move_exc:
                    log.warning("could not set aside %s: %s", path, move_exc)
                settings.save()
            return settings, [f"The settings file {path} was unreadable ({reason}); "
                              f"using the default settings{kept}."]
        settings, problems = cls(), []
        defaults = cls()
        for name, value in raw.items():
            if name in _CHECKS:
                check, expected = _CHECKS[name]
                try:
                    setattr(settings, name, check(value))
                except TypeError:
                    problems.append(f"The setting \"{name}\" in {path} was {_shown(value)}, not {expected}; "
                                    f"using the default ({_shown(getattr(defaults, name))}).")
            elif name == "recent_files":
                if not isinstance(value, list):
                    problems.append(f"The setting \"recent_files\" in {path} was {_shown(value)}, not a list of "
                                    f"files; the recent files list starts empty.")
                    continue
                good = [p for p in value if isinstance(p, str) and p and "\0" not in p]
                if len(good) != len(value):
                    problems.append(f"{len(value) - len(good)} entr{'y' if len(value) - len(good) == 1 else 'ies'} "
                                    f"of \"recent_files\" in {path} {'was' if len(value) - len(good) == 1 else 'were'} "
                                    f"not a file name and {'was' if len(value) - len(good) == 1 else 'were'} dropped.")
                settings.recent_files = list(dict.fromkeys(good))[:MAX_RECENT]
            elif name != "extra":
                settings.extra[name] = value
        if settings.version > SETTINGS_VERSION:
            log.info("settings file %s is version %s; this version writes %s and keeps the keys it does not know",
                     path, settings.version, SETTINGS_VERSION)
        settings.version = max(settings.version, SETTINGS_VERSION)
        for p in problems:
            log.warning("%s", p)
        if problems:
            settings.save()
        return settings, problems

    def as_json(self) -> dict:
        data = {**self.extra}
        data.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"})
        return data

    def save(self) -> None:
        try:
            atomic_write_text(self.path(), json.dumps(self.as_json(), indent=2) + "\n")
        except (OSError, TypeError, ValueError) as exc:
            log.error("could not save settings to %s: %s", self.path(), exc)

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).expanduser().resolve())
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]
