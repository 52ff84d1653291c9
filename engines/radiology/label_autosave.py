"""The radiology workspace's autosave of label edits, on the shared service (engines/core/autosave.py).

One uncompressed .npz per study beside the shared JSON path (``array_autosave_path(autosave_path(...))``),
keyed by the SeriesInstanceUID when there is one (the edits follow the series wherever it is opened from),
else by the source file; each layer's labels are zlib-compressed in it (label maps compress 50-500 times),
with names, colours and the grid they were drawn on. Writing and reading run in workers; a damaged file or
one from a newer version is set aside by the shared service with one sentence. The folder of NIfTI files that
versions before the shared service wrote is read once when no new autosave exists.

The same file keeps the study's findings review (format 2): every finding as the review left it (state, box,
figures, ``edited``), what the detector gave for the edited ones, the score threshold, the finding the cursor
was on, the engine, and each finding's mask (its bounding block, zlib-compressed) - the mask being painted in
its own layer when it has one - so a restart brings back the Review list with its states, boxes and masks
tied to their findings (:func:`load_autosave_contents`), not as plain label layers. Format 1 files (label
layers only) are still read.
"""
from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from engines.radiology.findings import STATES, Finding, MaskPatch, same_mask

AUTOSAVE_KIND = "radiology"
AUTOSAVE_SCHEMA = 2  # 1: label layers; 2: and the findings review


@dataclass
class RestoredReview:
    """A findings review read back from an autosave (what ``RadiologySession.restore_review`` takes)."""

    findings: list[Finding]
    origins: dict[str, Finding] = field(default_factory=dict)  # what the detector gave, for edited findings
    threshold: float = 0.5
    current: str | None = None
    engine: str = ""
    layers: dict[str, bool] = field(default_factory=dict)  # findings whose mask was painted -> unexported


@dataclass
class AutosaveContents:
    """What a study's autosave holds: label layers (LabelMaps on the display grid) and the findings review."""

    layers: list = field(default_factory=list)
    review: RestoredReview | None = None
    notices: list[str] = field(default_factory=list)


def autosave_file(volume) -> Path | None:
    """The autosave of a volume's label edits: keyed by its SeriesInstanceUID (the edits follow the series
    wherever it is opened from), else by its source file."""
    from engines.core.autosave import array_autosave_path, autosave_path

    if volume is None:
        return None
    uid = volume.meta.get("series_uid")
    if uid:
        return array_autosave_path(autosave_path(AUTOSAVE_KIND, "", content_key=f"series:{uid}"))
    if volume.source_path:
        return array_autosave_path(autosave_path(AUTOSAVE_KIND, volume.source_path))
    return None


def write_autosave(writer, snapshot: dict, *, wait: bool = True) -> Path:
    """Compress a :meth:`RadiologySession.autosave_snapshot` and hand it to ``writer`` (an
    ``engines.core.autosave.AutosaveWriter``); with ``wait`` return once it is on disk."""
    arrays, layers = {}, []
    for n, item in enumerate(snapshot["layers"]):
        labels = np.ascontiguousarray(item["labels"])
        arrays[f"labels_{n}"] = np.frombuffer(zlib.compress(labels.tobytes(), 1), np.uint8)
        layers.append({"name": item["name"], "names": {str(k): v for k, v in item["names"].items()},
                       "colours": {str(k): list(v) for k, v in item["colours"].items()},
                       "dtype": labels.dtype.str, "shape": list(labels.shape)})
    g = snapshot["geometry"]
    meta = {"series": snapshot["series"], "layers": layers,
            "geometry": {"spacing": list(g.spacing), "origin": list(g.origin), "direction": g.direction.ravel().tolist()}}
    if snapshot.get("review") is not None:
        meta["review"] = _encode_review(snapshot["review"], arrays)
    path = Path(snapshot["path"])
    writer.save_arrays(path, arrays, schema=AUTOSAVE_SCHEMA, meta=meta, delay=0.0)
    if wait:
        writer.flush()
    return path


def load_autosave_layers(path: Path | None, geometry, shape, source_name: str = "",
                         legacy_folder: Path | None = None) -> tuple[list, list[str]]:
    """(LabelMaps on the display grid, sentences for the user) from a study's autosave (its label layers
    only; :func:`load_autosave_contents` gives the findings review too). File I/O: run it in a worker."""
    contents = load_autosave_contents(path, geometry, shape, source_name, legacy_folder)
    return contents.layers, contents.notices


