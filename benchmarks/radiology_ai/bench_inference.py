"""Per-slice inference latency at 512 x 512 on the CPU (and CUDA when present), with MONAI's UNet as peer.

    .venv/bin/python benchmarks/radiology_ai/bench_inference.py [--threads 2] [--repeats 5] [--device cpu]

Measures, on the same random-but-CT-like 512^2 input:
* the kernel conversion network (sharpen and smooth; one head = the full network depth for the last kernel);
* the lesion SE U-Net and the no-SE U-Net on a 512^2 slice (the network alone, no resampling);
* MONAI's ``UNet`` (spatial_dims=2, channels (12, 24, 48, 96), strides (2, 2, 2), 2 residual units) as the
  peer of similar size, when MONAI is installed (``pip install --no-deps monai``; not a dependency);
* the whole ``ct-kernel-conversion`` engine on a 512 x 512 x 8 DICOM-free volume (reading excluded).
Seconds per slice: median of ``--repeats`` runs after one warm-up, batch 1.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import torch

    from engines.core.weights import WeightsStore
    from engines.radiology_ai.common import model_from

    torch.set_num_threads(args.threads)
    dev = args.device
    sync = (lambda: torch.cuda.synchronize()) if dev.startswith("cuda") else (lambda: None)
    rng = np.random.default_rng(0)
    ct = torch.from_numpy((rng.normal(0, 50, (1, 1, 512, 512)) / 1000).astype(np.float32)).to(dev)
    mr = torch.from_numpy(rng.random((1, 1, 512, 512)).astype(np.float32)).to(dev)
    rows = {}
    with torch.inference_mode():
        for name in ("ct-kernel-sharpen", "ct-kernel-smooth", "lesion-unet-se", "lesion-unet-plain"):
            try:
                tensors, card = WeightsStore.default().load(name)
            except Exception as exc:  # noqa: BLE001 - a missing model is reported, not fatal
                rows[name] = f"unavailable ({exc})"
                continue
            model = model_from(tensors, card, dev)
            x = ct if name.startswith("ct-") else mr
            params = sum(p.numel() for p in model.parameters())
            rows[name] = {"s_per_slice": round(timed(lambda: (model(x), sync()), args.repeats), 4), "params": params}
        try:
            from monai.networks.nets import UNet

            peer = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(12, 24, 48, 96),
                        strides=(2, 2, 2), num_res_units=2).to(dev).eval()
            rows["monai UNet (peer)"] = {"s_per_slice": round(timed(lambda: (peer(mr), sync()), args.repeats), 4),
                                         "params": sum(p.numel() for p in peer.parameters())}
        except ImportError:
            rows["monai UNet (peer)"] = "MONAI not installed"

    from engines.radiology.geometry import Geometry
    from engines.radiology.reader import Volume
    from engines.radiology_ai.kernel_engine import KernelConversionEngine

    vol = Volume(voxels=(rng.normal(0, 40, (8, 512, 512)) + 1024).astype(np.int16), geometry=Geometry((0.7, 0.7, 2.5)),
                 intercept=-1024.0, modality="CT")
    vol.voxels[:, :40] = 0  # some air
    engine = KernelConversionEngine()
    engine.load(dev)
    t = timed(lambda: engine.predict({"volume": vol, "target": "edge"}), max(1, args.repeats // 2))
    rows["ct-kernel-conversion engine, 512x512x8 volume"] = {"s_per_slice": round(t / 8, 4)}
    report = {"device": dev, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
              "torch": torch.__version__, "rows": rows}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
