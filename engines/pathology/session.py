"""The pathology workspace's state without a screen: the open slide, where the view looks, the overlay layers
(heatmaps and detections from engines, imported objects), the annotation store with its undo history, what is
unsaved and how it is autosaved. Evented with psygnal; no Qt.

The Qt view binds to one :class:`PathologySession`: it draws ``session.viewport`` and ``session.layers`` and
forwards what the user does (zoom, pan, draw, undo, run an engine) to the session. Everything that reads a file
(``prepare_open``, ``prepare_import``, the autosave payload) is a plain function a worker thread runs; the session
itself only swaps results in, so a test drives the same workflows headless::

    s = PathologySession()
    s.open("slide.svs")                      # blocking here; the view runs prepare_open on a worker
    s.viewport.zoom_to_magnification(10)     # level and tiles follow: s.viewport.plan(cache)
    s.add_annotation("rectangle", [(x0, y0), (x1, y1)], cls="tumor")
    s.undo(); s.redo()
    s.autosave(); s.flush_autosave()         # through engines.core.autosave
"""
from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from psygnal import Signal

from engines.pathology.annotations import AnnotationSnapshot, AnnotationStore, SpatialIndex
from engines.pathology.viewstate import (TileKey, Viewport, boxes_meeting, detection_mode, raster_window, tile_rect0,
                                         tiles_for)


