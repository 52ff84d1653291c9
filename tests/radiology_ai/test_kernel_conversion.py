"""CT kernel conversion: the shipped networks on a held-out physics scan, the engine, exports, bad inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from engines.core.engine import CancelToken, Cancelled, EngineError
from engines.core.weights import ModelCard, WeightsStore, load_state_checked
from engines.radiology.reader import load_series, scan_dicom
from engines.radiology.samples import write_ct_series
from engines.radiology_ai import kernels as K
from engines.radiology_ai.baselines import fov_mask, rmse_hu, ssim_hu
from engines.radiology_ai.common import network_from_card
from engines.radiology_ai.kernel_engine import KernelConversionEngine
from engines.radiology_ai.kernel_eval import run_net
from engines.radiology_ai.samples import make_ct_kernel_pair

BUNDLED = Path(__file__).resolve().parents[2] / "resources" / "models" / "radiology_ai"


@pytest.fixture(scope="module")
def held_out_scan():
    """The real slice 693_UNCI.dcm (never in training), scanned with a noise seed no training scan used."""
    real = dict(K.real_ct_slices(256))["693_UNCI.dcm"]
    return K.simulate_pair_set(real, np.random.default_rng(424242), K.ScanSettings(photons=1.5e5))


@pytest.fixture(scope="module")
def sample_series(tmp_path_factory) -> Path:
    return make_ct_kernel_pair(tmp_path_factory.mktemp("ctpair"))


def load(folder: Path):
    return load_series(scan_dicom(folder).image_series()[0])


@pytest.mark.parametrize("direction,src,dst", [("sharpen", "hann", "edge"), ("smooth", "edge", "hann"),
                                               ("sharpen", "hann", "ramp")])
def test_shipped_network_beats_identity_on_held_out_physics_pair(held_out_scan, direction, src, dst):
    import torch

    torch.set_num_threads(1)
    tensors, card = WeightsStore([BUNDLED]).load(f"ct-kernel-{direction}", expect_architecture="kernel-conversion-se-resnet@1")
    assert card.arch_args["source_kernel"] == src
    assert "693_UNCI.dcm" in card.training_data  # named as held out
    model = network_from_card(card)
    load_state_checked(model, tensors)
    model.eval()
    stage = card.arch_args["stage_kernels"].index(dst)
    x, y = held_out_scan[src], held_out_scan[dst]
    pred = run_net(model, x[None], stage)[0]
    mask = fov_mask(x.shape[0])
    assert rmse_hu(pred, y, mask) < 0.85 * rmse_hu(x, y, mask)
    assert ssim_hu(pred, y) > ssim_hu(x, y)


def test_engine_converts_series_and_exports_dicom_with_new_uids(sample_series, tmp_path):
    engine = KernelConversionEngine()
    engine.load("cpu")
    source = load(sample_series)
    seen = []
    result = engine.predict({"volume": source, "target": "edge"}, progress=lambda f, m: seen.append(f))
    conv = result["volume"]
    assert conv.shape == source.shape and conv.geometry.same_grid(source.geometry)
    assert result["source"] is source
    assert "converted to SHARP" in conv.meta["series_description"]
    assert any(f == 1.0 for f in seen)
    # the conversion is closer to the sample's own sharp reconstruction than the input is
    ref = load(sample_series.parent / "reference-edge")
    a, b, r = conv.real(conv.voxels), source.real(source.voxels), ref.real(ref.voxels)
    assert np.sqrt(np.mean((a - r) ** 2)) < np.sqrt(np.mean((b - r) ** 2))

    written = engine.write_result(result, tmp_path / "out")
    assert len(written) == 3 and all(p.exists() for p in written)
    back = load(tmp_path / "out")
    assert back.geometry.same_grid(source.geometry)
    np.testing.assert_allclose(back.real(back.voxels), a, atol=0.51)
    src_ds = pydicom.dcmread(next(sample_series.iterdir()))
    out_ds = [pydicom.dcmread(p) for p in written]
    assert {d.SeriesInstanceUID for d in out_ds} != {src_ds.SeriesInstanceUID}
    assert len({d.SOPInstanceUID for d in out_ds}) == 3
    assert out_ds[0].StudyInstanceUID == src_ds.StudyInstanceUID
    assert "DERIVED" in out_ds[0].ImageType
    assert not list(tmp_path.glob(".out.*"))  # no temporary folder left behind


def test_engine_smooth_direction_and_volume_file_export(sample_series, tmp_path):
    import SimpleITK as sitk

    engine = KernelConversionEngine()
    engine.load("cpu")
    source = load(sample_series.parent / "reference-edge")
    result = engine.predict({"volume": source, "direction": "smooth", "target": "hann"})
    assert "converted to SMOOTH" in result["series_description"]
    assert result["volume"].real(result["volume"].voxels).std() < source.real(source.voxels).std() + 1
    out = engine.write_result(result, tmp_path / "smooth.nii.gz")[0]
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == (256, 256, 3)
    np.testing.assert_allclose(image.GetSpacing(), source.geometry.spacing, rtol=1e-5)


def test_bad_requests_and_inputs(sample_series, tmp_path):
    engine = KernelConversionEngine()
    engine.load("cpu")
    with pytest.raises(EngineError, match="not a target"):
        engine.predict({"image_path": sample_series, "direction": "smooth", "target": "edge"})
    with pytest.raises(EngineError, match="direction"):
        engine.predict({"image_path": sample_series, "direction": "sideways"})
    with pytest.raises(EngineError, match="needs a CT"):
        engine.predict({"image_path": Path(get_testdata_file("MR_small.dcm"))})
    tiny = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "98892001" / "CT5N"
    with pytest.raises(EngineError, match="too small"):
        engine.predict({"image_path": tiny})
    gappy = tmp_path / "gappy"
    files = write_ct_series(gappy, n_slices=6, rows=64, cols=64, names="index")
    files[3].unlink()
    with pytest.raises(EngineError, match="missing slice"):
        engine.predict({"image_path": gappy})
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        engine.predict({"image_path": sample_series}, cancel=cancel)
    with pytest.raises(EngineError, match="folder"):
        engine.write_result(engine.predict({"image_path": sample_series}), tmp_path / "x.dcm")


def test_checkpoint_that_is_not_ours_is_refused(isolated_home):
    import torch

    user = isolated_home / "data" / "models"
    user.mkdir(parents=True, exist_ok=True)
    # a foreign architecture under our name
    WeightsStore.save(user, "ct-kernel-sharpen", {"w": torch.zeros(3)}, ModelCard(name="x", architecture="resnet50"))
    engine = KernelConversionEngine()
    engine.load("cpu")
    with pytest.raises(EngineError, match="resnet50"):
        engine.model("sharpen")
    # our architecture name, but tensors that do not fit it
    WeightsStore.save(user, "ct-kernel-sharpen", {"stem.weight": torch.zeros(2, 2)},
                      ModelCard(name="x", architecture="kernel-conversion-se-resnet@1",
                                arch_args={"stages": 5, "channels": 24}))
    engine.load("cpu")
    with pytest.raises(EngineError, match="do not fit"):
        engine.model("sharpen")
    # a pickle is never read
    for f in user.glob("ct-kernel-sharpen.*"):
        f.unlink()
    (user / "ct-kernel-sharpen.safetensors").write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    (user / "ct-kernel-sharpen.card.json").write_text("{}")
    engine.load("cpu")
    with pytest.raises(EngineError, match="safetensors"):
        engine.model("sharpen")


def test_linear_baseline_engine_converts_with_the_fitted_filters(sample_series):
    from engines.radiology_ai.kernel_engine import LinearKernelConversionEngine

    engine = LinearKernelConversionEngine()
    assert engine.weights_status() == "none needed"
    engine.load("cpu")
    source = load(sample_series)
    ref = load(sample_series.parent / "reference-edge")
    r = ref.real(ref.voxels)
    for method in ("wiener", "spatial"):
        conv = engine.predict({"volume": source, "target": "edge", "method": method})["volume"]
        assert conv.geometry.same_grid(source.geometry)
        assert np.sqrt(np.mean((conv.real(conv.voxels) - r) ** 2)) < np.sqrt(np.mean((source.real(source.voxels) - r) ** 2))
    with pytest.raises(EngineError, match="method"):
        engine.predict({"volume": source, "method": "magic"})


def test_enhanced_multiframe_ct_exports_as_a_series_on_the_same_grid(tmp_path):
    """pydicom-data's eCT_Supplemental.dcm (Enhanced CT, 2 frames 512^2): per-frame geometry is kept."""
    src = get_testdata_file("eCT_Supplemental.dcm")
    if src is None:
        pytest.skip("pydicom-data is not installed")
    engine = KernelConversionEngine()
    engine.load("cpu")
    result = engine.predict({"image_path": Path(src), "direction": "smooth"})
    written = engine.write_result(result, tmp_path / "ect")
    assert len(written) == 2
    back = load(tmp_path / "ect")
    assert back.geometry.same_grid(result["source"].geometry) and back.shape == (2, 512, 512)
    assert pydicom.dcmread(written[0]).SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.parametrize("direction", ["sharpen", "smooth"])
