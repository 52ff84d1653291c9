"""Cohort batches on Dask: one engine over many inputs, resumable, one output per input, one summary table.

HistomicsTK's pattern: with no scheduler address an embedded ``LocalCluster`` sized to the machine (nothing for
the user to start); with ``tcp://host:port`` an existing cluster, same code. Each task gets *paths* and small
option dicts and returns a small dict; a worker process loads an engine once and keeps it (networks never
travel). Every output is written atomically by the engine's own writer, and a ``.done.json`` marker is written
after it, naming the engine, weights SHA-256, options and input content hash: a re-run skips exactly the
inputs whose marker matches, and a killed batch leaves no half output that counts as done.

Qt-free: the CLI (``csi-workstation batch``) and the GUI's Batch dock both call :func:`run_batch`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from engines.core.atomic import atomic_write_text
from engines.core.engine import CancelToken, EngineError

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".done.json"
SUMMARY_CSV = "batch-summary.csv"
SUMMARY_JSON = "batch-summary.json"
#: bump when the meaning of a marker changes: old markers then no longer match and inputs are redone
MARKER_VERSION = 1

BatchProgress = Callable[["BatchItem", int, int], None]  # (item just finished, finished so far, total)


@dataclass
class BatchItem:
    """One input's row in the summary."""

    input: str
    status: str  # "done", "skipped" (already done by an earlier run), "failed", "cancelled"
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    device: str = ""
    reason: str = ""
    checks: list[dict[str, str]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


@dataclass
class BatchSummary:
    engine: str
    out_dir: str
    scheduler: str
    workers: int
    items: list[BatchItem]
    seconds: float

    @property
    def failed(self) -> list[BatchItem]:
        return [i for i in self.items if i.status == "failed"]

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)