# -- overlay layers ------------------------------------------------------------------------------------------
@dataclass(eq=False)
class HeatmapLayer:
    """A raster over the slide (``values[i, j]`` covers level-0 x in [x0 + j*cell, x0 + (j+1)*cell)); colour map,
    opacity and threshold are the user's. ``version`` changes whenever the picture must be made again."""

    name: str
    values: np.ndarray
    cell: float
    origin: tuple[float, float] = (0.0, 0.0)
    colormap: str = "inferno"
    opacity: float = 0.5
    threshold: float = 0.0
    visible: bool = True
    smooth: bool = True  # bilinear between cells; False shows the raw grid
    version: int = 0

    def invalidate(self) -> None:
        self.version += 1

    def style_key(self) -> tuple:
        """Everything the drawn picture depends on (a cached picture with another key is stale)."""
        return self.colormap, self.opacity, self.threshold, self.version, id(self.values)

    def extent(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) in level-0 pixels."""
        rows, cols = self.values.shape
        return self.origin[0], self.origin[1], cols * self.cell, rows * self.cell

    def window(self, rect0) -> tuple[int, int, int, int] | None:
        """(c0, r0, c1, r1): the cells in view (see :func:`raster_window`)."""
        return raster_window(self.values.shape, self.cell, self.origin, rect0)

    def value_at(self, x: float, y: float) -> float | None:
        """The value under level-0 (x, y), or None outside the raster or where nothing was analysed."""
        j, i = int((x - self.origin[0]) // self.cell), int((y - self.origin[1]) // self.cell)
        if 0 <= i < self.values.shape[0] and 0 <= j < self.values.shape[1] and not np.isnan(self.values[i, j]):
            return float(self.values[i, j])
        return None


@dataclass(eq=False)
class DetectionLayer:
    """Detections in level-0 pixels; which are in view comes from a spatial index (100,000 objects pan as
    smoothly as ten), how to draw them from :func:`detection_mode` (``last_mode`` is what the last frame did)."""

    name: str
    xy: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_names: list[str]
    polygons: Any = None  # a sequence of (k, 2) outlines, row for row, or None
    visible: bool = True
    min_score: float = 0.0
    density_above: int = 3000  # more visible objects than this: draw a density raster
    outline_below: int = 1500  # fewer than this and big enough on screen: draw outlines
    last_mode: str = ""
    index: SpatialIndex = field(default_factory=SpatialIndex, repr=False)

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, np.float32).reshape(-1, 2)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.classes = np.asarray(self.classes, np.int16).reshape(-1)
        sizes = np.maximum(self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1])
        self.median_size = float(np.median(sizes)) if len(sizes) else 0.0
        # a view that holds (min x1, max x0, min y1, max y0) meets every box: far out, every frame at low
        # magnification, no index query is needed for the rows (None when a box is not finite)
        b = self.boxes
        self._all_meet = (float(b[:, 2].min()), float(b[:, 0].max()), float(b[:, 3].min()), float(b[:, 1].max())) \
            if len(b) and np.isfinite(b).all() else None

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def rows_in(self, rect0) -> np.ndarray:
        """Rows (ascending) whose box meets ``rect0`` and whose score reaches ``min_score``."""
        if not len(self):
            return np.zeros(0, np.int64)
        every = self._all_meet
        if every is not None and rect0[0] <= every[0] and rect0[2] >= every[1] and rect0[1] <= every[2] \
                and rect0[3] >= every[3]:
            idx = np.arange(len(self), dtype=np.int64)
        elif len(self) >= SpatialIndex.SCAN_BELOW:
            idx = self.index.query(rect0, self.boxes)
        else:
            idx = boxes_meeting(self.boxes, rect0)
        if self.min_score > 0:
            idx = idx[self.scores[idx] >= self.min_score]
        return idx

    def mode_for(self, n_visible: int, scale: float) -> str:
        """How ``n_visible`` of these objects are drawn at ``scale`` screen px per level-0 px."""
        return detection_mode(n_visible, self.median_size * scale, density_above=self.density_above,
                              outline_below=self.outline_below, has_outlines=self.polygons is not None)

    def main_class(self, idx: np.ndarray) -> int:
        return int(np.bincount(self.classes[idx]).argmax()) if len(idx) else 0


@dataclass
class LayerStyle:
    """The user's settings that new engine layers take on (the layer panel's sliders)."""

    colormap: str = "inferno"
    opacity: float = 0.35
    threshold: float = 0.2
    min_score: float = 0.0


class OverlayLayers:
    """What is drawn over the slide besides its pixels: heatmaps, detection layers, whether annotations show,
    the selected annotation. ``changed`` fires on every change a view must redraw."""

    changed = Signal()
    selection_changed = Signal(str)

    def __init__(self) -> None:
        self.heatmaps: list[HeatmapLayer] = []
        self.detections: list[DetectionLayer] = []
        self.annotations_visible = True
        self.selected_id = ""
        self.style = LayerStyle()

    def clear(self) -> None:
        self.heatmaps, self.detections = [], []
        self.selected_id = ""
        self.changed.emit()

    def select(self, ann_id: str) -> None:
        ann_id = ann_id or ""
        if ann_id != self.selected_id:
            self.selected_id = ann_id
            self.selection_changed.emit(ann_id)
            self.changed.emit()

    def entries(self) -> list[tuple[str, int, str, bool]]:
        """(kind, index, name, visible) of the heatmap and detection layers, in drawing order."""
        out = [("heatmap", i, h.name, h.visible) for i, h in enumerate(self.heatmaps)]
        out += [("detections", i, f"{d.name} ({len(d):,})", d.visible) for i, d in enumerate(self.detections)]
        return out

    def set_visible(self, kind: str, index: int, on: bool) -> None:
        if kind == "heatmap":
            self.heatmaps[index].visible = on
        elif kind == "detections":
            self.detections[index].visible = on
        else:
            self.annotations_visible = on
        self.changed.emit()

    def set_style(self, **values) -> None:
        """Change the heatmap colours/opacity/threshold or the detections' minimum score, for every layer."""
        for k, v in values.items():
            setattr(self.style, k, v)
        for h in self.heatmaps:
            h.colormap, h.opacity, h.threshold = self.style.colormap, self.style.opacity, self.style.threshold
            h.invalidate()
        for d in self.detections:
            d.min_score = self.style.min_score
        self.changed.emit()

    def add_detections(self, layer: DetectionLayer) -> DetectionLayer:
        self.detections.append(layer)
        self.changed.emit()
        return layer

    def show_analysis(self, analysis) -> tuple[HeatmapLayer, DetectionLayer]:
        """An engine's heatmap and detections as the visible layers (an earlier run of the same engine is
        replaced; other layers stay, hidden)."""
        eid = analysis.engine_id
        self.heatmaps = [h for h in self.heatmaps if h.name != f"Heatmap · {eid}"]
        self.detections = [d for d in self.detections if d.name != f"Detections · {eid}"]
        for layer in [*self.heatmaps, *self.detections]:
            layer.visible = False
        hm, d, st = analysis.heatmap, analysis.detections, self.style
        heat = HeatmapLayer(f"Heatmap · {eid}", hm.values, hm.cell, tuple(hm.origin), colormap=st.colormap,
                            opacity=st.opacity, threshold=st.threshold)
        dets = DetectionLayer(f"Detections · {eid}", d.xy, d.boxes, d.scores, d.classes, d.class_names, d.polygons,
                              min_score=st.min_score)
        self.heatmaps.append(heat)
        self.detections.append(dets)
        self.changed.emit()
        return heat, dets