def load_autosave_contents(path: Path | None, geometry, shape, source_name: str = "",
                           legacy_folder: Path | None = None) -> AutosaveContents:
    """The label layers (on the display grid) and the findings review of a study's autosave, with sentences
    for the user; a damaged, foreign or newer one is set aside by the shared service with one sentence.
    File I/O: run it in a worker."""
    from engines.core.autosave import load_array_autosave
    from engines.radiology.overlays import LabelMap

    if path is None:
        return AutosaveContents()
    if not Path(path).exists() and legacy_folder is not None and legacy_folder.is_dir():
        maps, problems = _legacy_layers(legacy_folder, geometry, shape)
        return AutosaveContents(maps, None, problems)

    def validate(arrays: dict, meta: dict) -> AutosaveContents:
        saved = _saved_geometry(meta)
        maps = []
        for n, item in enumerate(meta["layers"]):
            raw = zlib.decompress(arrays[f"labels_{n}"].tobytes()) if f"labels_{n}" in arrays else b""
            dtype = np.dtype(item["dtype"])
            if dtype.kind not in "iub":
                raise ValueError(f"layer {n}: {dtype} is not a label type")
            labels = np.frombuffer(raw, dtype).reshape(item["shape"]).copy()
            names = {int(k): str(v) for k, v in item["names"].items()}
            colours = {int(k): tuple(int(c) for c in v) for k, v in item["colours"].items()}
            maps.append(LabelMap(labels, saved, names, colours, str(item["name"])).on_grid(geometry, shape))
        review = meta.get("review")
        return AutosaveContents(maps, None if review is None else _decode_review(review, arrays, saved,
                                                                                  geometry, shape))

    try:
        loaded = load_array_autosave(path, schema=AUTOSAVE_SCHEMA, validate=_zlib_safe(validate),
                                     source_name=source_name or None)
    except OSError as exc:
        return AutosaveContents(notices=[f"The autosaved label edits could not be read ({exc})"])
    contents = loaded.data if loaded.data is not None else AutosaveContents()
    contents.notices = [loaded.notice] if loaded.notice else []
    return contents


def _saved_geometry(meta: dict):
    from engines.radiology.geometry import Geometry

    g = meta["geometry"]
    return Geometry(tuple(g["spacing"]), tuple(g["origin"]), np.asarray(g["direction"], float).reshape(3, 3))


# -- the findings review -----------------------------------------------------------------------------------
_TRIPLES = ("lo_mm", "hi_mm", "centre_mm")


def _encode_review(review: dict, arrays: dict) -> dict:
    """The JSON part of a review snapshot (``RadiologySession.autosave_snapshot()["review"]``); each distinct
    mask goes into ``arrays`` as ``finding_mask_<n>`` (zlib-compressed bounding block). The mask being painted
    in a finding's own layer is taken over the finding's (which a worker may not have measured yet)."""
    masks: list[dict] = []
    index: dict[int, int] = {}

    def mask_ref(patch: MaskPatch | None) -> int | None:
        if patch is None or not patch.array.any():
            return None
        if id(patch) not in index:
            n = index[id(patch)] = len(masks)
            block = np.ascontiguousarray(patch.array, dtype=bool)
            arrays[f"finding_mask_{n}"] = np.frombuffer(zlib.compress(block.tobytes(), 1), np.uint8)
            masks.append({"lo_kji": [int(v) for v in patch.lo_kji], "shape": list(block.shape)})
        return index[id(patch)]

    painted = {fid: MaskPatch.from_full(labels) for fid, (labels, _unsaved) in review["layers"].items()}
    records = []
    for f in review["findings"]:
        origin = review["origins"].get(f.id, f)
        if f.id in painted:
            mask = painted[f.id]
            f = replace(f, mask=mask, edited=f.edited or not same_mask(origin.mask, mask))
        record = _finding_record(f, mask_ref)
        if origin is not f:
            record["origin"] = _finding_record(origin, mask_ref)
        records.append(record)
    return {"engine": str(review["engine"]), "threshold": float(review["threshold"]), "current": review["current"],
            "shape": [int(v) for v in review["shape"]], "masks": masks, "findings": records,
            "layers": {fid: bool(unsaved) for fid, (_labels, unsaved) in review["layers"].items()}}


def _finding_record(f: Finding, mask_ref) -> dict:
    out: dict = {}
    for spec in fields(Finding):
        value = getattr(f, spec.name)
        if spec.name == "mask":
            out["mask"] = mask_ref(value)
        elif spec.name in _TRIPLES:
            out[spec.name] = None if value is None else [float(v) for v in value]
        else:
            out[spec.name] = value
    return out


