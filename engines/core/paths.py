"""Where things live: bundled resources, user settings, user data, cache, logs.

``CSI_WORKSTATION_HOME`` (if set) puts every per-user folder under one directory, which tests use.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "csi-workstation"


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)  # a PyInstaller bundle
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def _user_dir(kind: str) -> Path:
    home = os.environ.get("CSI_WORKSTATION_HOME")
    if home:
        path = Path(home) / kind
    else:
        import platformdirs

        path = Path({
            "config": platformdirs.user_config_dir,
            "data": platformdirs.user_data_dir,
            "cache": platformdirs.user_cache_dir,
            "logs": platformdirs.user_log_dir,
        }[kind](APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _user_dir("config")


def data_dir() -> Path:
    return _user_dir("data")


def cache_dir() -> Path:
    return _user_dir("cache")


def log_dir() -> Path:
    return _user_dir("logs")


def user_models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def samples_dir() -> Path:
    path = data_dir() / "samples"
    path.mkdir(parents=True, exist_ok=True)
    return path