# -- work for a worker thread: open a slide, import a GeoJSON -------------------------------------------------
@dataclass
class OpenedSlide:
    """What opening a slide read (on a worker): the reader, the thumbnail, the tiles of the first fitted view
    (when few), small pictures of the associated images, and the slide's autosaved annotations."""

    path: Path
    reader: Any
    thumbnail: np.ndarray
    thumb_scale: float
    preloaded: dict[TileKey, np.ndarray] = field(default_factory=dict)
    associated: dict[str, np.ndarray] = field(default_factory=dict)
    annotations: Any = None  # an AnnotationTable or None
    bounds: np.ndarray | None = None
    index: SpatialIndex | None = None
    notices: list[str] = field(default_factory=list)


def prepare_open(path: str | Path, screen: tuple[int, int] = (1200, 800), progress=None, cancel=None,
                 preload_below: int = 24) -> OpenedSlide:
    """Open and check a slide, read its thumbnail, the tiles of the fitted first view when at most
    ``preload_below`` cover it, its associated images and its autosave. File I/O: call it off the GUI thread."""
    from engines.core.autosave import clean_stale_temps
    from engines.core.model_engine import as_token
    from engines.pathology.annotations import autosave_path, load_saved_annotations
    from engines.pathology.slide import open_slide

    path = Path(path)
    progress = progress or (lambda fraction, message: None)
    cancel = as_token(cancel)
    progress(None, f"opening {path.name}")
    reader = open_slide(path)
    try:
        cancel.raise_if_cancelled()
        progress(None, "reading the thumbnail")
        thumb, thumb_scale = reader.thumbnail(1024, progress=progress, cancel=cancel)
        meta = reader.metadata
        vp = Viewport(*screen)
        vp.set_slide(meta)
        level = vp.level
        w0, h0 = meta.dimensions
        keys = tiles_for(meta, level, (0, 0, w0 - 1, h0 - 1))  # the whole slide at the fitted level
        pre = {}
        if len(keys) <= preload_below:
            for key in keys:
                cancel.raise_if_cancelled()
                x, y, w, h = tile_rect0(meta, *key)
                pre[key] = reader.read_region((x, y), level, (w, h))
        opened = OpenedSlide(path, reader, thumb, thumb_scale, pre, _associated_pictures(reader))
        clean_stale_temps(autosave_path(path).parent)
        opened.annotations, opened.notices = load_saved_annotations(path)
        if opened.annotations is not None and len(opened.annotations):
            progress(None, f"indexing {len(opened.annotations):,} annotations")
            opened.bounds = opened.annotations.bounds
            _ = opened.annotations.keys  # made here, not on the GUI thread
            if len(opened.bounds) >= SpatialIndex.SCAN_BELOW:
                opened.index = SpatialIndex.build(opened.bounds)
    except BaseException:
        reader.close()
        raise
    return opened


def _associated_pictures(reader, limit: int = 4, side: int = 240) -> dict[str, np.ndarray]:
    """Small RGB pictures of the slide's label/macro images; a broken one is left out."""
    from PIL import Image

    out = {}
    for name in reader.metadata.associated_images[:limit]:
        try:
            im = Image.fromarray(reader.associated_image(name))
            im.thumbnail((side, side))
            out[name] = np.asarray(im.convert("RGB"))
        except Exception:  # noqa: BLE001 - a broken label image is skipped
            continue
    return out


class RaggedRows:
    """Rows of a flat (m, 2) coordinate array cut by offsets: ``rows[i]`` is a view, no array per row is made."""

    def __init__(self, coords: np.ndarray, offsets: np.ndarray) -> None:
        self.coords, self.offsets = coords, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.coords[int(self.offsets[i]):int(self.offsets[i + 1])]


