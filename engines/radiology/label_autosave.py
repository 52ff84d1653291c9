"""The radiology workspace's autosave of label edits, on the shared service (engines/core/autosave.py).

One uncompressed .npz per study beside the shared JSON path (``array_autosave_path(autosave_path(...))``),
keyed by the SeriesInstanceUID when there is one (the edits follow the series wherever it is opened from),
else by the source file; each layer's labels are zlib-compressed in it (label maps compress 50-500 times),
with names, colours and the grid they were drawn on. Writing and reading run in workers; a damaged file or
one from a newer version is set aside by the shared service with one sentence. The folder of NIfTI files that
versions before the shared service wrote is read once when no new autosave exists.
"""
from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np

AUTOSAVE_KIND = "radiology"
AUTOSAVE_SCHEMA = 1


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
    path = Path(snapshot["path"])
    writer.save_arrays(path, arrays, schema=AUTOSAVE_SCHEMA, meta=meta, delay=0.0)
    if wait:
        writer.flush()
    return path


def load_autosave_layers(path: Path | None, geometry, shape, source_name: str = "",
                         legacy_folder: Path | None = None) -> tuple[list, list[str]]:
    """(LabelMaps on the display grid, sentences for the user) from a study's autosave; a damaged or newer
    one is set aside by the shared service with a sentence. File I/O: run it in a worker."""
    from engines.core.autosave import load_array_autosave
    from engines.radiology.geometry import Geometry
    from engines.radiology.overlays import LabelMap

    if path is None:
        return [], []
    if not Path(path).exists() and legacy_folder is not None and legacy_folder.is_dir():
        return _legacy_layers(legacy_folder, geometry, shape)

    def validate(arrays: dict, meta: dict) -> list:
        g = meta["geometry"]
        saved = Geometry(tuple(g["spacing"]), tuple(g["origin"]), np.asarray(g["direction"], float).reshape(3, 3))
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
        return maps

    try:
        loaded = load_array_autosave(path, schema=AUTOSAVE_SCHEMA, validate=_zlib_safe(validate),
                                     source_name=source_name or None)
    except OSError as exc:
        return [], [f"The autosaved label edits could not be read ({exc})"]
    return list(loaded.data or []), [loaded.notice] if loaded.notice else []


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
