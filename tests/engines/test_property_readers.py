"""Property-based tests: every reader, fed mutated real files, gives one clear error or a correct result.

Hypothesis damages real sample files (truncation, flipped bytes, zeroed runs, junk inserted) and runs each
reader under a time limit and a memory budget. The property, for every reader: the call either raises
``EngineError`` with one plain line, or returns a result; never another exception, a hang, an allocation
beyond the budget, or a silently damaged result (a file cut inside its pixel data must come back with a
finding, not as zeros).
"""
from __future__ import annotations

import shutil
import signal
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.core.engine import EngineError

DATA = Path(__file__).resolve().parents[1] / "data"
BUDGET = 256 << 20  # the readers' memory budget during these tests
TIME_LIMIT_S = 30
EXAMPLES = 25
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Hang(Exception):
    pass


@contextmanager
def bounded():
    """Fail on a hang (SIGALRM) or an allocation over the budget (tracemalloc sees numpy's buffers)."""
    def on_alarm(signum, frame):  # noqa: ARG001
        raise Hang(f"reader ran longer than {TIME_LIMIT_S} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_LIMIT_S)
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 2 * BUDGET + (64 << 20), f"peak allocation {peak / 2**20:.0f} MiB is over the budget"
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(1, 255)), min_size=1,
                                         max_size=8)),
    st.tuples(st.just("zero"), st.tuples(st.floats(0.0, 0.999), st.integers(1, 4096))),
    st.tuples(st.just("insert"), st.tuples(st.floats(0.0, 0.999), st.binary(min_size=1, max_size=64))),
)