def prepare_import(path: str | Path, progress=None, cancel=None, base_bounds: np.ndarray | None = None) -> dict:
    """Read and validate a GeoJSON file a chunk at a time into a columnar table, split annotations from
    detections, and build the boxes of the first and the arrays of the second with numpy (a million features
    must not be looped over on the GUI thread). With ``base_bounds`` (the store's rows now) the spatial index over
    the rows after the addition is built here too. Returns parsed, annotations, bounds, detections, index."""
    from engines.core.model_engine import as_token
    from engines.pathology.geojson import OBJECT_TYPES, load_geojson_table

    path = Path(path)
    progress = progress or (lambda fraction, message: None)
    cancel = as_token(cancel)
    progress(None, f"reading {path.name}")
    table, parsed = load_geojson_table(path, progress=progress, cancel=cancel)
    cancel.raise_if_cancelled()
    progress(None, f"indexing {len(table):,} objects")
    is_det = table.object_type == OBJECT_TYPES.index("detection")
    anns = table.take(np.flatnonzero(~is_det)) if is_det.any() else table
    dets = None
    if is_det.any():
        d = table.take(np.flatnonzero(is_det))
        names = [c or "object" for c in d.classes]
        classes = sorted(set(np.asarray(names, object)[np.unique(d.cls)].tolist()))
        remap = np.asarray([classes.index(c) if c in classes else 0 for c in names], np.int16)
        lens = np.diff(d.offsets).astype(np.float64)
        starts = d.offsets[:-1]
        xy = np.stack([np.add.reduceat(d.coords[:, 0], starts) / lens,
                       np.add.reduceat(d.coords[:, 1], starts) / lens], 1).astype(np.float32)
        scores = np.ones(len(d), np.float32)
        for r, m in d.measurements.items():
            if "score" in m:
                scores[r] = m["score"]
        dets = (xy, d.bounds.astype(np.float32), scores, remap[d.cls], classes,
                RaggedRows(d.coords.astype(np.float32), d.offsets))
    _ = anns.bounds, anns.keys  # made here, not on the GUI thread
    index = None
    if base_bounds is not None and len(anns):
        combined = np.concatenate([base_bounds, anns.bounds])
        if len(combined) >= SpatialIndex.SCAN_BELOW:
            index = SpatialIndex.build(combined)
    return {"parsed": parsed, "annotations": anns, "bounds": anns.bounds, "detections": dets, "index": index}


# -- what the panels show -------------------------------------------------------------------------------------
def slide_status(path: Path, meta) -> str:
    return (f"{Path(path).name} · {meta.vendor} · {meta.dimensions[0]:,} x {meta.dimensions[1]:,} px · "
            f"{meta.level_count} levels · " + (f"{meta.mpp:.3f} µm/px" if meta.mpp else "no resolution in the file"))


def slide_info_rows(meta) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(property, value, children) rows describing a slide for its info panel."""
    w0, h0 = meta.dimensions
    rows = [("File", Path(meta.path).name, []), ("Vendor", meta.vendor, []),
            ("Dimensions", f"{w0:,} x {h0:,} px", []),
            ("Microns per pixel", f"{meta.mpp_x:.4f} x {meta.mpp_y:.4f}" if meta.mpp_x and meta.mpp_y
             else "not in the file (scale bar in pixels)", [])]
    if meta.mpp:
        rows.append(("Physical size", f"{w0 * meta.mpp / 1000:.2f} x {h0 * meta.mpp / 1000:.2f} mm", []))
    rows.append(("Objective power", f"{meta.objective_power:g}x" if meta.objective_power else "not in the file", []))
    rows.append(("Levels", str(meta.level_count),
                 [(f"level {i}", f"{d[0]:,} x {d[1]:,} (downsample {ds:g})")
                  for i, (d, ds) in enumerate(zip(meta.level_dimensions, meta.level_downsamples))]))
    rows.append(("Associated images", ", ".join(meta.associated_images) or "none", []))
    rows.append(("Properties", f"{len(meta.properties)}", [(k, str(meta.properties[k])) for k in sorted(meta.properties)]))
    return rows


def analysis_summary_rows(analysis, others=()) -> list[tuple[str, str]]:
    """(measure, value) rows of a slide analysis, with one row per other engine's run to compare."""
    s = analysis.summary

    def fmt(key: str, pattern: str) -> str:
        return pattern.format(s[key]) if s.get(key) is not None else "–"

    rows = [("Engine", str(s.get("engine"))),
            ("Tissue area", f"{s['tissue_area_mm2']:.2f} mm²"),
            ("Positive structures", f"{s['positive_structures']:,}"),
            ("Positive per mm² of tissue", fmt("positive_per_mm2", "{:.1f}")),
            ("Positive area (% of tissue)", fmt("positive_area_percent", "{:.1f} %")),
            ("Mean detection score", fmt("mean_score", "{:.2f}")),
            ("Tiles analysed", str(s.get("tiles_analysed"))),
            ("Working resolution", f"{s['working_mpp']} µm/px" + (" (assumed: no mpp in file)" if s.get("mpp_assumed")
                                                                  else ""))]
    for o in others:
        rows.append((f"vs {o.engine_id}", f"{o.summary['positive_structures']:,} structures, "
                                          f"{o.summary['positive_area_percent']:.1f} % area"))
    return rows


