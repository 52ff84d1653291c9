"""The shared autosave service: keying, reading back (and setting aside damage), ordered durable writes."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from engines.core import autosave as autosave_mod
from engines.core.atomic import TEMP_MARKER, atomic_path, clean_stale_temps
from engines.core.autosave import AUTOSAVE_SCHEMA_KEY, AutosaveWriter, autosave_dir, autosave_path, load_autosave

REPO = Path(__file__).resolve().parents[2]


def _items(payload: dict) -> list:
    if "boom" in payload:
        raise AttributeError("a validator bug, not a damaged file")
    items = payload["items"]
    if not isinstance(items, list):
        raise TypeError("items is not a list")
    return items


# -- keying -------------------------------------------------------------------------------------------------
def test_autosave_path_is_one_rule_for_every_kind(tmp_path, isolated_home):
    src = tmp_path / "scan.nii.gz"
    src.write_bytes(b"x")
    p = autosave_path("radiology", src)
    assert p.parent == Path(isolated_home) / "data" / "autosave" / "radiology"
    assert p.suffix == ".json" and len(p.stem) == 64
    # the same file reached through another spelling shares the autosave
    (tmp_path / "sub").mkdir()
    assert autosave_path("radiology", tmp_path / "sub" / ".." / "scan.nii.gz") == p
    assert autosave_path("pathology", src).name == p.name and autosave_path("pathology", src) != p
    # a workspace whose autosave is several files gets the same key as a folder
    assert autosave_dir("radiology", src) == p.with_suffix("")
    by_content = autosave_path("textvqa", src, content_key="abc")
    assert by_content != autosave_path("textvqa", src) and by_content == autosave_path("textvqa", "x", content_key="abc")
    # a non-UTF-8 file name still gets a key
    odd = Path(os.fsdecode(b"/tmp/\xffscan.dcm"))
    assert autosave_path("radiology", odd) != p
    with pytest.raises(ValueError):
        autosave_path("../evil", src)


# -- reading back -------------------------------------------------------------------------------------------
def test_missing_autosave_is_no_data_and_no_notice(tmp_path):
    loaded = load_autosave(tmp_path / "none.json", schema=1, validate=_items)
    assert (loaded.data, loaded.notice, loaded.set_aside) == (None, None, None)


def test_written_autosave_reads_back_through_validate(tmp_path):
    target = tmp_path / "a.json"
    writer = AutosaveWriter()
    try:
        writer.save(target, {"items": [1, 2, 3]}, schema=2, delay=0.0)
        assert writer.flush(5.0)
    finally:
        writer.close()
    stored = json.loads(target.read_text())
    assert stored == {AUTOSAVE_SCHEMA_KEY: 2, "data": {"items": [1, 2, 3]}}
    loaded = load_autosave(target, schema=2, validate=_items)
    assert loaded.data == [1, 2, 3] and loaded.notice is None
    # an older format is handed to validate too (it may migrate)
    assert load_autosave(target, schema=3, validate=_items).data == [1, 2, 3]


@pytest.mark.parametrize("content, reason, tag", [
    (b'{"schema": 1, "data": {"items": [1, 2', "damaged", "damaged"),
    (b"\xff\xfe not text", "damaged", "damaged"),
    (b"[1, 2, 3]", "not an autosave", "damaged"),
    (b'{"schema": true, "data": {}}', "not an autosave", "damaged"),
    (b'{"schema": -1, "data": {"items": []}}', "not an autosave", "damaged"),
    (b'{"schema": 1, "data": [1]}', "not an autosave", "damaged"),
    (b'{"schema": 9, "data": {"items": []}}', "newer version", "newer"),
    (b'{"schema": 1, "data": {"items": 5}}', "contents are damaged", "damaged"),
    (b'{"schema": 1, "data": {"other": []}}', "contents are damaged", "damaged"),
    (b'{"schema": 1, "data": {"items": [1], "boom": 1}}', "could not be checked", "damaged"),
])
def test_damaged_autosave_is_set_aside_with_one_plain_sentence(tmp_path, content, reason, tag):
    target = tmp_path / "edits.json"
    target.write_bytes(content)
    loaded = load_autosave(target, schema=1, validate=_items, source_name="scan.nii.gz")
    assert loaded.data is None
    assert not target.exists()
    assert loaded.set_aside is not None and loaded.set_aside.read_bytes() == content
    assert loaded.set_aside.name.startswith(f"edits.json.{tag}-")
    stamp = loaded.set_aside.name.removeprefix(f"edits.json.{tag}-")
    assert len(stamp) == 15 and stamp[8] == "-" and stamp.replace("-", "").isdigit()
    assert loaded.notice.startswith("The saved edits for scan.nii.gz could not be read (")
    assert reason in loaded.notice
    assert loaded.set_aside.name in loaded.notice and loaded.notice.endswith("the file opens without them.")
    assert "Traceback" not in loaded.notice and "Error" not in loaded.notice
    # a second damaged file in the same second does not overwrite the first one set aside
    target.write_bytes(content)
    again = load_autosave(target, schema=1, validate=_items)
    assert again.set_aside != loaded.set_aside and loaded.set_aside.exists() and again.set_aside.exists()
    # and the next autosave of the source is written and read back normally
    writer = AutosaveWriter()
    writer.save(target, {"items": [7]}, schema=1, delay=0)
    assert writer.close()
    assert load_autosave(target, schema=1, validate=_items).data == [7]


@pytest.mark.parametrize("content, tag", [
    (b"PK\x03\x04 not really a zip", "damaged"),
    (None, "newer"),
])
def test_a_damaged_or_newer_array_autosave_is_set_aside_too(tmp_path, content, tag):
    import numpy as np

    from engines.core.autosave import encode_array_autosave, load_array_autosave

    target = tmp_path / "layers.npz"
    target.write_bytes(content if content is not None else
                       encode_array_autosave({"labels": np.zeros((2, 3), np.uint8)}, schema=5, meta={"n": 1}))
    loaded = load_array_autosave(target, schema=1, validate=lambda arrays, meta: arrays, source_name="ct.nrrd")
    assert loaded.data is None and not target.exists() and loaded.set_aside.name.startswith(f"layers.npz.{tag}-")
    assert "ct.nrrd" in loaded.notice and loaded.set_aside.name in loaded.notice
    # a good one round-trips its arrays and meta, without pickle; the arrays are the ones of save time
    writer = AutosaveWriter()
    labels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    writer.save_arrays(target, {"labels": labels}, schema=1, meta={"n": 2}, delay=30)
    labels[:] = 9  # an edit after the save belongs to the next autosave
    with pytest.raises(TypeError, match="without pickle"):
        writer.save_arrays(target, {"labels": np.array([object()])}, schema=1)
    assert writer.close()
    back = load_array_autosave(target, schema=1, validate=lambda arrays, meta: (arrays["labels"].tolist(), meta))
    assert back.notice is None and back.data == ([[0, 1, 2], [3, 4, 5]], {"n": 2})


# -- writing ------------------------------------------------------------------------------------------------
def test_later_saves_supersede_pending_ones(tmp_path, monkeypatch):
    writes: list[bytes] = []
    real = autosave_mod.atomic_write_bytes
    monkeypatch.setattr(autosave_mod, "atomic_write_bytes", lambda p, b: (writes.append(b), real(p, b))[1])
    target = tmp_path / "h.json"
    writer = AutosaveWriter()
    try:
        for i in range(20):
            writer.save(target, {"n": i}, schema=1, delay=0.5)
        assert writer.flush(5.0)
    finally:
        writer.close()
    assert len(writes) == 1
    assert json.loads(target.read_text())["data"] == {"n": 19}


def test_payload_is_snapshotted_at_save_time(tmp_path):
    target = tmp_path / "s.json"
    payload = {"items": [1]}
    writer = AutosaveWriter()
    try:
        writer.save(target, payload, schema=1, delay=0.2)
        payload["items"].append(2)  # the caller keeps editing its own state
        writer.flush()
    finally:
        writer.close()
    assert json.loads(target.read_text())["data"] == {"items": [1]}


def test_debounce_waits_then_writes_without_flush(tmp_path):
    target = tmp_path / "d.json"
    writer = AutosaveWriter()
    try:
        writer.save(target, {"n": 1}, schema=1, delay=0.3)
        time.sleep(0.05)
        assert not target.exists()  # still inside the debounce window
        deadline = time.monotonic() + 5
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert json.loads(target.read_text())["data"] == {"n": 1}
    finally:
        writer.close()


def test_a_stale_snapshot_never_overwrites_a_newer_one(tmp_path):
    target = tmp_path / "o.json"
    slow, fast = AutosaveWriter(), AutosaveWriter()
    try:
        slow.save(target, {"n": "older"}, schema=1, delay=30.0)  # queued first: lower sequence number
        fast.save(target, {"n": "newer"}, schema=1, delay=0.0)
        assert fast.flush()
        assert slow.flush()  # its write comes later, but it holds the older snapshot
    finally:
        slow.close()
        fast.close()
    assert json.loads(target.read_text())["data"] == {"n": "newer"}


def test_failed_writes_become_plain_errors_and_the_writer_keeps_going(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    heard: list[str] = []
    writer = AutosaveWriter(on_error=heard.append)
    try:
        writer.save(blocker / "x.json", {"n": 1}, schema=1, delay=0.0)
        assert writer.flush()
        writer.save(tmp_path / "ok.json", {"n": 2}, schema=1, delay=0.0)
        assert writer.flush()
    finally:
        writer.close()
    assert len(writer.errors) == 1 and heard == writer.errors
    assert writer.errors[0].startswith("Your edits could not be autosaved to ")
    assert "x.json" in writer.errors[0] and "Errno" not in writer.errors[0]
    assert json.loads((tmp_path / "ok.json").read_text())["data"] == {"n": 2}


def test_close_writes_what_is_pending_and_stops_the_thread(tmp_path):
    target = tmp_path / "c.json"
    before = {t.ident for t in threading.enumerate()}
    writer = AutosaveWriter()
    writer.save(target, {"n": 1}, schema=1, delay=60.0)
    assert writer.close()
    assert json.loads(target.read_text())["data"] == {"n": 1}
    assert {t.ident for t in threading.enumerate() if t.name == "autosave-writer"} <= before
    with pytest.raises(RuntimeError):
        writer.save(target, {"n": 2}, schema=1)
    with pytest.raises(TypeError):
        AutosaveWriter().save(target, [1, 2], schema=1)  # type: ignore[arg-type]


def test_payload_that_is_not_json_is_refused_at_save_time(tmp_path):
    writer = AutosaveWriter()
    try:
        with pytest.raises((TypeError, ValueError)):
            writer.save(tmp_path / "n.json", {"x": float("nan")}, schema=1)
        with pytest.raises(TypeError):
            writer.save(tmp_path / "n.json", {"x": object()}, schema=1)
    finally:
        writer.close()


# -- stale temporaries ---------------------------------------------------------------------------------------
def test_clean_stale_temps_removes_only_old_atomic_temporaries(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    stale = tmp_path / "deep" / "er" / f".scan.nii.gz{TEMP_MARKER}ab12cd_3.nii.gz"
    fresh = tmp_path / f".h.json{TEMP_MARKER}zz99zz99.json"
    keep = [tmp_path / ".hidden.json", tmp_path / "deep" / "scan.nii.gz", tmp_path / f"{TEMP_MARKER}x"]
    for p in [stale, fresh, *keep]:
        p.write_text("x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    removed = clean_stale_temps(tmp_path)
    assert removed == [stale] and not stale.exists() and fresh.exists() and all(p.exists() for p in keep)
    assert clean_stale_temps(tmp_path, older_than=0) == [fresh]
    assert clean_stale_temps(tmp_path / "missing") == []


def test_atomic_temporaries_carry_the_marker(tmp_path):
    with atomic_path(tmp_path / "out.nii.gz") as tmp:
        assert TEMP_MARKER in tmp.name and tmp.name.endswith(".nii.gz")
        assert autosave_mod.clean_stale_temps(tmp_path, older_than=0) == [tmp]  # what a restart would remove
        tmp.write_bytes(b"x")


# -- durability: SIGKILL at random points --------------------------------------------------------------------
# The payload of version n: its size changes with n, so a torn or mixed file cannot pass for a written one.
_PAYLOAD = textwrap.dedent("""
    import hashlib

    def payload(n):
        chunk = hashlib.sha256(str(n).encode()).hexdigest()
        return {"n": n, "body": chunk * (2000 + n * 7919 % 4000)}
