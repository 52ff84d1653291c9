"""The tile pipeline: tissue on the thumbnail, a tile grid over tissue, batched analysis, stitched results.

Any patch analyser plugs in (a segmenter/detector returning a probability map per tile, or a classifier
returning one value per tile): see ``TileAnalyzer``. All outputs are in level-0 pixel coordinates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engines.core.engine import CancelToken, EngineError, ProgressFn, no_progress
from engines.core.model_engine import as_token
from engines.pathology.results import Detections, Heatmap, SlideAnalysis
from engines.pathology.slide import SlideReader


# -- tissue ---------------------------------------------------------------------------------------------
def tissue_mask_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """Otsu on HSV saturation (glass is grey-white, stained tissue is coloured), cleaned morphologically."""
    from scipy import ndimage
    from skimage.color import rgb2hsv
    from skimage.filters import threshold_otsu

    sat = rgb2hsv(rgb)[..., 1]
    if float(sat.max() - sat.min()) < 1e-3:
        return np.zeros(sat.shape, bool)
    thr = max(threshold_otsu(sat), 0.05)  # never call faint glass tint tissue
    mask = sat > thr
    mask = ndimage.binary_closing(mask, iterations=2)
    mask = ndimage.binary_opening(mask, iterations=1)
    mask = ndimage.binary_fill_holes(mask)
    return mask


def detect_tissue(reader: SlideReader, max_size: int = 1024) -> tuple[np.ndarray, float]:
    """(tissue mask on the thumbnail grid, level-0 pixels per mask pixel)."""
    thumb, scale = reader.thumbnail(max_size)
    return tissue_mask_from_rgb(thumb), scale


# -- grid -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """A tile's core (the part it is responsible for) in level-0 pixels; analysis adds a context margin."""

    x: int
    y: int
    w: int
    h: int
    col: int
    row: int


def tile_grid(dimensions: tuple[int, int], core0: int, tissue: np.ndarray | None = None,
              tissue_cell: float = 1.0, min_tissue: float = 0.02) -> list[Tile]:
    """Tiles of ``core0`` level-0 pixels covering the slide; with a mask, only those touching tissue."""
    w0, h0 = dimensions
    tiles = []
    for row in range(math.ceil(h0 / core0)):
        for col in range(math.ceil(w0 / core0)):
            x, y = col * core0, row * core0
            if tissue is not None:
                a0, a1 = int(y / tissue_cell), int(math.ceil((y + core0) / tissue_cell))
                b0, b1 = int(x / tissue_cell), int(math.ceil((x + core0) / tissue_cell))
                patch = tissue[a0:a1, b0:b1]
                if patch.size == 0 or patch.mean() < min_tissue:
                    continue
            tiles.append(Tile(x, y, min(core0, w0 - x), min(core0, h0 - y), col, row))
    return tiles


def read_scaled(reader: SlideReader, x0: float, y0: float, w: int, h: int, downsample: float) -> np.ndarray:
    """RGB (h, w) at ``downsample`` (level-0 px per output px) from the best level, resampled if needed."""
    level = reader.best_level(downsample)
    lds = reader.metadata.level_downsamples[level]
    if abs(lds - downsample) / downsample < 1e-3:
        return reader.read_region((int(round(x0)), int(round(y0))), level, (w, h))
    rw, rh = int(math.ceil(w * downsample / lds)), int(math.ceil(h * downsample / lds))
    region = reader.read_region((int(round(x0)), int(round(y0))), level, (rw, rh))
    from PIL import Image

    return np.asarray(Image.fromarray(region).resize((w, h), Image.BILINEAR))


# -- pipeline -------------------------------------------------------------------------------------------
class TileAnalyzer(Protocol):
    """What the pipeline drives. ``analyze`` gets a batch (B, H, W, 3) uint8 at ``mpp`` µm/px and returns
    probabilities (B, H, W) float32 in [0, 1] (or (B, 1, 1) for a patch classifier)."""

    target_mpp: float
    tile: int  # pixels at the working resolution, margin included
    margin: int
    batch_size: int
    detects: bool  # extract connected components as detections

    def analyze(self, batch: np.ndarray, mpp: float) -> np.ndarray: ...


