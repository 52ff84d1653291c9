"""Save dialogs that open where the user expects: the folder of the last export from that workspace, else
beside the source file, with a default name made from it (never the process's working folder)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

_last_dirs: dict[str, Path] = {}


def default_save_path(key: str, source: str | Path | None, name: str) -> Path:
    """The path a save dialog starts at for workspace ``key``: last export folder, else the source's folder."""
    folder = _last_dirs.get(key)
    if folder is None:
        folder = Path(source).expanduser().parent if source else Path.home()
    return folder / name


def ask_save_path(parent: QWidget, key: str, title: str, source: str | Path | None, name: str,
                  filters: str) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, str(default_save_path(key, source, name)), filters)
    if not path:
        return None
    _last_dirs[key] = Path(path).parent
    return Path(path)
