"""Logging survives file names that are not UTF-8, and a log folder that cannot be written."""
from __future__ import annotations

import logging
import os

import pytest

from app import logsetup


@pytest.fixture
def fresh_logging(monkeypatch):
    monkeypatch.setattr(logsetup, "_configured", False)
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield root
    for h in root.handlers:
        if h not in before:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_a_non_utf8_file_name_reaches_the_log_file(fresh_logging, isolated_home, capsys):
    logsetup.configure_logging(console=False)
    odd = os.fsdecode(b"/data/scan-\xff.dcm")  # what os.listdir gives for a name that is not UTF-8
    logging.getLogger("engines.test").warning("could not read %s", odd)
    logging.getLogger("engines.test").warning("the next line is still written")
    for h in fresh_logging.handlers:
        h.flush()
    text = (isolated_home / "logs" / logsetup.LOG_NAME).read_text(encoding="utf-8")
    assert "could not read /data/scan-\\udcff.dcm" in text
    assert "the next line is still written" in text
    assert "Logging error" not in capsys.readouterr().err


def test_a_non_utf8_file_name_on_the_console(fresh_logging, capsys):
    logsetup.configure_logging(console=True)
    logging.getLogger("engines.test").warning("bad name %s", os.fsdecode(b"x\xfey"))
    err = capsys.readouterr().err
    assert "bad name x\\udcfey" in err and "Logging error" not in err


def test_an_unwritable_log_folder_falls_back_to_the_console(fresh_logging, monkeypatch, capsys):
    def refuse():
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(logsetup, "log_dir", refuse)
    logsetup.configure_logging(console=False)
    err = capsys.readouterr().err
    assert "The log file could not be opened (Permission denied)" in err
