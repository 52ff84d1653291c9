"""Whole-slide viewer benchmark: our tile loader + canvas vs OpenSlide's DeepZoomGenerator, one run.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/pathology/bench_viewer.py [--size 40000] \
        [--slide /tmp/csi-bench-40k.tiff] [--json benchmarks/pathology/results.json]

1. Generates (once, under /tmp; never commit it) a SIZE x SIZE pyramidal tiled-JPEG TIFF (256-px tiles,
   levels halving to < 512 px) from scikit-image's IHC field: mirrored tissue texture over a tissue mask.
2. A scripted pan/zoom path (fit -> zoom in to 40x on three places, pans at 10x and 40x, zoom out).
   For every viewport both viewers fetch the tiles the screen needs:
   - ours: the real SlideCanvas (512-px level tiles, LRU cache, 4 loader threads, prefetch ring + coarser
     level), offscreen; the user dwells DWELL_MS on each viewport;
   - DeepZoom: DeepZoomGenerator(tile_size=254, overlap=1) get_tile for every visible tile missing from an
     LRU cache of the same memory, sequentially (no prefetch), as a simple DeepZoom client would.
   Reported: per-tile latency of the tiles each viewer needed when the viewport changed (a cache or
   prefetch hit counts as 0 ms, as the user sees it) - median and p95 - and the cold read time per tile,
   and the time until each viewport was complete.
3. Offscreen frames per second while panning at 10x, 2.5x and 40x with 100,000 detections drawn.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

VIEW_W, VIEW_H = 1280, 800
DWELL_MS = 120
MPP = 0.25  # a 40x scan


# -- 1. the slide ----------------------------------------------------------------------------------------
def generate_slide(path: Path, size: int, tile: int = 256) -> Path:
    """Tiles generated on the fly (constant memory): mirrored IHC texture x low-frequency tissue mask."""
    import tifffile
    from PIL import Image
    from scipy import ndimage
    from skimage import data

    ihc = data.immunohistochemistry()
    base = np.concatenate([np.concatenate([ihc, ihc[:, ::-1]], 1), np.concatenate([ihc[::-1], ihc[::-1, ::-1]], 1)], 0)
    rng = np.random.default_rng(7)
    msize = 256
    field = ndimage.gaussian_filter(rng.standard_normal((msize, msize)), 6)
    yy, xx = np.mgrid[0:msize, 0:msize] / msize - 0.5
    field = field / field.std() * 0.5 + (1 - (yy ** 2 + xx ** 2) / 0.16)
    mask_small = (field > 0.6).astype(np.float32)
    glass = np.array([243, 242, 240], np.uint8)
    levels = 1
    while size / 2 ** levels >= 512:
        levels += 1
    res = 1e4 / MPP

    def tiles(level: int, w: int, h: int):
        ds = 2 ** level
        b = base if ds == 1 else np.asarray(Image.fromarray(base).resize((max(1, 1024 // ds),) * 2, Image.BOX)) \
            if ds <= 1024 else np.full((1, 1, 3), 180, np.uint8)
        period = b.shape[0]
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                ys = (np.arange(ty, ty + tile) % period)
                xs = (np.arange(tx, tx + tile) % period)
                t = b[ys[:, None], xs[None, :]]
                my = np.clip(((np.arange(ty, ty + tile) * ds) * msize // size), 0, msize - 1)
                mx = np.clip(((np.arange(tx, tx + tile) * ds) * msize // size), 0, msize - 1)
                m = mask_small[my[:, None], mx[None, :]]
                if not m.any():
                    yield np.broadcast_to(glass, (tile, tile, 3)).copy()
                elif m.all():
                    yield np.ascontiguousarray(t)
                else:
                    yield np.where(m[..., None] > 0, t, glass).astype(np.uint8)

    tmp = path.with_suffix(".partial.tiff")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for lvl in range(levels):
            w, h = math.ceil(size / 2 ** lvl), math.ceil(size / 2 ** lvl)
            tif.write(tiles(lvl, w, h), shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), compression="jpeg",
                      compressionargs={"level": 85}, photometric="rgb", subfiletype=0 if lvl == 0 else 1,
                      resolution=(res / 2 ** lvl, res / 2 ** lvl), resolutionunit="CENTIMETER", metadata=None)
            print(f"  level {lvl}: {w} x {h}", flush=True)
    os.replace(tmp, path)
    return path


# -- 2. the path --------------------------------------------------------------------------------------------
def scripted_path(size: int) -> list[tuple[float, float, float]]:
    """(cx, cy, magnification) viewports; magnification 10x = 1 µm per screen pixel."""
    fit_mag = 10 / (MPP * size / VIEW_W / 0.95)
    path = [(size / 2, size / 2, fit_mag)]
    for px, py in ((0.35, 0.4), (0.6, 0.55), (0.45, 0.62)):
        cx, cy = px * size, py * size
        mag = fit_mag
        while mag < 40:
            mag = min(40.0, mag * 1.6)
            path.append((cx, cy, mag))
        for step in range(12):  # pan right at 40x, half a screen per step
            path.append((cx + step * VIEW_W * 0.5 * MPP * 40 / 10 / MPP / 4, cy, 40.0))
        for mag in (20.0, 10.0):
            path.append((cx, cy, mag))
        for step in range(10):  # pan down at 10x
            path.append((cx, cy + step * VIEW_H * 0.4 / (MPP * 10 / 10) / 4, 10.0))
        mag = 10.0
        while mag > fit_mag:
            mag = max(fit_mag, mag / 1.6)
            path.append((cx, cy, mag))
    return path


def mag_to_scale(mag: float) -> float:
    return MPP * mag / 10.0


def run_ours(slide: Path, path, app, threads: int | None = None) -> dict:
    from PySide6.QtCore import QEventLoop

    from app.workspaces.pathology.canvas import SlideCanvas
    from engines.pathology.slide import open_slide

    reader = open_slide(slide)
    thumb, ts = reader.thumbnail(1024)
    canvas = SlideCanvas(loader_threads=threads)
    canvas.resize(VIEW_W, VIEW_H)
    canvas.show()  # a hidden widget never paints, and painting is what requests tiles
    canvas.set_slide(reader, thumb, ts)
    requested_at: dict[tuple, float] = {}
    loaded_at: dict[tuple, float] = {}
    cold_ms: list[float] = []
    orig_request = canvas.loader.request

    def request(key, reader_, x0, y0, w, h, priority=0):
        if key not in canvas.loader.pending:
            requested_at.setdefault(key, time.perf_counter())
        orig_request(key, reader_, x0, y0, w, h, priority)

    canvas.loader.request = request

    def on_loaded(gen, key, img):
        if img is not None and key not in loaded_at:
            loaded_at[key] = time.perf_counter()
            cold_ms.append((loaded_at[key] - requested_at.get(key, loaded_at[key])) * 1000)

    canvas.loader.bridge.loaded.connect(on_loaded)
    latencies, complete = [], []
    for cx, cy, mag in path:
        canvas.set_view(cx, cy, mag_to_scale(mag))
        t0 = time.perf_counter()
        canvas.repaint()
        level = canvas.current_level()
        needed = canvas.tiles_for(level, canvas.transform().visible_level0())
        hit = {k for k in needed if k in canvas.cache}
        t_limit = time.perf_counter() + 30
        while not canvas.visible_tiles_loaded() and time.perf_counter() < t_limit:
            # block until the next event, as the application's event loop does (no busy polling)
            app.processEvents(QEventLoop.WaitForMoreEvents)
        t_done = time.perf_counter()
        canvas.repaint()
        complete.append((t_done - t0) * 1000)
        for k in needed:
            latencies.append(0.0 if k in hit else max(0.0, (loaded_at.get(k, t_done) - t0) * 1000))
        end = time.perf_counter() + DWELL_MS / 1000  # the user looks; prefetch keeps working
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)
    canvas.shutdown()
    reader.close()
    from app.workspaces.pathology.canvas import TILE

    return {"tile_px": TILE, "loader_threads": canvas.loader.pool.maxThreadCount(), "tiles_needed": len(latencies),
            "tile_latency_ms_median": round(float(np.median(latencies)), 2),
            "tile_latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
            "request_to_ready_ms_median": round(float(np.median(cold_ms)), 2) if cold_ms else None,
            "request_to_ready_ms_p95": round(float(np.percentile(cold_ms, 95)), 2) if cold_ms else None,
            "viewport_complete_ms_median": round(float(np.median(complete)), 1),
            "viewport_complete_ms_p95": round(float(np.percentile(complete, 95)), 1)}


def run_deepzoom(slide: Path, path) -> dict:
    import openslide
    from openslide.deepzoom import DeepZoomGenerator

    osr = openslide.OpenSlide(str(slide))
    dz = DeepZoomGenerator(osr, tile_size=254, overlap=1, limit_bounds=False)
    size = osr.dimensions[0]
    cache: OrderedDict = OrderedDict()
    max_tiles = 192 * 4  # same memory as our 192 tiles of 512 px
    latencies, cold, complete = [], [], []
    for cx, cy, mag in path:
        scale = mag_to_scale(mag)
        # DeepZoom level whose scale is the first >= the screen scale (as OpenSeadragon picks)
        dz_level = dz.level_count - 1
        for lv in range(dz.level_count):
            if dz.level_dimensions[lv][0] / size >= scale:
                dz_level = lv
                break
        f = dz.level_dimensions[dz_level][0] / size
        x0 = (cx - VIEW_W / 2 / scale) * f
        y0 = (cy - VIEW_H / 2 / scale) * f
        x1 = (cx + VIEW_W / 2 / scale) * f
        y1 = (cy + VIEW_H / 2 / scale) * f
        cols, rows = dz.level_tiles[dz_level]
        keys = [(dz_level, c, r) for r in range(max(0, int(y0 // 254)), min(rows - 1, int(y1 // 254)) + 1)
                for c in range(max(0, int(x0 // 254)), min(cols - 1, int(x1 // 254)) + 1)]
        t0 = time.perf_counter()
        for k in keys:
            if k in cache:
                cache.move_to_end(k)
                latencies.append(0.0)
                continue
            s = time.perf_counter()
            img = dz.get_tile(k[0], (k[1], k[2]))
            img.load()
            e = time.perf_counter()
            cold.append((e - s) * 1000)
            latencies.append((e - t0) * 1000)  # the tile is on screen once it and those before it are read
            cache[k] = img
            while len(cache) > max_tiles:
                cache.popitem(last=False)
        complete.append((time.perf_counter() - t0) * 1000)
        time.sleep(DWELL_MS / 1000)
    osr.close()
    return {"tile_px": 256, "tiles_needed": len(latencies),
            "tile_latency_ms_median": round(float(np.median(latencies)), 2),
            "tile_latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
            "cold_tile_read_ms_median": round(float(np.median(cold)), 2),
            "cold_tile_read_ms_p95": round(float(np.percentile(cold, 95)), 2),
            "viewport_complete_ms_median": round(float(np.median(complete)), 1),
            "viewport_complete_ms_p95": round(float(np.percentile(complete, 95)), 1)}


# -- 3. frames per second with 100,000 detections ---------------------------------------------------------
def run_fps(slide: Path, app, n_det: int = 100_000) -> dict:
    from app.workspaces.pathology.canvas import DetectionLayer, HeatmapLayer, SlideCanvas
    from engines.pathology.slide import open_slide

    reader = open_slide(slide)
    thumb, ts = reader.thumbnail(1024)
    size = reader.metadata.dimensions[0]
    canvas = SlideCanvas()
    canvas.resize(VIEW_W, VIEW_H)
    canvas.show()  # a hidden widget never paints, and painting is what requests tiles
    canvas.set_slide(reader, thumb, ts)
    rng = np.random.default_rng(1)
    xy = rng.uniform(0.2 * size, 0.8 * size, (n_det, 2)).astype(np.float32)
    half = rng.uniform(20, 40, (n_det, 1)).astype(np.float32)  # 10-20 µm objects at 0.25 µm/px
    boxes = np.concatenate([xy - half, xy + half], 1)
    polys = [np.stack([x + h * np.cos(np.linspace(0, 2 * np.pi, 9)[:-1]), y + h * np.sin(np.linspace(0, 2 * np.pi, 9)[:-1])], 1)
             for (x, y), h in zip(xy, half[:, 0])]
    canvas.detections = [DetectionLayer("bench", xy, boxes, rng.uniform(0.5, 1, n_det), np.zeros(n_det, np.int16),
                                        ["positive"], polys)]
    heat = rng.uniform(0, 1, (size // 256, size // 256)).astype(np.float32)
    canvas.heatmaps = [HeatmapLayer("bench", heat, 256.0)]
    out = {}
    for label, mag in (("2.5x (density LOD)", 2.5), ("10x", 10.0), ("40x (outlines)", 40.0)):
        cx, cy = 0.45 * size, 0.5 * size
        canvas.set_view(cx, cy, mag_to_scale(mag))
        # warm the tiles along the pan so we time drawing, not decoding (decoding is timed above)
        step = 6.0 / mag_to_scale(mag)  # 6 screen px per frame
        frames = 240
        for k in range(0, frames, 20):
            canvas.set_view(cx + k * step, cy)
            canvas.repaint()
            t_end = time.perf_counter() + 5
            while not canvas.visible_tiles_loaded() and time.perf_counter() < t_end:
                app.processEvents()
                time.sleep(0.001)
        canvas.set_view(cx, cy)
        t0 = time.perf_counter()
        for k in range(frames):
            canvas.set_view(cx + k * step, cy)
            canvas.repaint()
            app.processEvents()
        dt = time.perf_counter() - t0
        out[label] = {"fps": round(frames / dt, 1), "mode": canvas.detections[0].last_mode,
                      "visible_detections_last_frame": int(((xy[:, 0] > canvas.transform().visible_level0()[0]) &
                                                            (xy[:, 0] < canvas.transform().visible_level0()[2]) &
                                                            (xy[:, 1] > canvas.transform().visible_level0()[1]) &
                                                            (xy[:, 1] < canvas.transform().visible_level0()[3])).sum())}
    canvas.shutdown()
    reader.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=40000)
    ap.add_argument("--slide", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None, help="tile loader threads (default: 2-4 by CPU count)")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    slide = Path(args.slide or f"/tmp/csi-bench-{args.size // 1000}k.tiff")
    if not slide.exists():
        print(f"generating {slide} ({args.size} x {args.size})", flush=True)
        t = time.perf_counter()
        generate_slide(slide, args.size)
        print(f"  generated in {time.perf_counter() - t:.0f} s, {slide.stat().st_size / 1e6:.0f} MB", flush=True)
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    path = scripted_path(args.size)
    print(f"path: {len(path)} viewports of {VIEW_W}x{VIEW_H}", flush=True)
    results = {"slide": str(slide), "size": args.size, "viewports": len(path), "dwell_ms": DWELL_MS,
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    # DeepZoom first, then ours: both start with a cold OpenSlide handle; the OS page cache is warm for both
    results["deepzoom"] = run_deepzoom(slide, path)
    print("deepzoom", json.dumps(results["deepzoom"]), flush=True)
    results["ours"] = run_ours(slide, path, app, args.threads)
    print("ours    ", json.dumps(results["ours"]), flush=True)
    results["fps_100k_detections"] = run_fps(slide, app)
    print("fps     ", json.dumps(results["fps_100k_detections"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