def test_engine_reproduces_the_cards_test_sample_and_bfloat16_stays_within_tolerance(held_out_scan, direction):
    import json

    from engines.radiology_ai.kernel_engine import BF16_TOLERANCE_HU, DIRECTIONS
    from engines.radiology_ai.kernel_eval import TEST_SAMPLE, precision_difference, test_sample_metrics

    engine = KernelConversionEngine()
    got = test_sample_metrics(engine, direction, held_out_scan)
    card = json.loads((BUNDLED / f"{DIRECTIONS[direction][0]}.card.json").read_text(encoding="utf-8"))
    assert abs(got["rmse_hu"] - card["metrics"]["test_sample_rmse_hu"]) < 1.5, got
    assert got["rmse_hu"] < got["identity_rmse_hu"]
    src, dst = TEST_SAMPLE[direction]
    diff = precision_difference(engine, held_out_scan[src][None], direction, dst)
    assert diff["rms_hu"] <= BF16_TOLERANCE_HU["rms"] and diff["max_hu"] <= BF16_TOLERANCE_HU["max"], diff
    with pytest.raises(EngineError, match="precision"):
        engine.predict({"volume": load_like(held_out_scan[src]), "precision": "float8"})


def load_like(hu):
    from engines.radiology_ai.kernel_eval import slices_volume

    return slices_volume(hu[None])