# -- identity of a job: what makes an earlier output still valid ---------------------------------------------------
def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, or of a folder's relative names and bytes (sorted), streamed."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            h.update(os.fsencode(f.relative_to(path)))
            h.update(b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def weights_sha256(engine) -> str:
    """The SHA-256 of the engine's weights from its verified card, "" for a classical engine."""
    name = engine.info().weights
    if not name:
        return ""
    from engines.core.weights import WeightsStore

    return WeightsStore.default().card(name).sha256


def job_key(engine_id: str, weights: str, options: Mapping[str, Any], input_sha: str) -> str:
    blob = json.dumps({"v": MARKER_VERSION, "engine": engine_id, "weights": weights,
                       "options": {k: options[k] for k in sorted(options)}, "input": input_sha},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def output_dir_for(out_dir: Path, input_path: Path) -> Path:
    """One folder per input, named for it; the path hash keeps two inputs called 'series' apart."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", input_path.name.split(".")[0] or "input")[:60]
    tag = hashlib.sha1(os.fsencode(input_path.resolve())).hexdigest()[:8]
    return out_dir / f"{stem}-{tag}"


def _marker(folder: Path) -> Path:
    return folder / f"batch{MARKER_SUFFIX}"


def already_done(folder: Path, key: str) -> dict | None:
    """The marker of an earlier run for the same job, if its outputs are all still there."""
    marker = _marker(folder)
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    outputs = data.get("outputs") or []
    if not outputs or not all((folder / o).exists() for o in outputs):
        return None
    return data


# -- the task a worker runs -------------------------------------------------------------------------------
_ENGINES: dict[tuple[str, str], Any] = {}
_ENGINES_LOCK = threading.Lock()


def _worker_device(preferred: str | None) -> str:
    """The device for this worker: the explicit choice, else with several GPUs one per worker, else resolved."""
    from engines.core.device import resolve_device

    if preferred:
        return resolve_device(preferred).device
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no torch or a broken driver: the resolver says why
        n = 0
    if n > 1:
        try:
            from distributed import get_worker

            name = str(get_worker().name)
        except (ImportError, ValueError):
            name = str(os.getpid())
        index = int(name) if name.isdigit() else int(hashlib.sha1(name.encode()).hexdigest(), 16)
        return f"cuda:{index % n}"
    return resolve_device(None).device


def _engine_on_worker(engine_id: str, device: str):
    """Load each engine once per worker process and keep it (models never travel between processes)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get((engine_id, device))
        if engine is None:
            from engines.core.registry import EngineRegistry

            engine = EngineRegistry.discover().get(engine_id)
            _ENGINES[(engine_id, device)] = engine
        return engine


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, EngineError) else f"{type(exc).__name__}: {text}"


def run_one(engine_id: str, input_path: str, out_dir: str, options: Mapping[str, Any], key: str,
            device: str | None = None, strict: bool = False) -> dict:
    """Run one input through the engine and write its output; returns a small dict (never arrays)."""
    from engines.core.checks import InputRefused, checks_of
    from engines.core.runner import run_engine

    started = time.perf_counter()
    src = Path(input_path)
    folder = output_dir_for(Path(out_dir), src)
    row: dict[str, Any] = {"input": str(src), "status": "failed", "outputs": [], "device": "", "reason": "",
                           "checks": [], "findings": []}
    # one torch thread per worker (CSI_BATCH_THREADS): the workers already share the cores, and the engines'
    # own thread policy (engines.core.threads) would otherwise give each worker every idle core at each call
    threads = str(max(1, int(os.environ.get("CSI_BATCH_THREADS", "1"))))
    os.environ.setdefault("CSI_TORCH_THREADS", threads)
    try:
        import torch

        torch.set_num_threads(int(os.environ["CSI_TORCH_THREADS"]))
    except (ImportError, ValueError):
        pass
    try:
        dev = _worker_device(device)
        row["device"] = dev
        engine = _engine_on_worker(engine_id, dev)
        request = dict(engine.request_from_paths([src]))
        request.update(options)
        result = run_engine(engine, request, device=dev, cancel=CancelToken())
        checks = [c.as_dict() for c in checks_of(result)]
        findings = [str(f) for f in (getattr(result, "findings", None) or
                                     (result.get("findings") if isinstance(result, dict) else None) or [])]
        row["checks"], row["findings"] = checks, findings
        if strict and (findings or any(c["status"] != "passed" for c in checks)):
            first = next((f"{c['name']}: {c['reason']}" for c in checks if c["status"] != "passed"),
                         findings[0] if findings else "")
            raise EngineError(f"refused under --strict: {first}")
        folder.mkdir(parents=True, exist_ok=True)
        written = engine.write_result(result, folder / engine.default_output_name())
        outputs = [str(Path(p).resolve().relative_to(folder.resolve())) for p in written]
        row.update(status="done", outputs=[str(folder / o) for o in outputs])
        atomic_write_text(_marker(folder), json.dumps({
            "key": key, "engine": engine_id, "input": str(src), "outputs": outputs, "device": dev,
            "checks": checks, "findings": findings, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    except InputRefused as exc:
        row["reason"] = _one_line(exc)
        row["checks"] = [c.as_dict() for c in exc.checks]
    except Exception as exc:  # noqa: BLE001 - one bad input fails alone, named in the summary
        row["reason"] = _one_line(exc)
        if isinstance(exc, EngineError):
            log.info("batch %s: %s failed: %s", engine_id, src, exc)
        else:
            log.error("batch %s: %s failed", engine_id, src, exc_info=True)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


# -- the driver -------------------------------------------------------------------------------------------
def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Inputs as given, with folders opened up the way a cohort is stored.

    A folder of sub-folders only (one per study) gives each sub-folder; a folder of DICOM files is one series;
    any other folder gives its files (recordings, slides, volumes), one input each. Hidden entries are skipped.
    """
    from engines.core.filetypes import classify

    out: list[Path] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if not p.is_dir():
            out.append(p)
            continue
        children = sorted(c for c in p.iterdir() if not c.name.startswith("."))
        files = [c for c in children if c.is_file()]
        if not files:
            out.extend(c for c in children if c.is_dir())
        elif classify(p) == "dicom-folder" and _one_series(files):
            out.append(p)
        else:
            out.extend(files)
    return out


def _one_series(files: list[Path], limit: int = 64) -> bool:
    """True when the files are slices of one DICOM series (same SeriesInstanceUID), judged from headers only."""
    import pydicom

    uids = set()
    for f in files[:limit]:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except Exception:  # noqa: BLE001 - a non-DICOM file: the folder is a set of inputs, not one series
            if f.name.upper() == "DICOMDIR":
                continue
            return False
        uids.add(str(ds.get("SeriesInstanceUID", "")))
    return len(uids) == 1 and len(files) > 1


def _client(scheduler: str | None, workers: int | None):
    """(client, cluster or None, description). An unreachable address is one plain EngineError."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise EngineError("batch runs need Dask distributed (pip install 'dask[distributed]')") from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout=os.environ.get("CSI_SCHEDULER_TIMEOUT", "5s"))
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"could not reach the Dask scheduler at {scheduler}: {exc}. Start one with "
                              f"'dask scheduler' and 'dask worker {scheduler}', or leave out --scheduler "
                              f"to run on this machine.") from exc
        n = len(client.scheduler_info().get("workers", {}))
        return client, None, f"{scheduler} ({n} worker{'s' if n != 1 else ''})"
    n = workers or max(1, min(4, (os.cpu_count() or 1)))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster, f"local ({n} worker{'s' if n != 1 else ''})"


def run_batch(engine_id: str, inputs: Sequence[str | Path], out_dir: str | Path, *,
              options: Mapping[str, Any] | None = None, scheduler: str | None = None, workers: int | None = None,
              device: str | None = None, strict: bool = False, progress: BatchProgress | None = None,
              cancel: CancelToken | None = None) -> BatchSummary:
    """Run ``engine_id`` on every input; skip those already done with the same engine, weights, options and
    input bytes; write the summary (CSV and JSON) under ``out_dir`` atomically. Never raises for one input."""
    from engines.core.registry import EngineRegistry

    started = time.perf_counter()
    options = dict(options or {})
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    registry = EngineRegistry.discover()
    if engine_id not in registry:
        raise EngineError(f"no engine '{engine_id}' (known: {', '.join(registry.ids())})")
    engine = registry.get(engine_id)
    engine_id = engine.id
    weights = weights_sha256(engine)
    paths = expand_inputs(inputs)
    if not paths:
        raise EngineError("no inputs: name files or folders to run the engine on")

    items: dict[str, BatchItem] = {}
    todo: list[tuple[Path, str]] = []
    for p in paths:
        if not p.exists():
            items[str(p)] = BatchItem(str(p), "failed", reason=f"{p}: no such file or folder")
            continue
        try:
            key = job_key(engine_id, weights, options, content_hash(p))
        except OSError as exc:
            items[str(p)] = BatchItem(str(p), "failed", reason=f"{p}: cannot be read ({exc.strerror or exc})")
            continue
        done = already_done(output_dir_for(out, p), key)
        if done is not None:
            folder = output_dir_for(out, p)
            items[str(p)] = BatchItem(str(p), "skipped", [str(folder / o) for o in done["outputs"]],
                                      device=str(done.get("device", "")), checks=list(done.get("checks", [])),
                                      findings=list(done.get("findings", [])), reason="already done")
        else:
            todo.append((p, key))
    total = len(paths)
    finished = len(items)
    for item in list(items.values()):
        if progress:
            progress(item, finished, total)

    description = "none needed"
    if todo or scheduler:  # a given address is checked even when nothing is left to do
        client, cluster, description = _client(scheduler, workers)
        try:
            from distributed import wait

            futures = {client.submit(run_one, engine_id, str(p), str(out), options, key, device, strict,
                                     key=f"csi-{engine_id}-{key[:16]}", pure=False): p for p, key in todo}
            pending = set(futures)
            while pending:
                if cancel is not None and cancel.cancelled:
                    client.cancel(list(pending))
                    break
                try:
                    ready, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                for future in ready:
                    p = futures[future]
                    try:
                        row = future.result()
                        item = BatchItem(**{k: row[k] for k in BatchItem.__dataclass_fields__ if k in row})
                    except Exception as exc:  # noqa: BLE001 - a worker that died takes only its input with it
                        item = BatchItem(str(p), "failed",
                                         reason=f"the worker running it stopped: {_one_line(exc)}")
                    items[str(p)] = item
                    finished += 1
                    if progress:
                        progress(item, finished, total)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    for p, _key in todo:
        items.setdefault(str(p), BatchItem(str(p), "cancelled", reason="cancelled before it ran"))
    ordered = [items[str(p)] for p in paths]
    summary = BatchSummary(engine_id, str(out), description, workers or 0, ordered,
                           round(time.perf_counter() - started, 3))
    write_summary(summary, out)
    return summary


def write_summary(summary: BatchSummary, out: Path) -> tuple[Path, Path]:
    rows = [asdict(i) for i in summary.items]
    atomic_write_text(out / SUMMARY_JSON, json.dumps({
        "engine": summary.engine, "scheduler": summary.scheduler, "seconds": summary.seconds,
        "done": summary.count("done"), "skipped": summary.count("skipped"), "failed": summary.count("failed"),
        "items": rows}, indent=1))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["input", "status", "output", "seconds", "device", "checks", "reason"])
    for i in summary.items:
        warned = "; ".join(f"{c['name']}: {c['reason']}" for c in i.checks if c.get("status") != "passed")
        writer.writerow([i.input, i.status, " ".join(i.outputs), f"{i.seconds:.3f}", i.device,
                         warned or ("passed" if i.checks else ""), i.reason])
    atomic_write_text(out / SUMMARY_CSV, buf.getvalue())
    return out / SUMMARY_CSV, out / SUMMARY_JSON
