"""Domains register their samples, `inspect` describers and readers through their manifests (the
csi_workstation.domains entry points); engines.core names no domain. Checked on the real package and real files."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from engines.core.errors import EngineError
from engines.core.inspect import all_describers, inspect_path, open_path
from engines.core.domains import DOMAIN_GROUP, DomainManifest, DomainRegistry, domains
from engines.core.samples import SAMPLES as CORE_SAMPLES
from engines.core.samples import all_samples

ENGINES_DIR = Path(__file__).resolve().parents[2] / "engines"
MUSIC_SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "music" / "bwv153.1-piano.ogg"


def _domain_packages_with(module: str) -> set[str]:
    return {p.parent.name for p in ENGINES_DIR.glob(f"*/{module}.py") if p.parent.name != "core"}


def test_every_domain_with_samples_or_describers_is_registered_through_its_manifest():
    names = {ep.name: ep.value for ep in entry_points(group=DOMAIN_GROUP)}
    expected = _domain_packages_with("samples") | _domain_packages_with("describers")
    assert expected <= set(names), f"domains without an entry point: {expected - set(names)}"
    registry = DomainRegistry.discover()
    assert registry.errors == {}
    for domain in expected:
        manifest = registry.manifest(domain)
        assert names[domain] == f"engines.{domain}:DOMAIN" and manifest.id == domain
        if domain in _domain_packages_with("samples"):
            assert manifest.samples == f"engines.{domain}.samples:SAMPLES"
        if domain in _domain_packages_with("describers"):
            assert manifest.describers == f"engines.{domain}.describers:DESCRIBERS"


def test_all_samples_is_the_core_and_every_domain_sample_exactly():
    expected = dict(CORE_SAMPLES)
    for domain in _domain_packages_with("samples"):
        offered = importlib.import_module(f"engines.{domain}.samples").SAMPLES
        assert not set(offered) & set(expected), f"{domain} reuses a sample id"
        expected.update(offered)
    assert all_samples() == expected
    assert all_samples()["real-song"] == "engines.music.samples:make_real_song"


def test_every_sample_a_workspace_offers_is_registered_by_a_domain():
    from app.workspaces.manifest import discover_workspaces

    manifests, errors = discover_workspaces()
    assert not errors and manifests
    known = all_samples()
    for m in manifests:
        for sample_id in {m.sample, *(s for s, _ in m.samples), *m.sample_fallbacks} - {None}:
            assert sample_id in known, f"workspace {m.id} offers unknown sample {sample_id}"


def test_a_domain_describer_replaces_the_cores_and_adds_new_kinds():
    describers = all_describers()
    assert describers["dicom"] == "engines.radiology.describers:describe_dicom_study"
    assert describers["annotations"] == "engines.pathology.describers:describe_geojson"
    assert describers["audio"] == "engines.core.describe:describe_audio"
    report = inspect_path(get_testdata_file("CT_small.dcm"))  # the radiology describer lists series
    assert report["kind"] == "dicom" and report["details"]["series"][0]["modality"] == "CT"


def test_conflicting_and_broken_domains_are_reported_and_the_others_still_work(tmp_path):
    registry = DomainRegistry([
        DomainManifest(id="alpha", samples="engines.music.samples:SAMPLES",
                       readers={"audio": "engines.music.audio:load_audio"}),
        DomainManifest(id="beta", samples="engines.music.samples:SAMPLES",
                       describers="engines.no_such_domain.describers:DESCRIBERS",
                       readers={"audio": "engines.music.audio:load_audio"}),
        DomainManifest(id="gamma", samples="engines.textvqa.samples:SAMPLES"),
    ])
    samples = registry.samples()
    assert samples["chorale-audio"] == "engines.music.samples:make_chorale_audio"  # alpha, first by id, keeps it
    assert "vqa-scene" in samples  # gamma is unaffected
    assert "beta:samples:chorale-audio" in registry.errors and "alpha" in registry.errors["beta:samples:chorale-audio"]
    assert registry.describers() == {} and "ModuleNotFoundError" in registry.errors["beta:describers"]
    with pytest.raises(ValueError, match="alpha, beta"):
        registry.reader("audio")
    assert registry.reader("audio", "beta").__name__ == "load_audio"
    assert registry.reader("midi") is None
    with pytest.raises(TypeError):
        registry.register("not a manifest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="share the id"):
        registry.register(DomainManifest(id="gamma"))


def test_open_path_uses_the_registered_reader_of_the_kind(shared_data):
    scan = open_path(get_testdata_file("CT_small.dcm"))
    assert type(scan).__name__ == "StudyScan" and len(scan.image_series()) == 1
    volume = open_path(shared_data / "lung1-crop" / "lung1_image.nrrd")
    assert type(volume).__name__ == "Volume" and volume.voxels.ndim == 3 and min(volume.shape) > 1
    slide = open_path(shared_data / "openslide-fixtures" / "small.svs")
    try:
        assert slide.metadata.vendor == "aperio"
    finally:
        slide.close()
    clip = open_path(MUSIC_SAMPLE, sr=11025)
    assert clip.sr == 11025 and clip.samples.size > 11025  # options reach the reader
    # an image is a slide to pathology and a picture to text/VQA: the caller says which
    png = shared_data / "openslide-fixtures" / "boxes.png"
    with pytest.raises(EngineError, match="pathology, textvqa"):
        open_path(png)
    picture = open_path(png, domain="textvqa")
    assert isinstance(picture, np.ndarray) and picture.ndim == 3 and picture.shape[2] == 3


def test_open_path_refuses_what_no_domain_reads(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EngineError, match="no reader opens 'text' files"):
        open_path(tmp_path / "notes.txt")
    with pytest.raises(EngineError, match="no such file"):
        open_path(tmp_path / "absent.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(EngineError, match="empty"):
        open_path(tmp_path / "empty.wav")
    with pytest.raises(EngineError, match="in the music domain"):
        open_path(get_testdata_file("CT_small.dcm"), domain="music")


def test_the_process_registry_is_discovered_once():
    assert domains() is domains() and {"radiology", "pathology", "music", "textvqa"} <= set(domains().ids())
