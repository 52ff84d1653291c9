"""Input-contract checks: what an engine was made for, checked before inference, carried with every result.

Every engine that knows its input (modality, sequence, stain, pixel size, sample rate, scene type) runs cheap
checks from metadata and statistics before inference and attaches them to its result. The window shows a
warning as a banner and in Messages; ``csi-workstation run`` prints one line per warning, records the checks in
its summary, and refuses with ``--strict``. A refusal raises :class:`InputRefused` before any inference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

from engines.core.engine import EngineError

Status = Literal["passed", "warned", "refused"]


@dataclass(frozen=True)
class Check:
    """One contract check: its name (e.g. "stain"), its status and why, in a plain sentence."""

    name: str
    status: Status
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class InputRefused(EngineError):
    """The input fails the engine's contract; the message says why. ``checks`` holds every check made."""

    def __init__(self, message: str, checks: Iterable[Check] = ()) -> None:
        super().__init__(message)
        self.checks = list(checks)


@dataclass
class Checks:
    """The checks of one engine call, in the order they were made."""

    items: list[Check] = field(default_factory=list)

    def passed(self, name: str, reason: str = "") -> None:
        self.items.append(Check(name, "passed", reason))

    def warn(self, name: str, reason: str) -> None:
        self.items.append(Check(name, "warned", reason))

    def refuse(self, name: str, reason: str) -> None:
        """Record the refusal and raise :class:`InputRefused` with ``reason`` as the user's message."""
        self.items.append(Check(name, "refused", reason))
        raise InputRefused(reason, self.items)

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.items if c.status != "passed"]

    def as_list(self) -> list[dict[str, str]]:
        return [c.as_dict() for c in self.items]


def checks_of(result: Any) -> list[Check]:
    """The checks carried by a result: a ``checks`` attribute or key holding Checks, Check objects or dicts."""
    raw = getattr(result, "checks", None)
    if raw is None and isinstance(result, dict):
        raw = result.get("checks")
    if raw is None:
        return []
    if isinstance(raw, Checks):
        return list(raw.items)
    out: list[Check] = []
    for item in raw:
        if isinstance(item, Check):
            out.append(item)
        elif isinstance(item, dict) and "name" in item:
            out.append(Check(str(item["name"]), item.get("status", "warned"), str(item.get("reason", ""))))
    return out


def warning_lines(result: Any) -> list[str]:
    """One plain line per check that did not pass, for the CLI and the Messages area."""
    return [f"{c.name}: {c.reason}" for c in checks_of(result) if c.status != "passed"]
