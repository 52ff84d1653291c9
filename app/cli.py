"""The single entry point: `csi-workstation` opens the GUI; subcommands run headless.

    csi-workstation [PATH ...] [--workspace ID] [--sample]     open the window
    csi-workstation engines [--json]                           list engines, device and weight status
    csi-workstation inspect PATH [--json]                      describe a file or folder
    csi-workstation run ENGINE INPUT... --out PATH             run one engine without a screen
    csi-workstation self-test [--json]                         every workspace and engine on its sample
    csi-workstation screenshot --workspace ID OUT.png          render the window to a PNG

Bad arguments and unreadable inputs print one line and exit non-zero, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PROG = "csi-workstation"
SUBCOMMANDS = ("engines", "inspect", "run", "batch", "covers", "self-test", "screenshot", "gui")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UsageError(message)


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def build_parser() -> _Parser:
    parser = _Parser(prog=PROG, description="CSI Workstation: AI review of CT/MRI, slides and music, offline.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    gui = sub.add_parser("gui", help="open the window (the default)")
    _gui_args(gui)

    p = sub.add_parser("engines", help="list engines with device and weight status")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")

    p = sub.add_parser("inspect", help="describe a file or folder")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("run", help="run one engine on input files without a screen; other --name VALUE options "
                                   "go to the engine (e.g. --question '...', --chords 'C G Am F')",
                       description="Run one engine without a screen. Every finding of the reader (damaged or "
                                   "odd input) and every input check the engine did not pass is printed as a "
                                   "'warning: ...' line on stderr. With --out, a summary (engine, inputs, "
                                   "outputs, findings, checks) is written atomically beside the output as "
                                   "OUT.summary.json. With --strict, any warning refuses the run: exit status "
                                   "3, no output written (the summary says why).")
    p.add_argument("engine")
    p.add_argument("inputs", nargs="*", help="input files (some engines take words or none)")
    p.add_argument("--out", default=None, help="output file (default: the engine's usual file name in a "
                                               "temporary folder, whose text is printed)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="engine option (repeatable), e.g. --set min_voxels=50")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 3, nothing written but the summary) when there is any warning")

    from app.batch_cli import add_parser as add_batch_parser

    add_batch_parser(sub)
    from app.covers_cli import add_parser as add_covers_parser

    add_covers_parser(sub)

    p = sub.add_parser("self-test", help="open every workspace offscreen and run every engine on its sample")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per item")

    p = sub.add_parser("screenshot", help="render the main window to a PNG")
    p.add_argument("out")
    p.add_argument("--workspace", required=True)
    p.add_argument("--open", dest="open_path", default=None, help="file or folder to open first")
    p.add_argument("--sample", action="store_true", help="open the workspace's sample first")
    p.add_argument("--size", default="1400x900", help="window size WxH")
    p.add_argument("--timeout", type=float, default=120.0)
    return parser


def _gui_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="files or folders to open")
    p.add_argument("--workspace", default=None, help="workspace to show first")
    p.add_argument("--sample", action="store_true", help="open the workspace's bundled sample")
    p.add_argument("--verbose", action="store_true")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
            gui = _Parser(prog=PROG, description="Open the CSI Workstation window. Subcommands: "
                          + ", ".join(SUBCOMMANDS[:-1]) + " (see --help of each).")
            _gui_args(gui)
            return cmd_gui(gui.parse_args(argv))
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra and args.command in ("run", "batch"):
            args.set = list(getattr(args, "set", [])) + _engine_options(extra)
        elif extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as exc:
        return _fail(str(exc), 2)
    if args.version:
        from app import __version__

        print(f"{PROG} {__version__}")
        return 0
    if args.command != "gui":
        from app.logsetup import configure_logging

        configure_logging(console=False)
    try:
        return {
            "gui": cmd_gui, "engines": cmd_engines, "inspect": cmd_inspect, "run": cmd_run,
            "self-test": cmd_self_test, "screenshot": cmd_screenshot, "batch": cmd_batch,
            "covers": cmd_covers,
        }[args.command](args)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the CLI prints one line; the log has the traceback
        from engines.core.engine import EngineError

        if not isinstance(exc, EngineError):
            import logging

            logging.getLogger(PROG).exception("unexpected error")  # the traceback goes to the log file
        return _fail(str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}")


def gui_main() -> int:
    return main()


# -- GUI --------------------------------------------------------------------------------------------
def cmd_gui(args) -> int:
    for p in args.paths:
        if not Path(p).expanduser().exists():
            known = ", ".join(SUBCOMMANDS[:-1])
            raise UsageError(f"'{p}' is neither a command ({known}) nor an existing file or folder")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        raise UsageError("no display to open the window on: run it in a desktop session, under `xvfb-run -a`, "
                         "or set QT_QPA_PLATFORM=offscreen")
    from app.logsetup import configure_logging

    configure_logging(getattr(args, "verbose", False))
    from app.main_window import MainWindow, create_app

    from PySide6.QtCore import QTimer

    from app.workspaces.manifest import discover_workspaces

    ids = [m.id for m in discover_workspaces()[0]]
    if args.workspace and args.workspace not in ids:  # before any worker thread starts
        raise UsageError(f"no workspace '{args.workspace}' (known: {', '.join(ids)})")
    app = create_app()
    window = MainWindow()
    window.show()
    timing = bool(os.environ.get("CSI_STARTUP_EXIT"))  # benchmarks/shell/startup.py

    def visible() -> None:
        app.processEvents()  # let the first paint happen
        if timing:
            print(f"window-visible-s {time.time() - _process_start_time():.3f}", flush=True)
        # the workspace (and its imports) comes after the window is on screen
        _initial_view(window, args.workspace, [Path(p) for p in args.paths], args.sample)
        if timing:
            app.processEvents()
            print(f"workspace-shown-s {time.time() - _process_start_time():.3f}", flush=True)
            window.close()

    QTimer.singleShot(0, visible)
    return app.exec()


def _initial_view(window, workspace: str | None, paths: list[Path], sample: bool) -> None:
    ids = [m.id for m in window.manifests]
    target = workspace or (window.settings.last_workspace if window.settings.last_workspace in ids else None) \
        or (ids[0] if ids else None)
    if target:
        window.switch_to(target)
    if paths:
        window.open_paths(paths)
    elif sample and target:
        window.view(target).open_sample()


def _process_start_time() -> float:
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return btime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return time.time()


# -- engines ----------------------------------------------------------------------------------------
def cmd_engines(args) -> int:
    from engines.core.device import resolve_device
    from engines.core.registry import EngineRegistry

    info = resolve_device(args.device)
    registry = EngineRegistry.discover()
    rows = []
    for engine_id in registry.ids():
        engine = registry.get(engine_id)
        meta = engine.info()
        rows.append({"id": engine_id, "workspace": meta.workspace, "task": meta.task, "title": meta.title,
                     "weights": meta.weights or "-", "weights_status": engine.weights_status(),
                     "device": info.device})
    if args.json:
        print(json.dumps({"device": info.device, "device_label": info.label, "device_note": info.note,
                          "engines": rows, "plugin_errors": registry.errors}, indent=2))
    else:
        print(f"Device: {info.label}" + (f"  ({info.note})" if info.note else ""))
        _print_table(["engine", "workspace", "task", "weights", "status"],
                     [[r["id"], r["workspace"], r["task"], r["weights"], r["weights_status"]] for r in rows])
        for name, err in registry.errors.items():
            print(f"plugin {name} failed to load: {err}", file=sys.stderr)
    return 1 if registry.errors else 0


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


# -- inspect ----------------------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    from engines.core.inspect import inspect_path

    report = inspect_path(Path(args.path), workspace_for_kind=_workspace_for_kind)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"{report['path']}\n  kind: {report['kind']}\n  opens in: {report['workspace'] or '(no workspace)'}")
    for key, value in report["details"].items():
        if key == "series":
            print(f"  series: {len(value)}")
            for s in value:
                print(f"    - {s.get('modality', '?'):3} {s.get('description') or '(no description)'}: "
                      f"{s.get('files')} file(s), {s.get('frames')} frame(s), {s.get('rows')}x{s.get('columns')}, "
                      f"UID {s.get('series_uid')}")
                for name in s.get("file_names", [])[:20]:
                    print(f"        file: {name}")
        else:
            print(f"  {key}: {value}")
    for finding in report["findings"]:
        print(f"  ! {finding}")
    return 0


def _workspace_for_kind(kind: str) -> str | None:
    from app.workspaces.manifest import discover_workspaces, workspace_for_kind

    manifest = workspace_for_kind(kind, discover_workspaces()[0])
    return manifest.id if manifest else None


# -- run --------------------------------------------------------------------------------------------
class TerminalProgress:
    """A progress bar on a terminal; plain lines (at most every 10 %) when stderr is not a terminal."""

    def __init__(self, stream=None, width: int = 30) -> None:
        stream = stream or sys.stderr  # the stderr of now, not of import time
        self.stream, self.width = stream, width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last_decile = -1
        self._last_message = ""

    def __call__(self, fraction: float | None, message: str = "") -> None:
        if self.tty:
            if fraction is None:
                bar = "?" * self.width
                pct = "  ?%"
            else:
                filled = int(round(max(0.0, min(1.0, fraction)) * self.width))
                bar = "#" * filled + "-" * (self.width - filled)
                pct = f"{fraction * 100:3.0f}%"
            self.stream.write(f"\r[{bar}] {pct} {message[:60]:<60}")
            self.stream.flush()
        else:
            decile = -1 if fraction is None else int(fraction * 10)
            if decile != self._last_decile or (fraction is None and message != self._last_message):
                self._last_decile, self._last_message = decile, message
                pct = "?" if fraction is None else f"{fraction * 100:.0f}"
                print(f"{pct}% {message}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _engine_options(extra: list[str]) -> list[str]:
    """`--question "how many?" --chords "C G"` -> ["question=how many?", "chords=C G"]."""
    pairs, i = [], 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or len(token) < 3:
            raise UsageError(f"unrecognized argument '{token}' (inputs come before options)")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            value, i = extra[i + 1], i + 2
        else:
            raise UsageError(f"option {token} needs a value")
        pairs.append(f"{key.replace('-', '_')}={value}")
    return pairs


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--set expects KEY=VALUE, got '{pair}'")
        key, value = pair.split("=", 1)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def cmd_covers(args) -> int:
    from app.covers_cli import cmd_covers as run

    return run(args)


def cmd_batch(args) -> int:
    from app.batch_cli import cmd_batch as run

    return run(args, _parse_options(getattr(args, "set", [])))


def cmd_run(args) -> int:
    from engines.core.checks import InputRefused, checks_of, warning_lines
    from engines.core.device import resolve_device
    from engines.core.engine import CancelToken, EngineError
    from engines.core.filetypes import display_name
    from engines.core.registry import EngineRegistry
    from engines.core.runner import run_engine

    registry = EngineRegistry.discover()
    if args.engine not in registry:
        raise UsageError(f"no engine '{args.engine}' (known: {', '.join(registry.ids()) or 'none'})")
    engine = registry.get(args.engine)
    inputs = [Path(p).expanduser() for p in args.inputs]
    for path in inputs:
        if not path.exists() and not engine.text_inputs:
            raise EngineError(f"{path}: no such file or folder")
    temp_dir = None
    if args.out is None:
        import tempfile

        temp_dir = tempfile.TemporaryDirectory(prefix="csi-run-")
        out = Path(temp_dir.name) / engine.default_output_name()
    else:
        out = Path(args.out).expanduser()
    options = _parse_options(args.set)
    if not inputs and not options:
        raise UsageError(f"{args.engine} needs input files (or --set options for engines that take none)")
    request = dict(engine.request_from_paths(inputs))
    request.update(options)
    device = resolve_device(args.device)
    if device.note:
        print(f"note: {device.note}; using {device.label}", file=sys.stderr)
    progress = TerminalProgress()
    cancel = CancelToken()
    started = time.perf_counter()
    summary_path = None if temp_dir is not None else summary_path_for(out)
    summary = {"engine": engine.id, "inputs": [display_name(p, full=True) for p in inputs], "options": options,
               "device": device.label, "strict": bool(args.strict)}
    try:
        result = run_engine(engine, request, device=device.device, progress=progress, cancel=cancel,
                            notice=lambda m: print(f"note: {m}", file=sys.stderr))
    except InputRefused as exc:
        progress.close()
        checks = [c for c in exc.checks]
        for check in checks:
            if check.status == "warned":
                print(f"warning: {check.name}: {check.reason}", file=sys.stderr)
        _write_summary(summary_path, summary, status="refused", reason=str(exc), findings=[], checks=checks,
                       written=[])
        raise
    finally:
        progress.close()
    findings = result_findings(result)
    checks = checks_of(result)
    warnings = findings + warning_lines(result)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    if args.strict and warnings:
        _write_summary(summary_path, summary, status="refused", reason=f"--strict: {len(warnings)} warning(s)",
                       findings=findings, checks=checks, written=[])
        if temp_dir is not None:
            temp_dir.cleanup()
        print(f"{PROG}: refused (--strict): {len(warnings)} warning(s); no output written", file=sys.stderr)
        return STRICT_REFUSED
    written = engine.write_result(result, out)
    elapsed = time.perf_counter() - started
    _write_summary(summary_path, summary, status="ok", reason="", findings=findings, checks=checks,
                   written=written, seconds=elapsed)
    if temp_dir is not None:
        for path in written:
            if Path(path).suffix.lower() in (".json", ".txt", ".lab", ".tsv", ".geojson"):
                print(Path(path).read_text(encoding="utf-8").rstrip())
            else:
                print(f"({Path(path).name}: binary output; pass --out to keep it)")
        temp_dir.cleanup()
        print(f"{engine.id}: done in {elapsed:.2f} s on {device.label}" +
              (f", {len(warnings)} warning(s)" if warnings else ""), file=sys.stderr)
        return 0
    shown = ", ".join(display_name(p, full=True) for p in [*written, summary_path])
    print(f"{engine.id}: wrote {shown} in {elapsed:.2f} s on {device.label}" +
          (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 0


STRICT_REFUSED = 3


def summary_path_for(out: Path) -> Path:
    """Where `run` writes its summary: beside the output, ``<out>.summary.json``."""
    return out.with_name(out.name + ".summary.json")


def result_findings(result) -> list[str]:
    """The reader's findings a result carries (its ``findings``, and those of the volumes or images it holds:
    "volume", "source", "image", ...), each once, in order."""
    seen: dict[str, None] = {}

    def take(obj) -> None:
        values = obj.get("findings") if isinstance(obj, dict) else getattr(obj, "findings", None)
        if isinstance(values, (list, tuple)):
            for value in values:
                if isinstance(value, str) and value:
                    seen.setdefault(value, None)

    take(result)
    items = result.values() if isinstance(result, dict) else vars(result).values() if hasattr(result, "__dict__") \
        else ()
    for value in items:
        if value is not result and not isinstance(value, (str, bytes, int, float, dict, list, tuple)):
            take(value)
    return list(seen)


def _write_summary(path: Path | None, summary: dict, *, status: str, reason: str, findings: list[str], checks,
                   written, seconds: float | None = None) -> None:
    if path is None:
        return
    from engines.core.atomic import atomic_write_text
    from engines.core.filetypes import display_name

    payload = dict(summary)
    payload.update(status=status, reason=reason, outputs=[display_name(p, full=True) for p in written],
                   findings=[{"source": "reader", "message": f} for f in findings],
                   checks=[c.as_dict() for c in checks],
                   warnings=findings + [f"{c.name}: {c.reason}" for c in checks if c.status != "passed"])
    if seconds is not None:
        payload["seconds"] = round(seconds, 3)
    atomic_write_text(path, json.dumps(payload, indent=1, default=str))


# -- self-test --------------------------------------------------------------------------------------
def _force_offscreen() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def cmd_self_test(args) -> int:
    _force_offscreen()
    from app.selftest import run_self_test

    results = run_self_test(timeout_s=args.timeout)
    failed = [r for r in results if r["status"] != "ok"]
    if args.json:
        print(json.dumps({"results": results, "failed": len(failed)}, indent=2))
    else:
        _print_table(["kind", "name", "status", "seconds", "detail"],
                     [[r["kind"], r["name"], r["status"], f"{r['seconds']:.2f}", r["detail"][:90]] for r in results])
        print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


# -- screenshot -------------------------------------------------------------------------------------
def cmd_screenshot(args) -> int:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        _force_offscreen()
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size expects WxH, got '{args.size}'") from None
    out = Path(args.out).expanduser()
    if out.suffix.lower() != ".png":
        raise UsageError("the screenshot must be a .png file")
    from app.workspaces.manifest import discover_workspaces

    ids = [m.id for m in discover_workspaces()[0]]
    if args.workspace not in ids:
        raise UsageError(f"no workspace '{args.workspace}' (known: {', '.join(ids)})")
    if args.open_path and not Path(args.open_path).expanduser().exists():
        raise UsageError(f"--open {args.open_path}: no such file or folder")
    from app.main_window import MainWindow, create_app
    from engines.core.atomic import atomic_path

    app = create_app()
    window = MainWindow()
    window.resize(width, height)
    window.show()
    window.switch_to(args.workspace)
    if args.open_path:
        window.open_path(Path(args.open_path), args.workspace)
    elif args.sample:
        window.view(args.workspace).open_sample()
    window.tasks.wait_idle(args.timeout)
    window.tasks.wait_idle(args.timeout)  # opening may chain a second task (sample -> load)
    for _ in range(5):
        app.processEvents()
        time.sleep(0.05)
    with atomic_path(out) as tmp:
        if not window.grab().save(str(tmp), "PNG"):
            raise OSError(f"could not write {out}")
    errors = [n.message for n in window.notifications.items if n.level == "error"]
    window.close()
    print(f"wrote {out}")
    for e in errors:
        print(f"error shown in the window: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
