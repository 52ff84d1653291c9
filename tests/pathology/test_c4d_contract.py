"""The C4d detectors' stain contract: DAB immunohistochemistry passes, H&E is refused before any inference."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from engines.core.checks import Checks, InputRefused, checks_of, warning_lines
from engines.pathology.c4d import C4dCnnEngine, C4dDeconvolutionEngine
from engines.pathology.stain import stain_profile

# Macenko's reference H&E optical-density vectors (unit length): real eosin absorbs some blue, which is why
# plain rgb2hed gives H&E a DAB channel
HEMATOXYLIN = np.array([0.5626, 0.7201, 0.4062])
EOSIN = np.array([0.2159, 0.8012, 0.5581])


def _od_to_rgb(od: np.ndarray) -> np.ndarray:
    return np.clip(256.0 * np.exp(-od) - 1.0, 0, 255).astype(np.uint8)


def he_from_ihc_tissue() -> np.ndarray:
    """The real IHC field re-stained as H&E: its hematoxylin as hematoxylin, everything else as eosin."""
    from skimage import data
    from skimage.color import rgb2hed

    hed = rgb2hed(data.immunohistochemistry())
    c_h = np.clip(hed[..., 0], 0, None) * 10.0
    c_e = np.clip(hed[..., 1] + hed[..., 2], 0, None) * 7.0 + 0.12
    return _od_to_rgb(c_h[..., None] * HEMATOXYLIN + c_e[..., None] * EOSIN)


def ihc_without_dab() -> np.ndarray:
    """The real IHC field with its DAB removed: hematoxylin counterstain only (a C4d-negative section)."""
    from skimage import data
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(data.immunohistochemistry())
    hed[..., 2] = 0
    return (np.clip(hed2rgb(hed), 0, 1) * 255).astype(np.uint8)


def test_stain_profile_tells_dab_from_eosin():
    from skimage import data

    ihc = stain_profile(data.immunohistochemistry())
    he = stain_profile(he_from_ihc_tissue())
    assert ihc["brown_fraction"] > 0.3 and ihc["eosin_fraction"] < 0.01
    assert he["brown_fraction"] < 0.001 and he["eosin_fraction"] > 0.5
    assert stain_profile(np.full((8, 8, 3), 250, np.uint8))["stained_pixels"] == 0


@pytest.mark.parametrize("engine_cls", [C4dDeconvolutionEngine, C4dCnnEngine])
def test_real_aperio_he_is_refused_before_inference(engine_cls, fixtures_dir):
    engine = engine_cls()
    engine.load("cpu")
    with pytest.raises(InputRefused, match="looks like an H&E stain with no DAB") as info:
        engine.predict({"slide_path": fixtures_dir / "small.svs"})
    assert "small.svs" in str(info.value)
    assert [c.status for c in info.value.checks if c.name == "stain"] == ["refused"]


@pytest.mark.parametrize("engine_cls", [C4dDeconvolutionEngine, C4dCnnEngine])
def test_generated_he_is_refused(engine_cls, tmp_path):
    path = tmp_path / "he-field.png"
    Image.fromarray(he_from_ihc_tissue()).save(path)
    engine = engine_cls()
    engine.load("cpu")
    with pytest.raises(InputRefused, match="trained on DAB immunohistochemistry"):
        engine.predict({"slide_path": path})


def test_ihc_sample_passes_and_carries_its_checks(small_pyramid, tmp_path):
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    result = engine.predict({"slide_path": small_pyramid, "max_tiles": 2})
    checks = {c.name: c for c in checks_of(result)}
    assert checks["stain"].status == "passed" and "DAB" in checks["stain"].reason
    assert checks["resolution"].status == "passed"
    assert warning_lines(result) == []
    assert len(result.detections) > 0
    files = engine.write_result(result, tmp_path / "c4d.geojson")
    summary = json.loads(files[2].read_text())
    assert {c["name"]: c["status"] for c in summary["checks"]} == {"stain": "passed", "resolution": "passed"}


def test_counterstain_only_and_unknown_resolution_are_warnings(tmp_path):
    path = tmp_path / "negative.png"
    Image.fromarray(ihc_without_dab()).save(path)
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    result = engine.predict({"slide_path": path})
    lines = warning_lines(result)
    assert any(line.startswith("stain: negative.png: no DAB (brown) staining found") for line in lines)
    assert any(line.startswith("resolution: negative.png records no microns per pixel") for line in lines)


def test_check_dab_stain_on_too_little_tissue_warns():
    from engines.pathology.stain import check_dab_stain

    rgb = np.full((32, 32, 3), 245, np.uint8)
    rgb[:3, :3] = (120, 80, 60)
    checks = Checks()
    check_dab_stain(rgb, checks, "tiny.png")
    assert [(c.name, c.status) for c in checks.items] == [("stain", "warned")]
    assert "too little stained tissue" in checks.items[0].reason


def test_the_bundled_real_he_region_is_refused():
    """The real Aperio H&E region (CMU-1, 2220 x 2967 px) on which the threshold used to report hundreds of
    'positive structures'."""
    from engines.pathology.samples import HE_REGION

    if not HE_REGION.exists():
        pytest.skip(f"{HE_REGION} is not present")
    engine = C4dDeconvolutionEngine()
    engine.load("cpu")
    with pytest.raises(InputRefused, match=r"cmu_small_region.svs: this looks like an H&E stain with no DAB .*0\.0% brown"):
        engine.predict({"slide_path": HE_REGION})
