"""One autosave service for every workspace: where an autosave lives, how it is read back, how it is written.

* :func:`autosave_path` - one keying rule: ``<user data dir>/autosave/<kind>/<sha256 of the key>.json``, the key
  being the resolved source path, or ``content_key`` when the edits belong to content rather than to a file.
* :func:`load_autosave` - reads ``{"schema": n, "data": {...}}``; a damaged file, or data that the caller's
  ``validate`` refuses, is renamed ``<name>.damaged-<timestamp>``; one written by a newer version of the
  workstation is renamed ``<name>.newer-<timestamp>`` (kept for that version, not damaged). Either way the
  caller gets one plain sentence to show and the source opens without the autosave; reading never raises.
* :class:`AutosaveWriter` - one background thread, debounced per path; writes go through a temporary file,
  fsync, a rename and an fsync of the folder, so a killed process leaves the previous autosave or the new
  one, never half of one. A per-path sequence number keeps a stale write from ever replacing a newer one.
* :func:`autosave_dir` - the same key as a folder, for a workspace whose edits are several files.

Qt-free: views call ``save`` from the GUI thread (it only serialises and queues) and read ``errors`` or pass
``on_error`` to hear about failed writes.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from engines.core.atomic import atomic_write_bytes, clean_stale_temps
from engines.core.paths import data_dir

log = logging.getLogger(__name__)

AUTOSAVE_SCHEMA_KEY = "schema"
AUTOSAVE_DATA_KEY = "data"

__all__ = ["AUTOSAVE_SCHEMA_KEY", "AutosaveWriter", "LoadedAutosave", "autosave_dir", "autosave_path",
           "autosave_root", "array_autosave_path", "clean_stale_temps", "encode_array_autosave",
           "load_array_autosave", "load_autosave", "set_aside"]


def autosave_root() -> Path:
    """``<user data dir>/autosave`` (created)."""
    root = data_dir() / "autosave"
    root.mkdir(parents=True, exist_ok=True)
    return root


def autosave_path(kind: str, source: str | os.PathLike, *, content_key: str | None = None) -> Path:
    """Where the autosave of ``source`` for workspace ``kind`` lives (the folder is not created).

    The key is ``content_key`` when given (edits that follow content, e.g. an image's digest), else the
    resolved path of ``source``, so the same file reached by two spellings shares one autosave.
    """
    if not kind or not isinstance(kind, str) or any(ch in kind for ch in "/\\:") or kind in {".", ".."}:
        raise ValueError(f"autosave kind must be a plain folder name, not {kind!r}")
    if content_key is not None:
        key = content_key.encode("utf-8", "surrogatepass")
    else:
        key = os.fsencode(Path(source).expanduser().resolve())
    return autosave_root() / kind / f"{hashlib.sha256(key).hexdigest()}.json"


def autosave_dir(kind: str, source: str | os.PathLike, *, content_key: str | None = None) -> Path:
    """The folder for a workspace whose autosave is several files (one per label layer, say): the same key as
    :func:`autosave_path`, without the suffix (the folder is not created). Write each file in it with
    :meth:`AutosaveWriter.save` or :meth:`AutosaveWriter.save_arrays` so each carries its schema."""
    return autosave_path(kind, source, content_key=content_key).with_suffix("")


@dataclass(frozen=True)
class LoadedAutosave:
    """What :func:`load_autosave` found: the cleaned data (or None), a sentence for the user, the set-aside file."""

    data: Any | None
    notice: str | None
    set_aside: Path | None


NEWER_TAG = "newer"
DAMAGED_TAG = "damaged"


def set_aside(path: Path, tag: str = DAMAGED_TAG) -> Path | None:
    """Rename ``path`` to ``<name>.<tag>-<YYYYmmdd-HHMMSS>`` (never over an earlier one); None when it cannot be."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        target = path.with_name(f"{path.name}.{tag}-{stamp}" + (f"-{n}" if n > 1 else ""))
        if not target.exists():
            break
    try:
        os.replace(path, target)
    except OSError as exc:
        log.warning("could not set aside %s: %s", path, exc)
        return None
    return target


class _Refused(Exception):
    """Why an autosave is set aside: the sentence's reason, a detail for the log, and the tag of its new name."""

    def __init__(self, reason: str, detail: str = "", tag: str = DAMAGED_TAG):
        super().__init__(reason)
        self.reason, self.detail, self.tag = reason, detail, tag


def _check_schema(found: Any, schema: int) -> None:
    if not isinstance(found, int) or isinstance(found, bool) or found < 0:
        raise _Refused("it is not an autosave this workstation wrote", f"schema: {str(found)[:80]}")
    if found > schema:
        raise _Refused(f"it was written by a newer version of the workstation (format {found}, this one reads "
                       f"{schema}); it was kept for that version", tag=NEWER_TAG)


def _validated(validate: Callable[..., Any], *args: Any) -> Any:
    try:
        return validate(*args)
    except (ValueError, TypeError, KeyError) as exc:
        raise _Refused("its contents are damaged", f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever a validator trips over, the source still opens
        log.exception("the autosave validator %r failed", validate)
        raise _Refused("its contents could not be checked", f"{type(exc).__name__}: {exc}") from None


def _load(path: str | os.PathLike, source_name: str | None, parse: Callable[[bytes], Any]) -> LoadedAutosave:
    """Read ``path`` and ``parse`` its bytes (raising :class:`_Refused`); a refused file is set aside."""
    path = Path(path)
    name = source_name or path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LoadedAutosave(None, None, None)
    except OSError as exc:
        log.warning("could not read the autosave %s: %s", path, exc)
        return LoadedAutosave(None, f"The saved edits for {name} could not be read "
                                    f"({exc.strerror or exc}); the file opens without them.", None)
    try:
        return LoadedAutosave(parse(raw), None, None)
    except _Refused as refused:
        reason, detail, tag = refused.reason, refused.detail, refused.tag
    del raw
    moved = set_aside(path, tag)
    log.warning("autosave %s for %s refused (%s) %s; set aside as %s", path, name, reason, detail, moved)
    if moved is None:
        return LoadedAutosave(None, f"The saved edits for {name} could not be read ({reason}) and could not be "
                                    f"set aside; the file opens without them.", None)
    return LoadedAutosave(None, f"The saved edits for {name} could not be read ({reason}); they were set aside "
                                f"as {moved.name} and the file opens without them.", moved)


def load_autosave(path: str | os.PathLike, *, schema: int, validate: Callable[[dict], Any],
                  source_name: str | None = None) -> LoadedAutosave:
    """Read the autosave at ``path``; ``validate(payload)`` returns the cleaned data or raises.

    A missing file gives ``LoadedAutosave(None, None, None)``. Unreadable JSON, a file that is not an
    autosave, or ``validate`` raising set the file aside as ``<name>.damaged-<YYYYmmdd-HHMMSS>``; a schema newer
    than ``schema`` sets it aside as ``<name>.newer-<YYYYmmdd-HHMMSS>``. Either way a plain sentence naming
    ``source_name`` (the file the edits belong to; the autosave's own name when not given) comes back in
    ``notice``; this never raises for what the file holds. An older schema is handed to ``validate`` (it may
    migrate). Runs file I/O: call it off the GUI thread.
    """
    def parse(raw: bytes) -> Any:
        try:
            envelope = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise _Refused("the file is damaged", f"not JSON: {exc!r}") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get(AUTOSAVE_DATA_KEY), dict):
            raise _Refused("it is not an autosave this workstation wrote", f"envelope: {str(envelope)[:200]}")
        _check_schema(envelope.get(AUTOSAVE_SCHEMA_KEY), schema)
        return _validated(validate, envelope[AUTOSAVE_DATA_KEY])

    return _load(path, source_name, parse)


# Sequence numbers are process-wide, so two writers of one path (two views of one file) still cannot let an
# older snapshot replace a newer one.
_seq_lock = threading.Lock()
_next_seq: dict[Path, int] = {}
_written_seq: dict[Path, int] = {}
_path_locks: dict[Path, threading.Lock] = {}


def _take_seq(path: Path) -> int:
    with _seq_lock:
        _next_seq[path] = n = _next_seq.get(path, 0) + 1
        _path_locks.setdefault(path, threading.Lock())
        return n


def _write_in_order(path: Path, seq: int, blob: bytes) -> bool:
    """Write ``blob`` unless a newer snapshot of ``path`` is already on disk; True when written."""
    with _seq_lock:
        lock = _path_locks.setdefault(path, threading.Lock())
    with lock:
        if _written_seq.get(path, 0) >= seq:
            return False
        atomic_write_bytes(path, blob)
        _written_seq[path] = seq
        return True


@dataclass
class _Pending:
    seq: int
    blob: bytes | Callable[[], bytes]  # the bytes, or what makes them on the writer thread
    due: float
    first_queued: float


class AutosaveWriter:
    """Debounced background writer of autosaves (one thread, started on the first save).

    ``save`` serialises the payload at once (later edits of the caller's dict cannot race the write) and
    queues it; a later save of the same path replaces a pending one. A path saved again and again is still
    written at least every ``max(2 s, 4 x delay)``. ``flush`` writes everything pending now; ``close`` flushes
    and stops the thread. Failed writes become plain sentences in ``errors``, in the log, and are passed to
    ``on_error`` (called on the writer thread).
    """

    def __init__(self, *, on_error: Callable[[str], None] | None = None):
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: dict[Path, _Pending] = {}
        self._busy = 0  # writes in progress
        self._thread: threading.Thread | None = None
        self._closed = False
        self._errors: list[str] = []

    @property
    def errors(self) -> list[str]:
        with self._cond:
            return list(self._errors)

    def save(self, path: str | os.PathLike, payload: dict, *, schema: int, delay: float = 0.5) -> None:
        """Queue ``payload`` to be written to ``path`` as ``{"schema": schema, "data": payload}`` after ``delay`` s."""
        if not isinstance(payload, dict):
            raise TypeError(f"an autosave payload must be a dict, not {type(payload).__name__}")
        blob = json.dumps({AUTOSAVE_SCHEMA_KEY: int(schema), AUTOSAVE_DATA_KEY: payload},
                          ensure_ascii=False, allow_nan=False, indent=1).encode("utf-8")
        self._queue(Path(path), blob, delay)

    def save_arrays(self, path: str | os.PathLike, arrays: dict, *, schema: int, meta: dict | None = None,
                    delay: float = 0.5, copy: bool = True) -> None:
        """Queue numpy ``arrays`` (and JSON-able ``meta``) to be written to ``path`` as an .npz read back by
        :func:`load_array_autosave`; same debouncing and ordering as :meth:`save` (for data too large for JSON).

        The arrays are checked and copied now (pass ``copy=False`` when they already are a snapshot nobody
        edits) and packed into the .npz on the writer thread, so a large layer costs the caller one memcpy."""
        import numpy as np

        snapshot = {name: (np.array(a, copy=True) if copy else np.asarray(a)) for name, a in arrays.items()}
        header = _array_header(snapshot, schema, meta)
        self._queue(Path(path), lambda: _pack_arrays(snapshot, header), delay)

    def _queue(self, path: Path, blob: bytes | Callable[[], bytes], delay: float) -> None:
        seq = _take_seq(path)
        now = time.monotonic()
        with self._cond:
            if self._closed:
                raise RuntimeError("this AutosaveWriter is closed")
            old = self._pending.get(path)
            first = old.first_queued if old else now
            due = min(now + max(delay, 0.0), first + max(2.0, 4 * delay))
            self._pending[path] = _Pending(seq, blob, due, first)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="autosave-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Write every pending save now; True when all were written (or failed and were reported) in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for item in self._pending.values():
                item.due = 0.0
            self._cond.notify_all()
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return not (self._pending or self._busy)
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the thread; later saves raise RuntimeError. True when everything was written."""
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return done

    def _report(self, message: str, detail: str) -> None:
        log.error("%s (%s)", message, detail)
        with self._cond:
            self._errors.append(message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # noqa: BLE001 - a broken listener must not stop autosaving
                log.exception("autosave error listener failed")

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed and not self._pending:
                        return
                    now = time.monotonic()
                    ready = [p for p, item in self._pending.items() if item.due <= now]
                    if ready:
                        break
                    wait = min((item.due for item in self._pending.values()), default=None)
                    self._cond.wait(None if wait is None else max(wait - now, 0.0))
                batch = [(p, self._pending.pop(p)) for p in ready]
                self._busy += 1
            try:
                for path, item in batch:
                    try:
                        _write_in_order(path, item.seq, item.blob() if callable(item.blob) else item.blob)
                    except OSError as exc:
                        self._report(f"Your edits could not be autosaved to {path} "
                                     f"({exc.strerror or exc}); they are still open, but not saved.", repr(exc))
                    except Exception as exc:  # noqa: BLE001 - packing failed: report it, keep the thread alive
                        self._report(f"Your edits could not be autosaved to {path} ({type(exc).__name__}); "
                                     f"they are still open, but not saved.", repr(exc))
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()


# -- a compact form for large payloads: numpy arrays in an .npz beside the JSON -----------------------------------
ARRAY_HEADER = "__autosave__"


def array_autosave_path(path: str | os.PathLike) -> Path:
    """The .npz beside an autosave's JSON path (``autosave_path(...)``)."""
    return Path(path).with_suffix(".npz")


def _array_header(arrays: dict, schema: int, meta: dict | None) -> bytes:
    if ARRAY_HEADER in arrays:
        raise ValueError(f"{ARRAY_HEADER} is a reserved array name")
    for name, a in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names must be non-empty strings, not {name!r}")
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects; an autosave is read back without pickle")
    return json.dumps({AUTOSAVE_SCHEMA_KEY: int(schema), "meta": meta or {}}, ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _pack_arrays(arrays: dict, header: bytes) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **{ARRAY_HEADER: np.frombuffer(header, np.uint8)}, **arrays)
    return buf.getvalue()


def encode_array_autosave(arrays: dict, *, schema: int, meta: dict | None = None) -> bytes:
    """An uncompressed .npz of ``arrays`` (no object arrays: it is read without pickle) with the schema and
    ``meta`` as a JSON header array."""
    import numpy as np

    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    return _pack_arrays(arrays, _array_header(arrays, schema, meta))


def load_array_autosave(path: str | os.PathLike, *, schema: int, validate: Callable[[dict, dict], Any],
                        source_name: str | None = None) -> LoadedAutosave:
    """Read an .npz written by :meth:`AutosaveWriter.save_arrays`; ``validate(arrays, meta)`` returns the data or
    raises. The same rules as :func:`load_autosave`: missing gives ``LoadedAutosave(None, None, None)``; a
    damaged file or refused contents are set aside as ``<name>.damaged-<time>``, a newer schema as
    ``<name>.newer-<time>``, with one sentence. Never unpickles. Runs file I/O: call it off the GUI thread."""
    import io
    import zipfile

    import numpy as np

    def parse(raw: bytes) -> Any:
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            header = json.loads(arrays.pop(ARRAY_HEADER).tobytes().decode("utf-8"))
            if not isinstance(header, dict) or not isinstance(header.get("meta"), dict):
                raise KeyError("no header")
        except (OSError, KeyError, ValueError, TypeError, EOFError, AttributeError, RecursionError,
                zipfile.BadZipFile) as exc:
            raise _Refused("the file is damaged", f"{type(exc).__name__}: {exc}") from None
        _check_schema(header.get(AUTOSAVE_SCHEMA_KEY), schema)
        return _validated(validate, arrays, header["meta"])

    return _load(path, source_name, parse)
