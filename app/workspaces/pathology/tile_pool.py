"""The canvas's tile pool: decoded tiles in an LRU cache and a thread pool that reads them, dropping reads that
are no longer wanted before they start. Which tiles to read comes from ``engines.pathology.viewstate``; this
module only turns reads into QImages off the GUI thread and hands them back with a signal."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage


def qimage_from_rgb(arr: np.ndarray) -> QImage:
    """A deep-copied QImage (RGB32, fast to draw) from an RGB uint8 array; safe in any thread."""
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    img = QImage(arr.data, w, h, 3 * w, QImage.Format_RGB888)
    return img.convertToFormat(QImage.Format_RGB32)


def qimage_from_rgba(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 4 * w, QImage.Format_RGBA8888).copy()


class TileCache:
    """LRU cache of decoded tiles (GUI thread only), bounded by tile count."""

    def __init__(self, max_tiles: int = 768) -> None:
        self.max_tiles = max_tiles
        self._items: OrderedDict[tuple, QImage] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> QImage | None:
        img = self._items.get(key)
        if img is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return img

    def peek(self, key: tuple) -> QImage | None:
        return self._items.get(key)

    def put(self, key: tuple, img: QImage) -> None:
        self._items[key] = img
        self._items.move_to_end(key)
        while len(self._items) > self.max_tiles:
            self._items.popitem(last=False)

    def __contains__(self, key: tuple) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


class _Bridge(QObject):
    loaded = Signal(int, object, object)  # generation, key, QImage or None (failed/skipped)
    failed = Signal(int, object, str)


class _TileJob(QRunnable):
    def __init__(self, loader: "TileLoader", gen: int, key: tuple, reader, x0: int, y0: int, w: int, h: int):
        super().__init__()
        self.loader, self.gen, self.key, self.reader = loader, gen, key, reader
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.setAutoDelete(True)

    def run(self) -> None:  # worker thread: no widgets, only a signal at the end
        try:
            if not self.loader.still_wanted(self.gen, self.key):
                self.loader.bridge.loaded.emit(self.gen, self.key, None)
                return
            try:
                arr = self.reader.read_region((self.x0, self.y0), self.key[0], (self.w, self.h))
                img = qimage_from_rgb(arr)
            except Exception as exc:  # noqa: BLE001 - a bad tile is reported once, painting goes on
                self.loader.bridge.failed.emit(self.gen, self.key, str(exc))
                return
            self.loader.bridge.loaded.emit(self.gen, self.key, img)
        except RuntimeError:  # the canvas was deleted while this tile loaded: nobody to tell
            return


class TileLoader:
    """Queues tile reads on its own thread pool; drops jobs that are no longer wanted before they start."""

    def __init__(self, threads: int | None = None) -> None:
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(threads or max(2, min(4, os.cpu_count() or 2)))
        self.bridge = _Bridge()
        self._lock = threading.Lock()
        self._wanted: set[tuple] = set()
        self._gen = 0
        self.pending: set[tuple] = set()

    def still_wanted(self, gen: int, key: tuple) -> bool:
        with self._lock:
            return gen == self._gen and key in self._wanted

    def set_wanted(self, keys: set[tuple]) -> None:
        with self._lock:
            self._wanted = set(keys)

    def new_generation(self) -> int:
        self.pool.clear()
        with self._lock:
            self._gen += 1
            self._wanted = set()
        self.pending.clear()
        return self._gen

    @property
    def generation(self) -> int:
        return self._gen

    def request(self, key: tuple, reader, x0: int, y0: int, w: int, h: int, priority: int = 0) -> None:
        if key in self.pending:
            return
        self.pending.add(key)
        self.pool.start(_TileJob(self, self._gen, key, reader, x0, y0, w, h), priority)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        self.new_generation()
        return self.pool.waitForDone(timeout_ms)
