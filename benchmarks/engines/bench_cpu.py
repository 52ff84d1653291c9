"""CPU speed of the model engines, beside named peers, in one run (issue 13's table).

    OMP_NUM_THREADS=1 flock /tmp/csi-training.lock .venv/bin/python benchmarks/engines/bench_cpu.py \
        [--repeats 5] [--json benchmarks/engines/results-cpu.json] [--only lesion kernel chords]

One section per engine family; each row is one measured configuration, in seconds per unit of input
(median of ``--repeats`` after a warm-up), with the thread count it ran on and, for a faster numerical path, the
largest and RMS difference of its output from the float32 reference:

* ``lesion``: the lesion U-Nets (SE and plain) per 512² slice, the network alone: float32 contiguous (before),
  as the engine runs it (``engine.forward``: float32 channels-last), bfloat16 autocast, threads 1 vs 2, beside
  MONAI's ``UNet`` of similar size (2-D, channels 12-24-48-96, strides 2-2-2, two residual units) when MONAI is
  importable; plus the whole engine (prepare/infer/finish) on a 512² x 8 DWI-like volume (it resamples to
  2.4 mm, so its network sees ~96² slices);
* ``kernel``: kernel conversion per 512² slice through the whole engine (``ct-kernel-conversion`` predict on a
  512² x 4 CT) at its default precision and at float32, and the network alone in each variant (contiguous,
  channels-last, bfloat16, batch 1 vs 4, threads 1 vs 2) - target <= 0.3 s per slice;
* ``threads``: the thread policy's claim (engines/core/threads.py), 1 vs 2 threads with and without one core
  kept busy by another process;
* ``chords``: chord recognition per minute of audio including features (a placeholder row until the music
  engines add theirs: see README.md).

The 1-minute load average (``os.getloadavg``) is recorded before and after every section: on a shared machine
the figures are only comparable at similar load. Other engine families add their own ``section_*`` function and
its name to SECTIONS.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(median seconds, last output) of ``fn`` after one warm-up call."""
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def difference(a, b, scale: float = 1.0) -> dict[str, float]:
    """Largest and RMS |a - b| (times ``scale``: 1000 turns the kernel net's HU/1000 into HU)."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) * scale
    return {"max": round(float(np.abs(d).max()), 4), "rms": round(float(np.sqrt(np.mean(d ** 2))), 4)}


def row(name: str, seconds: float, threads: int, per: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "s": round(float(seconds), 4), "per": per, "threads": threads, "load": load(), **extra}


def with_threads(n: int):
    import torch

    torch.set_num_threads(n)
    return n


# -- lesion U-Net ------------------------------------------------------------------------------------------
def section_lesion(repeats: int, threads: list[int]) -> list[dict[str, Any]]:
    import torch

    from engines.radiology_ai.lesion_engine import LesionSegmentationPlainEngine, LesionSegmentationSEEngine

    rows = []
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 1, 512, 512)).astype(np.float32))
    peers = {}
    try:
        from monai.networks.nets import UNet

        torch.manual_seed(0)
        peers["MONAI UNet 12-24-48-96, 2 res units (peer)"] = UNet(
            spatial_dims=2, in_channels=1, out_channels=2, channels=(12, 24, 48, 96), strides=(2, 2, 2),
            num_res_units=2).eval()
    except ImportError:
        rows.append({"name": "MONAI UNet (peer)", "s": None, "note": "MONAI is not importable in this environment"})
    for engine in (LesionSegmentationSEEngine(), LesionSegmentationPlainEngine()):
        engine.load("cpu")
        net = engine.network
        params = sum(p.numel() for p in net.parameters())
        with torch.inference_mode():
            for n in threads:
                with_threads(n)
                net.to(memory_format=torch.contiguous_format)
                t, ref = timed(lambda: net(x), repeats)
                rows.append(row(f"{engine.weights_name} network, float32 contiguous (before)", t, n, "512² slice",
                                params=params))
                net.to(memory_format=torch.channels_last)
                t, y = timed(lambda: engine.forward(x), repeats)
                rows.append(row(f"{engine.weights_name} network as the engine runs it (float32 channels-last)", t, n,
                                "512² slice", diff_logits=difference(y, ref)))
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    t, y = timed(lambda: engine.forward(x).float(), repeats)
                agree = float(((y.argmax(1) == ref.argmax(1)).float().mean()))
                rows.append(row(f"{engine.weights_name} network, channels-last + bfloat16 autocast (not the default)",
                                t, n, "512² slice", diff_logits=difference(y, ref), label_agreement=round(agree, 5)))
    with torch.inference_mode():
        for name, peer in peers.items():
            for n in threads:
                with_threads(n)
                t, _ = timed(lambda: peer(x), repeats)
                rows.append(row(name, t, n, "512² slice", params=sum(p.numel() for p in peer.parameters())))
    # the whole engine on a 512² x 8 volume at 0.45 mm (resampled to 2.4 mm inside: ~96² per slice)
    from engines.radiology.geometry import Geometry
    from engines.radiology.reader import Volume
    from engines.radiology_ai.lesion_eval import subject
    from scipy import ndimage

    vol, _ = subject(1003)
    big = ndimage.zoom(vol.voxels[20:28], (1, 512 / 96, 512 / 96), order=1)
    volume = Volume(big.astype(np.float32), Geometry((2.4 * 96 / 512, 2.4 * 96 / 512, 2.5)), modality="MR")
    engine = LesionSegmentationSEEngine()
    engine.load("cpu")
    with_threads(threads[-1])
    t, _ = timed(lambda: engine.predict({"volume": volume}), max(1, repeats // 2))
    rows.append(row("lesion-segmentation-se engine, whole path (checks, resampling, network, labels)", t / 8,
                    threads[-1], "512² slice"))
    return rows


# -- kernel conversion -------------------------------------------------------------------------------------
def section_kernel(repeats: int, threads: list[int]) -> list[dict[str, Any]]:
    import torch

    from engines.radiology.geometry import Geometry
    from engines.radiology.reader import Volume
    from engines.radiology_ai import kernels as K
    from engines.radiology_ai.kernel_engine import KernelConversionEngine

    rows = []
    real = dict(K.real_ct_slices(512))["693_UNCI.dcm"]
    hu = np.clip(real, -1024, 3071).astype(np.float32)
    engine = KernelConversionEngine()
    engine.load("cpu")
    net = engine.model("sharpen")  # channels-last, as the engine keeps it
    x = torch.from_numpy(hu / 1000.0)[None, None]
    head = 4
    with torch.inference_mode():
        for n in threads:
            with_threads(n)
            net.to(memory_format=torch.contiguous_format)
            t, ref = timed(lambda: net.convert(x, head), repeats)
            rows.append(row("ct-kernel-sharpen network, float32 contiguous (before)", t, n, "512² slice",
                            params=sum(p.numel() for p in net.parameters())))
            t, _ = timed(lambda: net(x, upto=head)[head], repeats)
            rows.append(row("ct-kernel-sharpen network, float32, all heads computed (old forward)", t, n,
                            "512² slice"))
            net.to(memory_format=torch.channels_last)
            xc = x.contiguous(memory_format=torch.channels_last)
            t, y = timed(lambda: net.convert(xc, head), repeats)
            rows.append(row("ct-kernel-sharpen network, float32 channels-last", t, n, "512² slice",
                            diff_hu=difference(y, ref, 1000.0)))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                t, y = timed(lambda: net.convert(xc, head).float(), repeats)
            rows.append(row("ct-kernel-sharpen network, channels-last + bfloat16 autocast", t, n, "512² slice",
                            diff_hu=difference(y, ref, 1000.0)))
            x4 = xc.repeat(4, 1, 1, 1).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                t, _ = timed(lambda: net.convert(x4, head).float(), max(1, repeats // 2))
            rows.append(row("ct-kernel-sharpen network, channels-last + bfloat16, batch 4", t / 4, n, "512² slice"))
            try:
                q = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
                t, y = timed(lambda: q.convert(xc, head), repeats)
                rows.append(row("ct-kernel-sharpen network, int8 dynamic quantisation (Linear layers only)", t, n,
                                "512² slice", diff_hu=difference(y, ref, 1000.0),
                                note="dynamic quantisation covers Linear layers (the SE gates); the convolutions "
                                     "stay float32"))
            except Exception as exc:  # noqa: BLE001 - a backend without quantised kernels is reported
                rows.append({"name": "int8 dynamic quantisation", "s": None, "note": f"unavailable: {exc}"[:200]})
    volume = Volume(np.repeat(hu[None], 4, 0), Geometry((0.7, 0.7, 2.5)), modality="CT",
                    meta={"series_description": "693_UNCI x4"})
    for n in threads:
        with_threads(n)
        os.environ["CSI_TORCH_THREADS"] = str(n)  # the engine's thread policy: this run's count
        for precision in ("auto", "float32"):
            t, res = timed(lambda: engine.predict({"volume": volume, "target": "edge", "precision": precision}),
                           max(1, repeats // 2))
            rows.append(row(f"ct-kernel-conversion engine, whole path, precision={precision} "
                            f"({res.scores.get('precision')})", t / 4, n, "512² slice", target_s=0.3))
    os.environ.pop("CSI_TORCH_THREADS", None)
    return rows


# -- the thread policy's claim (engines/core/threads.py) -----------------------------------------------------
def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def section_threads(repeats: int, threads: list[int]) -> list[dict[str, Any]]:
    """The kernel network (float32 channels-last, 512²) on 1 and 2 threads, as the machine is, and with one
    extra process of ours spinning on a core (what "another process busy on a core" means in the policy)."""
    import multiprocessing as mp

    import torch

    from engines.radiology_ai import kernels as K
    from engines.radiology_ai.kernel_engine import KernelConversionEngine

    real = dict(K.real_ct_slices(512))["693_UNCI.dcm"]
    x = torch.from_numpy(np.clip(real, -1024, 3071).astype(np.float32) / 1000.0)[None, None]
    x = x.contiguous(memory_format=torch.channels_last)
    net = KernelConversionEngine().model("sharpen")
    rows = []
    with torch.inference_mode():
        for busy in (False, True):
            spinner = None
            if busy:
                spinner = mp.get_context("fork").Process(target=_spin, args=(600.0,), daemon=True)
                spinner.start()
            try:
                for n in (1, 2):
                    with_threads(n)
                    t, _ = timed(lambda: net.convert(x, 4), repeats)
                    rows.append(row(f"ct-kernel-sharpen network, float32 channels-last, "
                                    f"{'one core kept busy by a spinning process' if busy else 'as the machine is'}",
                                    t, n, "512² slice"))
            finally:
                if spinner is not None:
                    spinner.terminate()
                    spinner.join()
    return rows


# -- chord recognition (filled in by the music engines) ----------------------------------------------------
def section_chords(repeats: int, threads: list[int]) -> list[dict[str, Any]]:
    return [{"name": "chord-recognition engine, whole path (features + network + decoding)", "s": None,
             "per": "minute of audio", "target_s": 0.5,
             "note": "placeholder: the music engines add their measurement here (section_chords)"}]


SECTIONS = {"lesion": section_lesion, "kernel": section_kernel, "threads": section_threads,
            "chords": section_chords}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Measured {report['started']} on {report['cpu']} ({report['cores']} cores), torch {report['torch']}; "
             f"load average at start {report['load_start']}, at end {report['load_end']}.", ""]
    for section, rows in report["sections"].items():
        lines += [f"**{section}**", "", "| configuration | seconds | per | threads | load | output difference |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            diff = r.get("diff_hu") or r.get("diff_logits")
            unit = " HU" if "diff_hu" in r else ""
            dtext = f"max {diff['max']:g}{unit}, RMS {diff['rms']:g}{unit}" if diff else r.get("note", "")
            if "label_agreement" in r:
                dtext += f"; labels agree on {100 * r['label_agreement']:.3f}% of pixels"
            s = "n/a" if r.get("s") is None else f"{r['s']:.3f}"
            lines.append(f"| {r['name']} | {s} | {r.get('per', '')} | {r.get('threads', '')} | {r.get('load', '')} "
                         f"| {dtext} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import torch

    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "torch": torch.__version__, "load_start": load(),
              "command": " ".join([".venv/bin/python", *sys.argv]), "sections": {}}
    for name in args.only:
        report["sections"][name] = SECTIONS[name](args.repeats, args.threads)
        print(f"{name} done (load {load()})", file=sys.stderr, flush=True)
    report["load_end"] = load()
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