def _decode_review(meta: dict, arrays: dict, saved, geometry, shape) -> RestoredReview:
    """A :class:`RestoredReview` from an autosave's review part; anything out of place raises ValueError,
    TypeError or KeyError (the shared service then sets the file aside as damaged)."""
    saved_shape = tuple(int(v) for v in meta["shape"])
    same_grid = (saved_shape == tuple(shape) and np.allclose(saved.spacing, geometry.spacing, atol=1e-6)
                 and np.allclose(saved.origin, geometry.origin, atol=1e-4)
                 and np.allclose(saved.direction, geometry.direction, atol=1e-6))
    masks = [_decode_mask(n, item, arrays, saved, saved_shape, geometry, shape, same_grid)
             for n, item in enumerate(meta["masks"])]
    findings, origins = [], {}
    for record in meta["findings"]:
        f = _finding_from_record(record, masks)
        findings.append(f)
        if record.get("origin") is not None:
            origin = _finding_from_record(record["origin"], masks)
            if origin.id != f.id:
                raise ValueError(f"the origin of {f.id} is {origin.id}")
            origins[f.id] = origin
    ids = {f.id for f in findings}
    current = meta.get("current")
    if current is not None and current not in ids:
        raise ValueError(f"the current finding {current!r} is not among the findings")
    layers = {str(k): bool(v) for k, v in dict(meta.get("layers") or {}).items()}
    if set(layers) - ids:
        raise ValueError(f"mask layers of unknown findings: {sorted(set(layers) - ids)}")
    threshold = float(meta["threshold"])
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is not in [0, 1]")
    return RestoredReview(findings, origins, threshold, current, str(meta.get("engine") or ""), layers)


def _decode_mask(n: int, item: dict, arrays: dict, saved, saved_shape, geometry, shape, same_grid: bool):
    lo = tuple(int(v) for v in item["lo_kji"])
    block_shape = tuple(int(v) for v in item["shape"])
    if len(lo) != 3 or len(block_shape) != 3 or any(a < 0 or a + b > s for a, b, s in zip(lo, block_shape,
                                                                                            saved_shape)):
        raise ValueError(f"finding mask {n} ({lo} + {block_shape}) is not on the saved grid {saved_shape}")
    raw = zlib.decompress(arrays[f"finding_mask_{n}"].tobytes())
    block = np.frombuffer(raw, np.uint8).reshape(block_shape) != 0
    patch = MaskPatch(lo, block)  # type: ignore[arg-type]
    if same_grid:
        return patch
    from engines.radiology.overlays import LabelMap

    placed = LabelMap(patch.full(saved_shape).astype(np.uint8), saved, {1: "finding"}).on_grid(geometry, shape)
    return MaskPatch.from_full(placed.labels)


def _finding_from_record(record: dict, masks: list) -> Finding:
    values = {}
    for spec in fields(Finding):
        if spec.name not in record:
            continue
        value = record[spec.name]
        if spec.name == "mask":
            value = None if value is None else masks[int(value)]
        elif spec.name in _TRIPLES:
            value = None if value is None else tuple(_finite(v, spec.name) for v in value)
            if value is not None and len(value) != 3:
                raise ValueError(f"{spec.name} has {len(value)} coordinates")
        values[spec.name] = value
    f = Finding(**values)
    if not isinstance(f.id, str) or not f.id or not isinstance(f.type, str) or not isinstance(f.source, str):
        raise TypeError("a finding's id, type and source are strings")
    if f.state not in STATES:
        raise ValueError(f"unknown review state {f.state!r}")
    _finite(f.score, "score"), _finite(f.volume_ml, "volume_ml")
    if f.mean_hu is not None:
        _finite(f.mean_hu, "mean_hu")
    if f.slice_index is not None and not isinstance(f.slice_index, int):
        raise TypeError("slice_index is a whole number")
    return replace(f, edited=bool(f.edited))


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} is not a finite number: {value!r}")
    return float(value)


def _zlib_safe(validate):
    """zlib's own error, and a decompressed size that does not fit the shape, count as damaged contents."""
    def wrapped(arrays, meta):
        try:
            return validate(arrays, meta)
        except zlib.error as exc:
            raise ValueError(f"compressed labels damaged: {exc}") from exc
    return wrapped


def legacy_autosave_folder(volume) -> Path | None:
    """Where versions before the shared autosave service kept a volume's edits (NIfTI files in a folder)."""
    from engines.core.paths import data_dir

    key = str(volume.meta.get("series_uid") or volume.source_path or "") if volume is not None else ""
    if not key:
        return None
    return data_dir() / "autosave" / AUTOSAVE_KIND / hashlib.sha1(key.encode()).hexdigest()[:16]


def _legacy_layers(folder: Path, geometry, shape) -> tuple[list, list[str]]:
    from engines.radiology.overlays import read_label_file

    found, problems = [], []
    for path in sorted(folder.glob("layer-*.nii.gz")):
        try:
            label_map = read_label_file(path).on_grid(geometry, shape)
        except Exception as exc:  # noqa: BLE001 - a damaged autosave is reported, never fatal
            problems.append(f"An autosaved label layer could not be read ({path.name}: {exc})")
            continue
        name_file = path.with_name(path.name.split(".")[0] + ".name")
        label_map.source = name_file.read_text(encoding="utf-8") if name_file.exists() else path.stem
        found.append(label_map)
    return found, problems