def mutate(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    n = len(data)
    if kind == "truncate":
        return data[: int(arg * n)]
    if kind == "flip":
        buf = bytearray(data)
        for where, xor in arg:
            buf[int(where * n)] ^= xor
        return bytes(buf)
    if kind == "zero":
        where, length = arg
        start = int(where * n)
        return data[:start] + b"\0" * min(length, n - start) + data[start + length:]
    where, junk = arg
    start = int(where * n)
    return data[:start] + junk + data[start:]


def assert_plain(exc: EngineError) -> None:
    text = str(exc)
    assert text.strip(), "an EngineError without a message"
    assert "Traceback" not in text and len(text.splitlines()) <= 3, text


@pytest.fixture(autouse=True)
def small_budget(monkeypatch):
    monkeypatch.setenv("CSI_MEMORY_BUDGET_BYTES", str(BUDGET))


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    import pydicom.data
    import SimpleITK as sitk
    import soundfile as sf

    root = tmp_path_factory.mktemp("originals")
    files = {"dcm": root / "ct.dcm"}
    shutil.copyfile(pydicom.data.get_testdata_file("CT_small.dcm"), files["dcm"])
    image = sitk.ReadImage(str(DATA / "lung1-crop" / "lung1_image.nrrd"))
    files["nii"] = root / "ct.nii"
    sitk.WriteImage(image[:, :, :4], str(files["nii"]))
    files["niigz"] = root / "ct.nii.gz"
    sitk.WriteImage(image[:, :, :4], str(files["niigz"]), useCompression=True)
    files["nrrd"] = root / "ct.nrrd"
    shutil.copyfile(DATA / "lung1-crop" / "lung1_label.nrrd", files["nrrd"])
    t = np.arange(22050) / 22050.0
    files["wav"] = root / "tone.wav"
    sf.write(files["wav"], (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050, subtype="PCM_16")
    files["svs"] = root / "small.svs"
    shutil.copyfile(DATA / "openslide-fixtures" / "small.svs", files["svs"])
    files["tiff"] = root / "boxes.tiff"
    shutil.copyfile(DATA / "openslide-fixtures" / "boxes.tiff", files["tiff"])
    files["geojson"] = root / "cells.geojson"
    files["geojson"].write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", '
        '"coordinates": [[[10, 10], [60, 10], [60, 50], [10, 10]]]}, "properties": {"classification": '
        '{"name": "Tumor", "color": [200, 0, 0]}}}]}')
    return files


def damaged(originals, tmp_path, key: str, mutation) -> tuple[Path, bytes, bytes]:
    src = originals[key]
    data = src.read_bytes()
    bad = mutate(data, mutation)
    target = tmp_path / f"damaged{''.join(src.suffixes)}"
    target.write_bytes(bad)
    return target, data, bad


# -- radiology ---------------------------------------------------------------------------------------
def _load_dicom(path: Path):
    from engines.radiology import reader

    scan = reader.scan_dicom(path)
    images = scan.image_series()
    if not images:
        return None, list(scan.findings) if hasattr(scan, "findings") else []
    volume = reader.load_series(max(images, key=lambda s: len(s.slices)))
    return volume, list(volume.findings)


@SETTINGS
@given(mutation=mutations)
def test_dicom_reader_on_damaged_files(originals, tmp_path, mutation):
    path, data, bad = damaged(originals, tmp_path, "dcm", mutation)
    with bounded():
        try:
            volume, findings = _load_dicom(path)
        except EngineError as exc:
            assert_plain(exc)
            return
    if volume is not None and mutation[0] == "truncate" and len(bad) < len(data) - 16:
        # the pixel data runs to the end of this file: a cut must be reported, never shown as zeros
        assert findings, "a DICOM cut inside its pixel data was read without a finding"


@SETTINGS
@given(mutation=mutations, key=st.sampled_from(["nii", "niigz", "nrrd"]))
def test_volume_reader_on_damaged_files(originals, tmp_path, mutation, key):
    from engines.radiology import reader

    path, data, bad = damaged(originals, tmp_path, key, mutation)
    with bounded():
        try:
            volume = reader.load_volume_file(path)
        except EngineError as exc:
            assert_plain(exc)
            return
    assert volume.voxels.ndim == 3 and volume.voxels.size > 0
    if mutation[0] == "truncate" and len(bad) < len(data) - 16:
        assert volume.findings, f"a {key} cut short was read without a finding"


# -- pathology ---------------------------------------------------------------------------------------
@SETTINGS
@given(mutation=mutations, key=st.sampled_from(["svs", "tiff"]))
def test_slide_reader_on_damaged_files(originals, tmp_path, mutation, key):
    from engines.pathology.slide import open_slide

    path, _, _ = damaged(originals, tmp_path, key, mutation)
    with bounded():
        try:
            with open_slide(path) as slide:
                thumb, _ = slide.thumbnail(256)
                assert thumb.ndim == 3 and thumb.shape[2] == 3
        except EngineError as exc:
            assert_plain(exc)


@SETTINGS
@given(mutation=mutations)
def test_geojson_reader_on_damaged_files(originals, tmp_path, mutation):
    from engines.pathology.geojson import load_geojson

    path, _, _ = damaged(originals, tmp_path, "geojson", mutation)
    with bounded():
        try:
            parsed = load_geojson(path)
        except EngineError as exc:
            assert_plain(exc)
            return
    for a in parsed.annotations:
        pts = np.asarray(a.points, dtype=float)
        assert np.all(np.isfinite(pts))


# -- music -------------------------------------------------------------------------------------------
@SETTINGS
@given(mutation=mutations)
def test_audio_reader_on_damaged_files(originals, tmp_path, mutation):
    from engines.music.audio import load_audio

    path, _, _ = damaged(originals, tmp_path, "wav", mutation)
    with bounded():
        try:
            clip = load_audio(path)
        except EngineError as exc:
            assert_plain(exc)
            return
    assert clip.samples.size > 0 and np.all(np.isfinite(clip.samples))


# -- inspect, for every kind ------------------------------------------------------------------------------
@SETTINGS
@given(mutation=mutations, key=st.sampled_from(["dcm", "niigz", "nrrd", "wav", "svs", "tiff", "geojson"]))
def test_inspect_on_damaged_files(originals, tmp_path, mutation, key):
    from engines.core.inspect import inspect_path

    path, _, _ = damaged(originals, tmp_path, key, mutation)
    with bounded():
        try:
            report = inspect_path(path)
        except EngineError as exc:
            assert_plain(exc)
            return
    assert isinstance(report, dict)