# -- the session ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PendingAutosave:
    """One numbered snapshot of a slide's annotations on its way to the autosave writer."""

    gen: int
    slide: Path
    snapshot: AnnotationSnapshot


def _run_here(fn: Callable[[], None], key: str) -> None:
    fn()


class PathologySession:
    """One slide at a time with its view, layers, annotations (undoable) and autosave.

    ``background(fn, key)`` runs autosave serialisation (the view hands it to its task manager; by default it
    runs at once). ``retire_reader(reader)`` is called with the previous slide's reader when another slide
    opens (by default it is closed; a view whose tile threads may still read it closes it later itself).
    ``dirty`` is True while edits have not been handed to the autosave; asking the user before opening another
    slide is the view's decision, the session autosaves the previous slide's edits to its own file either way.
    """

    opened = Signal(object)  # OpenedSlide
    closed = Signal()
    annotations_changed = Signal(bool)  # True after an edit (to autosave), False after a reset (open)
    dirty_changed = Signal(bool)
    analysis_added = Signal(object)
    autosave_failed = Signal(str)  # emitted on the autosave writer's thread

    def __init__(self, *, background: Callable[[Callable[[], None], str], Any] | None = None,
                 retire_reader: Callable[[Any], None] | None = None) -> None:
        from engines.core.autosave import AutosaveWriter

        self.viewport = Viewport()
        self.layers = OverlayLayers()
        self.store = AnnotationStore()
        self.slide_path: Path | None = None
        self.reader = None
        self.analysis = None
        self.analyses: dict[str, Any] = {}
        self.notices: list[str] = []
        self.background = background or _run_here
        self.retire_reader = retire_reader or (lambda reader: reader.close())
        self._resetting = False
        self._was_dirty = False
        self._autosave_lock = threading.Lock()
        self._autosave_gen = 0  # snapshots are numbered where they are taken; a stale one is never queued later
        self._autosave_queued = 0
        me = weakref.ref(self)  # the writer's thread must not keep a closed session alive
        self.autosaver = AutosaveWriter(on_error=lambda m: (s := me()) is not None and s.autosave_failed.emit(m))
        self.store.listeners.append(self._store_changed)

    # -- the slide ------------------------------------------------------------------------------------------
    @property
    def meta(self):
        return None if self.reader is None else self.reader.metadata

    @property
    def dirty(self) -> bool:
        return self.store.dirty

    def open(self, path: str | Path, progress=None, cancel=None) -> OpenedSlide:
        """Open ``path`` here and now (a script or a test; the view runs :func:`prepare_open` on a worker)."""
        opened = prepare_open(path, (self.viewport.width, self.viewport.height), progress, cancel)
        self.adopt(opened)
        return opened

    def adopt(self, opened: OpenedSlide) -> None:
        """Make ``opened`` the session's slide: the previous slide's edits are autosaved to its file, then the
        layers, the analyses, the selection and the undo history start again with the new slide's autosave."""
        self.autosave()
        old = self.reader
        self.reader, self.slide_path = opened.reader, Path(opened.path)
        self.analysis, self.analyses = None, {}
        self.notices = list(opened.notices)
        self.layers.clear()
        self._resetting = True
        try:
            self.store.reset(opened.annotations, opened.bounds, opened.index)
        finally:
            self._resetting = False
        self.viewport.set_slide(self.reader.metadata)
        if old is not None and old is not opened.reader:
            self.retire_reader(old)
        self.opened.emit(opened)

    def close_slide(self) -> None:
        """Autosave, close the slide and show nothing."""
        self.autosave()
        old, self.reader, self.slide_path = self.reader, None, None
        self.analysis, self.analyses = None, {}
        self.layers.clear()
        self._resetting = True
        try:
            self.store.reset()
        finally:
            self._resetting = False
        self.viewport.set_slide(None)
        if old is not None:
            self.retire_reader(old)
        self.closed.emit()

    def read_tile(self, key: TileKey) -> np.ndarray:
        """RGB pixels of one tile (level, column, row): what a tile loader reads for the canvas."""
        x, y, w, h = tile_rect0(self.meta, *key)
        return self.reader.read_region((x, y), key[0], (w, h))

    def describe_point(self, x: float, y: float) -> str:
        """The status line for the level-0 point under the cursor (its place in mm, the heatmap's value)."""
        meta = self.meta
        if meta is None or math.isnan(x):
            return ""
        text = f"x {x:,.0f}  y {y:,.0f} px (level 0)"
        if meta.mpp:
            text += f"  ·  {x * meta.mpp / 1000:.3f}, {y * meta.mpp / 1000:.3f} mm"
        if self.analysis is not None:
            hm = self.analysis.heatmap
            v = HeatmapLayer("", hm.values, hm.cell, tuple(hm.origin)).value_at(x, y)
            if v is not None:
                text += f"  ·  heatmap {v:.2f}"
        return text

    def zoom_preset(self, mag: float) -> tuple[str, str]:
        """(label, tooltip) of a zoom preset; presets beyond the scan's own resolution say they upsample."""
        scale = self.viewport.scale_for_magnification(mag)
        up = scale is not None and scale > 1.0001
        tip = f"Objective-equivalent {mag}x ({10 / mag:g} µm per screen pixel)"
        if up:
            tip += f"; the scan has {1 / scale:.2g} of the pixels needed, each shown {scale:.3g} times larger"
        return (f"{mag}x (upsampled)" if up else f"{mag}x"), tip

    # -- annotations ----------------------------------------------------------------------------------------
    def _store_changed(self) -> None:
        if self.layers.selected_id and self.store.index_of(self.layers.selected_id) < 0:
            self.layers.select("")  # the selected annotation is gone (deleted, undone, another slide)
        self.annotations_changed.emit(not self._resetting)
        self._dirty_now()

    def _dirty_now(self) -> None:
        if self.store.dirty != self._was_dirty:
            self._was_dirty = self.store.dirty
            self.dirty_changed.emit(self._was_dirty)

    def add_annotation(self, shape: str, points, cls: str = "", name: str | None = None):
        """Add what the user drew: a rectangle or an ellipse from two corners, else the outline itself; it
        is named after its shape and number, coloured by class, and selected. Undoable."""
        from engines.pathology.geojson import DEFAULT_COLORS, Annotation, ellipse_points, rectangle_points

        if shape in ("rectangle", "ellipse"):
            (x0, y0), (x1, y1) = points
            pts = (rectangle_points if shape == "rectangle" else ellipse_points)(x0, y0, x1, y1)
        else:
            pts = [(float(x), float(y)) for x, y in points]
        cls = (cls or "").strip()
        ann = Annotation(shape, pts, name=name or f"{shape.capitalize()} {len(self.store) + 1}", cls=cls,
                         color=DEFAULT_COLORS.get(cls) if cls else None)
        self.store.add(ann)
        self.layers.select(ann.id)
        return ann

    def rename(self, ann_id: str, name: str) -> None:
        if ann_id:
            self.store.update(ann_id, name=name.strip())

    def set_class(self, ann_id: str, cls: str) -> None:
        """Give an annotation a class (and that class's colour); no change, no undo step."""
        from engines.pathology.geojson import DEFAULT_COLORS

        ann = self.store.get(ann_id) if ann_id else None
        cls = cls.strip()
        if ann is not None and ann.cls != cls:
            self.store.update(ann.id, cls=cls, color=DEFAULT_COLORS.get(cls, ann.color))

    def delete(self, ann_id: str) -> None:
        if ann_id:
            self.store.remove(ann_id)

    def undo(self) -> bool:
        return self.store.undo()

    def redo(self) -> bool:
        return self.store.redo()

    def centre_on_annotation(self, row: int) -> bool:
        """Select row ``row`` of the store and centre the view on it; False when it has no outline."""
        if not 0 <= row < len(self.store):
            return False
        self.layers.select(self.store.row_id(row))
        x0, y0, x1, y1 = self.store.bounds[row]
        if not np.isfinite(x0):
            return False
        self.viewport.set_view((x0 + x1) / 2, (y0 + y1) / 2)
        return True

    # -- engine results and imports -----------------------------------------------------------------------
    def add_analysis(self, analysis) -> bool:
        """Show an engine's SlideAnalysis as layers; False (nothing shown) when it belongs to another slide."""
        if self.slide_path is None or Path(analysis.slide_path).resolve() != self.slide_path.resolve():
            return False
        self.analysis = analysis
        self.analyses[analysis.engine_id] = analysis
        self.layers.show_analysis(analysis)
        self.analysis_added.emit(analysis)
        return True

    def other_analyses(self) -> list:
        return [a for k, a in self.analyses.items() if self.analysis is None or k != self.analysis.engine_id]

    def add_imported(self, result: dict, name: str, version: int | None = None) -> tuple[int, int]:
        """Take what :func:`prepare_import` read: annotations join the store (one undo step), detections become
        a layer. ``version`` is the store's version when the import started: the worker's index is used only if
        nothing changed meanwhile. Returns (annotations, detections) added."""
        anns, dets = result["annotations"], result["detections"]
        index = result.get("index") if version is None or self.store.version == version else None
        self.store.extend(anns, result["bounds"], index)
        if dets is not None:
            self.layers.add_detections(DetectionLayer(f"Imported · {name}", *dets))
        return len(anns), 0 if dets is None else len(dets[0])

    def import_file(self, path: str | Path) -> tuple[int, int]:
        """Import a GeoJSON here and now (a script or a test; the view runs :func:`prepare_import` on a worker)."""
        result = prepare_import(path, base_bounds=self.store.bounds)
        return self.add_imported(result, Path(path).name, self.store.version)

    # -- autosave -------------------------------------------------------------------------------------------
    def autosave_path(self) -> Path | None:
        from engines.pathology.annotations import autosave_path

        return None if self.slide_path is None else autosave_path(self.slide_path)

    def take_autosave(self) -> PendingAutosave | None:
        """A numbered snapshot of the edits not yet autosaved (None when there are none); cheap, the store's
        tables are immutable. Afterwards the session is not dirty."""
        if self.slide_path is None or not self.store.dirty:
            return None
        snap = self.store.snapshot()
        self.store.dirty = False
        self._autosave_gen += 1
        self._dirty_now()
        return PendingAutosave(self._autosave_gen, self.slide_path, snap)

    def write_autosave(self, pending: PendingAutosave, delay: float = 0.2) -> bool:
        """Serialise ``pending`` and queue it to the writer unless a newer snapshot was queued already (any
        thread). Up to COMPACT_ABOVE annotations are saved as GeoJSON; more as columns in an .npz."""
        from engines.pathology.annotations import (AUTOSAVE_SCHEMA, COMPACT_ABOVE, autosave_path, autosave_payload,
                                                   compact_autosave_path)

        items, slide = pending.snapshot, pending.slide
        compact = len(items) > COMPACT_ABOVE
        if compact:
            arrays, meta = items.to_table().to_arrays()
            meta["slide"] = slide.name
        else:
            payload = autosave_payload(slide, items.annotations())
        with self._autosave_lock:
            if pending.gen < self._autosave_queued:
                return False
            self._autosave_queued = pending.gen
            if compact:
                self.autosaver.save_arrays(compact_autosave_path(slide), arrays, schema=AUTOSAVE_SCHEMA, meta=meta,
                                           delay=delay)
            else:
                self.autosaver.save(autosave_path(slide), payload, schema=AUTOSAVE_SCHEMA, delay=delay)
        return True

    def autosave(self, delay: float = 0.2) -> PendingAutosave | None:
        """Snapshot the unsaved edits and have ``background`` serialise and queue them (an empty list is saved
        too: deleting everything is an edit)."""
        pending = self.take_autosave()
        if pending is not None:
            self.background(lambda: self.write_autosave(pending, delay), f"pathology:autosave:{pending.gen}")
        return pending

    def flush_autosave(self, timeout: float = 5.0) -> bool:
        """Write everything queued now; True when it was written in time."""
        return self.autosaver.flush(timeout)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Closing: the last snapshot (also one a worker is still building) is written before this returns."""
        in_flight = self._autosave_gen > self._autosave_queued
        if self.slide_path is not None and (self.store.dirty or in_flight):
            self._autosave_gen += 1
            self.write_autosave(PendingAutosave(self._autosave_gen, self.slide_path, self.store.snapshot()), 0.0)
            self.store.dirty = False
        return self.autosaver.close(timeout=timeout)
