"""Atomic writes: a file is either the old one or the complete new one, never half written.

The temporary file lives beside the target and is named ``.<target name>.csi-tmp-<random><suffixes>``, so a
writer killed between creating it and renaming it leaves a file that :func:`clean_stale_temps` recognises
(and nothing else) when the workstation starts again.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

TEMP_MARKER = ".csi-tmp-"
# mkstemp's random part: 8 characters of [a-z0-9_]; whatever suffix the target had may follow it.
_TEMP_NAME = re.compile(r"^\..+" + re.escape(TEMP_MARKER) + r"[a-z0-9_]{8}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its rename is already durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` in one rename.

    Libraries that insist on writing to a path (SimpleITK, soundfile, pydicom) write to the yielded path.
    The temporary name keeps the target's suffix so such libraries pick the right format.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARKER}", suffix=suffix if suffix is not None else
                               "".join(target.suffixes), dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; an export should get the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_with(target: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def is_stale_temp_name(name: str) -> bool:
    """Whether ``name`` is the name :func:`atomic_path` gives its temporary files."""
    return bool(_TEMP_NAME.match(name))


def clean_stale_temps(root: str | os.PathLike, *, older_than: float = 120.0) -> list[Path]:
    """Remove temporary files that killed atomic writes left under ``root`` (recursively); return them.

    Only files named like :func:`atomic_path`'s temporaries and not modified for ``older_than`` seconds are
    removed, so a write still running in another workstation process keeps its file. A missing ``root`` is
    fine; a file that cannot be removed is logged and skipped.
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    cutoff = time.time() - older_than
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if not is_stale_temp_name(name):
                continue
            path = Path(folder) / name
            try:
                if path.is_symlink() or not path.is_file() or path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
            except OSError as exc:
                log.warning("could not remove the stale temporary file %s: %s", path, exc)
                continue
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by interrupted writes under %s", len(removed), root)
    return removed