def run_tile_pipeline(reader: SlideReader, analyzer: TileAnalyzer, *, engine_id: str,
                      class_names: list[str] | None = None, threshold: float = 0.5,
                      min_area_um2: float = 30.0, progress: ProgressFn = no_progress,
                      cancel: CancelToken | None = None, max_tiles: int | None = None,
                      heatmap_max_side: int = 2048) -> SlideAnalysis:
    """Tissue -> grid -> batches -> stitched heatmap + detections (level 0) + slide summary."""
    cancel = as_token(cancel)
    meta = reader.metadata
    class_names = class_names or ["positive"]
    mpp0 = meta.mpp
    assumed_mpp = mpp0 is None
    if assumed_mpp:
        mpp0 = analyzer.target_mpp  # no resolution in the file: analyse level 0 as if it were at target
    downsample = max(1.0, analyzer.target_mpp / mpp0)
    work_mpp = mpp0 * downsample

    progress(0.01, "finding tissue on the thumbnail")
    tissue, tissue_cell = detect_tissue(reader)
    cancel.raise_if_cancelled()
    core_work = analyzer.tile - 2 * analyzer.margin
    core0 = int(round(core_work * downsample))
    # heatmap cell: a divisor of the core so that cells never straddle tiles
    cells_per_core = core_work
    for n in (core_work // 16, core_work // 32, core_work // 64, core_work // 112, 4, 2, 1):
        if n >= 1 and core_work % n == 0 and math.ceil(max(meta.dimensions) / (core0 / n)) <= heatmap_max_side:
            cells_per_core = n
            break
    cell0 = core0 / cells_per_core
    rows = math.ceil(meta.dimensions[1] / cell0)
    cols = math.ceil(meta.dimensions[0] / cell0)
    heat = np.full((rows, cols), np.nan, np.float32)

    tiles = tile_grid(meta.dimensions, core0, tissue, tissue_cell)
    if max_tiles is not None:
        tiles = tiles[:max_tiles]
    if not tiles:
        progress(1.0, "no tissue found")
    parts: list[Detections] = []
    positive_px = 0
    min_px = max(1, int(round(min_area_um2 / (work_mpp * work_mpp))))
    n_batches = math.ceil(len(tiles) / analyzer.batch_size) if tiles else 0
    for b in range(n_batches):
        cancel.raise_if_cancelled()
        batch_tiles = tiles[b * analyzer.batch_size:(b + 1) * analyzer.batch_size]
        imgs = np.stack([read_scaled(reader, t.x - analyzer.margin * downsample, t.y - analyzer.margin * downsample,
                                     analyzer.tile, analyzer.tile, downsample) for t in batch_tiles])
        cancel.raise_if_cancelled()
        probs = np.asarray(analyzer.analyze(imgs, work_mpp), np.float32)
        if probs.shape[1:] != (analyzer.tile, analyzer.tile):  # a classifier: one value per tile
            probs = np.broadcast_to(probs.reshape(len(batch_tiles), -1)[:, :1, None],
                                    (len(batch_tiles), analyzer.tile, analyzer.tile))
        for t, prob in zip(batch_tiles, probs):
            m = analyzer.margin
            core = prob[m:m + core_work, m:m + core_work]
            k = core_work // cells_per_core
            cells = core.reshape(cells_per_core, k, cells_per_core, k).mean(axis=(1, 3))
            r0, c0 = t.row * cells_per_core, t.col * cells_per_core
            rr, cc = min(cells_per_core, rows - r0), min(cells_per_core, cols - c0)
            heat[r0:r0 + rr, c0:c0 + cc] = cells[:rr, :cc]
            vw = int(math.ceil(t.w / downsample))
            vh = int(math.ceil(t.h / downsample))
            positive_px += int((core[:vh, :vw] > threshold).sum())
            if analyzer.detects:
                parts.append(_components(prob, threshold, min_px, m, core_work, vw, vh, t, downsample, work_mpp))
        progress(0.05 + 0.9 * (b + 1) / n_batches, f"analysed {min((b + 1) * analyzer.batch_size, len(tiles))} "
                                                   f"of {len(tiles)} tiles")
    dets = Detections.concat(parts, class_names)
    tissue_mm2 = float(tissue.sum()) * (tissue_cell * mpp0 / 1000.0) ** 2
    positive_mm2 = positive_px * (work_mpp / 1000.0) ** 2
    summary = {
        "engine": engine_id,
        "tiles_analysed": len(tiles),
        "working_mpp": round(work_mpp, 4),
        "mpp_assumed": assumed_mpp,
        "tissue_area_mm2": round(tissue_mm2, 4),
        "positive_structures": len(dets),
        "positive_per_mm2": round(len(dets) / tissue_mm2, 2) if tissue_mm2 > 0 else None,
        "positive_area_percent": round(100.0 * positive_mm2 / tissue_mm2, 2) if tissue_mm2 > 0 else None,
        "mean_score": round(float(dets.scores.mean()), 4) if len(dets) else None,
        "threshold": threshold,
    }
    progress(1.0, f"{len(dets)} positive structures in {tissue_mm2:.2f} mm² of tissue")
    return SlideAnalysis(engine_id, str(reader.path), tuple(meta.dimensions), meta.mpp,
                         Heatmap(heat, cell0, (0.0, 0.0), "positivity"), dets, tissue, tissue_cell, summary)


def _components(prob: np.ndarray, threshold: float, min_px: int, margin: int, core_work: int, vw: int, vh: int,
                t: Tile, downsample: float, work_mpp: float, object_um: float = 12.0) -> Detections:
    """Capillary-sized positive structures: the positive mask split by a watershed from local maxima of the
    smoothed probability (at least ``object_um`` apart), kept when their centroid lies in this tile's core.

    Splitting keeps objects near capillary size, so a continuous band of staining is counted as the
    structures along it rather than as one tile-sized blob cut at the tile border.
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.measure import approximate_polygon, find_contours
    from skimage.segmentation import watershed

    mask = prob > threshold
    if not mask.any():
        return Detections.empty()
    radius = max(1, int(round(object_um / 2 / work_mpp)))
    smooth = ndimage.gaussian_filter(prob.astype(np.float32), radius / 2)
    peaks = peak_local_max(smooth, min_distance=radius, threshold_abs=threshold, labels=mask.astype(np.int32),
                           exclude_border=False)
    markers = np.zeros(prob.shape, np.int32)
    markers[peaks[:, 0], peaks[:, 1]] = np.arange(1, len(peaks) + 1)
    # components without a peak (flat plateaus) still get a marker
    comp, ncomp = ndimage.label(mask)
    unmarked = np.setdiff1d(np.arange(1, ncomp + 1), np.unique(comp[markers > 0]))
    if len(unmarked):
        extra = ndimage.center_of_mass(mask, comp, unmarked)
        start = len(peaks) + 1
        for k, (cy, cx) in enumerate(extra):
            yy, xx = int(round(cy)), int(round(cx))
            if not mask[yy, xx]:
                ys, xs = np.nonzero(comp == unmarked[k])
                yy, xx = ys[0], xs[0]
            markers[yy, xx] = start + k
    labels = watershed(-smooth, markers, mask=mask)
    n = int(labels.max())
    if n == 0:
        return Detections.empty()
    idx = np.arange(1, n + 1)
    ones = np.ones(prob.shape, np.float32)
    sizes = ndimage.sum_labels(ones, labels, idx)
    cents = np.asarray(ndimage.center_of_mass(ones, labels, idx)).reshape(-1, 2)
    scores = ndimage.mean(prob, labels, idx)
    slices = ndimage.find_objects(labels)
    xy, boxes, sc, polys, areas = [], [], [], [], []
    for i in range(n):
        sl = slices[i]
        if sl is None or sizes[i] < min_px:
            continue
        cy, cx = cents[i]
        if not (margin <= cy < margin + min(core_work, vh) and margin <= cx < margin + min(core_work, vw)):
            continue
        ox = t.x + (sl[1].start - margin) * downsample
        oy = t.y + (sl[0].start - margin) * downsample
        sub = np.pad(labels[sl] == i + 1, 1)
        contours = find_contours(sub.astype(np.float32), 0.5)
        contour = max(contours, key=len) if contours else np.zeros((0, 2))
        contour = approximate_polygon(contour, tolerance=0.75)
        poly = np.stack([ox + (contour[:, 1] - 1 + 0.5) * downsample, oy + (contour[:, 0] - 1 + 0.5) * downsample],
                        axis=1).astype(np.float32) if len(contour) else np.zeros((0, 2), np.float32)
        xy.append((t.x + (cx - margin + 0.5) * downsample, t.y + (cy - margin + 0.5) * downsample))
        boxes.append((ox, oy, ox + (sl[1].stop - sl[1].start) * downsample, oy + (sl[0].stop - sl[0].start) * downsample))
        sc.append(scores[i])
        polys.append(poly)
        areas.append(sizes[i] * work_mpp * work_mpp)
    if not xy:
        return Detections.empty()
    return Detections(np.asarray(xy, np.float32), np.asarray(boxes, np.float32), np.asarray(sc, np.float32),
                      np.zeros(len(xy), np.int16), ["positive"], polys, np.asarray(areas, np.float32))


def require_tissue(analysis: SlideAnalysis) -> None:
    if analysis.summary.get("tiles_analysed", 0) == 0:
        raise EngineError("no tissue was found on this slide (the thumbnail looks like empty glass)")