""")

# One harness process imports the service once, then forks a writer for each run: the writer saves
# versions start+1, start+2, ... through an AutosaveWriter as fast as it can until the test SIGKILLs it.
# A writer whose harness is gone stops by itself, so a failed test leaves no process behind.
_HARNESS = _PAYLOAD + textwrap.dedent("""
    import os, sys
    from engines.core.autosave import AutosaveWriter

    target = sys.argv[1]
    harness = os.getpid()
    for line in sys.stdin:
        start = int(line)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            writer = AutosaveWriter()
            os.write(ready_w, b"x")
            n = start
            while os.getppid() == harness and n < start + 100000:
                n += 1
                writer.save(target, payload(n), schema=1, delay=0)
                writer.flush()
            os._exit(0)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
""")


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(signal, "SIGKILL"), reason="needs POSIX fork and SIGKILL")
def test_a_writer_killed_at_random_points_leaves_the_old_or_the_new_autosave(tmp_path):
    scope: dict = {}
    exec(_PAYLOAD, scope)
    payload = scope["payload"]

    def validate(d: dict) -> int:
        if d != payload(d["n"]):
            raise ValueError("not one of the written versions")
        return d["n"]

    target = tmp_path / "autosave" / "k.json"
    script = tmp_path / "harness.py"
    script.write_text(_HARNESS)
    first = AutosaveWriter()
    first.save(target, payload(0), schema=1, delay=0)
    assert first.close()
    rng = random.Random(20240614)
    harness = subprocess.Popen([sys.executable, str(script), str(target)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                               text=True)
    last, advanced, torn_writes, pid = 0, 0, 0, None
    try:
        for _run in range(40):
            harness.stdin.write(f"{last}\n")
            harness.stdin.flush()
            pid = int(harness.stdout.readline())
            time.sleep(rng.uniform(0.0, 0.06))
            os.kill(pid, signal.SIGKILL)
            assert harness.stdout.readline().strip() == "reaped"
            pid = None
            loaded = load_autosave(target, schema=1, validate=validate)
            # the previous autosave or a newer one, whole: parseable, the schema, exactly a written version
            assert loaded.notice is None and loaded.set_aside is None, loaded.notice
            assert loaded.data is not None and loaded.data >= last
            advanced += loaded.data > last
            last = loaded.data
            # a temporary left behind means the kill landed in the middle of a write
            torn_writes += len(clean_stale_temps(target.parent, older_than=0))
            assert [p.name for p in target.parent.iterdir()] == ["k.json"]
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        harness.stdin.close()
        harness.wait(10)
        harness.stdout.close()
    # the runs exercised both sides: writes that completed before a kill, and kills in the middle of one
    assert advanced >= 5, advanced
    assert torn_writes >= 1, torn_writes
    print(f"40 kills: {advanced} advanced the autosave, {torn_writes} interrupted a write; last version {last}")
