"""C4d peritubular-capillary engines (seed 5.1): the plain colour-deconvolution threshold, and the CNN.

Both run through the tile pipeline on the engine template (prepare: open the slide and check the stain
contract; infer: the tile pipeline; finish: a typed ``SlideAnalysis`` with positivity heatmap, detections with
scores and outlines, slide summary, checks and scores) so that a pathologist can compare them side by side.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.core.atomic import atomic_path, atomic_write_text
from engines.core.checks import Checks
from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import ModelEngine, PipelineEngine
from engines.pathology.results import SlideAnalysis
from engines.pathology.stain import DAB_THRESHOLD, MIN_AREA_UM2

WEIGHTS_NAME = "c4d-unet-tiny"
WORKING_MPP = 1.0
OUT_SUFFIX = ".geojson"


class _DeconvolutionAnalyzer:
    detects = True

    def __init__(self, tile: int = 512, margin: int = 32, batch_size: int = 4, threshold: float = DAB_THRESHOLD):
        self.target_mpp, self.tile, self.margin, self.batch_size, self.threshold = WORKING_MPP, tile, margin, \
            batch_size, threshold

    def analyze(self, batch: np.ndarray, mpp: float) -> np.ndarray:
        from scipy import ndimage

        from engines.pathology.stain import dab_density

        out = np.empty(batch.shape[:3], np.float32)
        for i, rgb in enumerate(batch):
            dab = ndimage.gaussian_filter(dab_density(rgb), 1.0)
            # a soft score: 0.5 exactly at the threshold, saturating at twice the threshold
            out[i] = np.clip(dab / (2 * self.threshold), 0, 1)
        return out


def binary_logits(z: np.ndarray) -> np.ndarray:
    """A one-logit (positive vs not) head as two symmetric class logits (-z/2, z/2) on a new first axis: the
    same softmax as sigmoid(z), and an energy that is low where the network is sure either way."""
    z = np.asarray(z, np.float64)
    return np.stack([-z / 2, z / 2])


def calibrate_probabilities(analysis: SlideAnalysis, temperature: float) -> None:
    """Detection scores, the heatmap and the mean score as calibrated probabilities: sigmoid(logit(p) / T).
    A monotone map with 0.5 fixed, so no threshold decision changes."""
    if temperature == 1.0:
        return

    def cal(p):
        p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
        return (1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / temperature))).astype(np.float32)

    dets = analysis.detections
    if len(dets):
        dets.scores = cal(dets.scores)
        analysis.summary["mean_score"] = round(float(dets.scores.mean()), 4)
    analysis.heatmap.values = np.where(np.isnan(analysis.heatmap.values), np.nan,
                                       cal(np.nan_to_num(analysis.heatmap.values, nan=0.5)))


def stained_pixels(batch: np.ndarray) -> np.ndarray:
    """Pixels whose optical densities sum above glass (engines.pathology.stain.STAINED_OD)."""
    from engines.pathology.stain import STAINED_OD

    od = -np.log((np.asarray(batch, np.float32)[..., :3] + 1.0) / 256.0)
    return od.sum(axis=-1) > STAINED_OD


class _CnnAnalyzer:
    """The tile pipeline's analyser for the C4d CNN: tiles through the engine's ``forward_batches`` (device,
    batching, out-of-memory fallback), calibrated probabilities out, the energy score of the stained pixels summed on the way."""

    detects = True

    def __init__(self, engine: "C4dCnnEngine", tile: int = 512, margin: int = 32, keep_logits: bool = False,
                 cancel: CancelToken | None = None):
        self.engine, self.cancel = engine, cancel
        self.target_mpp, self.tile, self.margin, self.batch_size = WORKING_MPP, tile, margin, engine.batch_size()
        self.temperature = engine.temperature
        self.energy_sum, self.pixels = 0.0, 0
        self.logits: list[np.ndarray] | None = [] if keep_logits else None

    def analyze(self, batch: np.ndarray, mpp: float) -> np.ndarray:
        from engines.core.calibration import energy_score

        items = [np.ascontiguousarray(rgb.transpose(2, 0, 1), np.float32) / 255.0 for rgb in batch]
        z = np.stack(self.engine.forward_batches(items, cancel=self.cancel, batch=len(items)))
        # the OOD score is summed over stained pixels only: glass and the white beyond the slide's edge say
        # nothing about the stain, and would swamp a small image's tissue
        stained = stained_pixels(batch)
        energy = energy_score(binary_logits(z[stained]), self.temperature, axis=0)
        self.energy_sum += float(energy.sum())
        self.pixels += int(energy.size)
        if self.logits is not None:
            self.logits.extend(z)
        # the pipeline splits structures on the network's own probabilities, so the detections do not depend
        # on the calibration; finish maps their scores and the heatmap through the temperature
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    @property
    def energy(self) -> float:
        return self.energy_sum / self.pixels if self.pixels else float("nan")


@dataclass
class SlideInputs:
    """What ``prepare`` hands to ``infer``: the open slide (closed by ``infer``), its checks, the options."""

    reader: Any
    own_reader: bool
    checks: Checks
    threshold: float
    min_area_um2: float
    max_tiles: int | None
    request: Mapping[str, Any]


class _C4dBase(PipelineEngine):
    title = ""

    input_key = "slide_path"
    input_noun = "slide"
    sample_id = "ihc-slide"

    def _analyzer(self, request: Mapping[str, Any], cancel: CancelToken):
        raise NotImplementedError

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> SlideInputs:
        """Open the slide and check the input contract (stain, resolution): H&E is refused before inference."""
        from engines.pathology.slide import open_slide

        progress(0.0, "opening the slide")
        reader = request.get("reader")
        own = reader is None
        if own:
            reader = open_slide(request["slide_path"])
        try:
            checks = self.check_input(reader)
        except BaseException:
            if own:
                reader.close()
            raise
        return SlideInputs(reader, own, checks, float(request.get("threshold", 0.5)),
                           float(request.get("min_area_um2", MIN_AREA_UM2)),
                           int(request["max_tiles"]) if request.get("max_tiles") else None, request)

    def infer(self, inputs: SlideInputs, *, progress: ProgressFn, cancel: CancelToken) -> tuple[SlideAnalysis, Any]:
        from engines.pathology.tiles import run_tile_pipeline

        analyzer = self._analyzer(inputs.request, cancel)
        try:
            analysis = run_tile_pipeline(
                inputs.reader, analyzer, engine_id=self.id, class_names=["C4d-positive"],
                threshold=inputs.threshold, min_area_um2=inputs.min_area_um2, progress=progress, cancel=cancel,
                max_tiles=inputs.max_tiles)
        finally:
            if inputs.own_reader:
                inputs.reader.close()
        return analysis, analyzer

    def finish(self, outputs: tuple[SlideAnalysis, Any], inputs: SlideInputs,
               request: Mapping[str, Any]) -> SlideAnalysis:
        from engines.pathology.tiles import require_tissue

        analysis, analyzer = outputs
        require_tissue(analysis)
        analysis.checks = inputs.checks.items
        analysis.device = str(self.device or "cpu")
        if len(analysis.detections):
            analysis.scores["confidence"] = round(float(analysis.detections.scores.mean()), 4)
        return analysis

    @staticmethod
    def check_input(reader) -> Checks:
        """The input contract, from the thumbnail and the metadata: a DAB immunostain (H&E is refused with
        :class:`InputRefused`) and a known resolution."""
        from engines.pathology.stain import check_dab_stain

        checks = Checks()
        name = Path(str(reader.path)).name
        thumb, _ = reader.thumbnail(512)
        check_dab_stain(thumb, checks, name)
        if reader.metadata.mpp is None:
            checks.warn("resolution", f"{name} records no microns per pixel: it is analysed as if it were at "
                                      f"{WORKING_MPP} µm/px, so structure sizes and areas may be wrong")
        else:
            checks.passed("resolution", f"{reader.metadata.mpp:.3g} µm/px")
        return checks

    def write_result(self, result: SlideAnalysis, out: Path) -> list[Path]:
        return write_analysis(result, Path(out))


class C4dDeconvolutionEngine(_C4dBase):
    """The classical baseline: DAB optical density from rgb2hed, thresholded."""

    id = "c4d-deconvolution"

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="C4d: colour-deconvolution threshold", task="detection", workspace="pathology",
            inputs="one IHC (DAB) whole-slide image or plain image; any OpenSlide format",
            outputs="GeoJSON detections (QuPath), positivity heatmap (.heatmap.tiff), slide summary (.summary.json)",
            labels=("C4d-positive",),
            description=f"Classical baseline (no weights): DAB density (skimage rgb2hed) > {DAB_THRESHOLD} at "
                        f"{WORKING_MPP} µm/px, connected structures >= {MIN_AREA_UM2} µm².",
            extra={"self_test_out": "c4d-deconvolution.geojson"})

    def _analyzer(self, request, cancel):
        return _DeconvolutionAnalyzer(threshold=float(request.get("dab_threshold", DAB_THRESHOLD)))


class C4dCnnEngine(_C4dBase, ModelEngine):
    """The CNN segmenter trained on AI-assisted labels (deconvolution proposals, enlarged masks).

    On the engine template: the tiles go through ``forward_batches``; structures are found on the network's own
    probabilities, then the detection scores and the heatmap become calibrated probabilities (sigmoid of
    logit / the card's temperature: the 0.5 threshold, every mask and count stay as they were), and the mean energy of the stained pixels of the analysed tiles is the slide's OOD score.
    ``keep_logits`` in the request keeps the raw tile logits in ``extra["tile_logits"]`` (for calibration).
    """

    id = "c4d-cnn"
    weights_name = WEIGHTS_NAME
    architecture = "c4d-unet-tiny"
    model_noun = "the C4d CNN"
    fallback_hint = "The 'c4d-deconvolution' engine needs no weights."
    cpu_batch = 2
    gpu_batch = 16

    def info(self) -> EngineInfo:
        return EngineInfo(
            id=self.id, title="C4d: CNN detector (tiny U-Net)", task="detection", workspace="pathology",
            inputs="one IHC (DAB) whole-slide image or plain image; any OpenSlide format",
            outputs="GeoJSON detections (QuPath), positivity heatmap (.heatmap.tiff), slide summary (.summary.json)",
            labels=("C4d-positive",), weights=WEIGHTS_NAME,
            description="A small U-Net run at 1 µm/px over tissue tiles; trained here on stain-jittered, "
                        "rotated and rescaled patches of scikit-image's IHC field with labels proposed by colour "
                        "deconvolution. Research use only.",
            extra={"self_test_out": "c4d-cnn.geojson"})

    def build_network(self, card):
        from engines.pathology.c4d_model import TinyUNet

        return TinyUNet(**card.arch_args)

    @property
    def model(self):
        """The network on the current device (None when not loaded)."""
        return self._networks.get(self.device or "") if self.loaded else None

    def _analyzer(self, request, cancel):
        return _CnnAnalyzer(self, keep_logits=bool(request.get("keep_logits")), cancel=cancel)

    def finish(self, outputs, inputs, request) -> SlideAnalysis:
        analysis, analyzer = outputs
        calibrate_probabilities(analysis, self.temperature)
        analysis = super().finish(outputs, inputs, request)
        analysis.weights = self.weights_name
        name = Path(str(analysis.slide_path)).name
        ref = (getattr(self.card, "calibration", None) or {}).get("ood") or {}
        analysis.scores["temperature"] = self.temperature
        analysis.scores["ood"] = {"name": "energy", "score": round(analyzer.energy, 4),
                                  **{k: ref[k] for k in ("p95", "p99") if k in ref}}
        check = self.ood_check(analyzer.energy, what=name)
        if check is not None:
            analysis.checks = [*analysis.checks, check]
        if analyzer.logits is not None:
            analysis.extra["tile_logits"] = analyzer.logits
        return analysis


def write_analysis(result: SlideAnalysis, out: Path) -> list[Path]:
    """Detections (.geojson, QuPath detections), heatmap (.heatmap.tiff, float32) and summary (.summary.json)."""
    import tifffile

    from engines.pathology.geojson import detections_to_annotations, write_geojson

    if not out.name.lower().endswith(OUT_SUFFIX):
        raise EngineError(f"--out must end with {OUT_SUFFIX} (detections); the heatmap and summary are written "
                          f"beside it")
    stem = out.name[: -len(OUT_SUFFIX)]
    heat_path = out.with_name(stem + ".heatmap.tiff")
    summary_path = out.with_name(stem + ".summary.json")
    write_geojson(out, detections_to_annotations(result.detections, result.mpp))
    meta = {"cell_level0_px": result.heatmap.cell, "origin_level0_px": list(result.heatmap.origin),
            "label": result.heatmap.label, "slide": result.slide_path, "engine": result.engine_id}
    with atomic_path(heat_path) as tmp:
        tifffile.imwrite(tmp, result.heatmap.values.astype(np.float32), description=json.dumps(meta),
                         metadata=None)
    summary = dict(result.summary, slide=result.slide_path, dimensions=list(result.dimensions), mpp=result.mpp,
                   heatmap=heat_path.name, detections=out.name,
                   checks=[c.as_dict() for c in getattr(result, "checks", [])],
                   note="Research use only. Not for diagnosis.")
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    return [out, heat_path, summary_path]


def read_heatmap(path: Path):
    """Read a heatmap written by ``write_analysis`` back into a Heatmap."""
    import tifffile

    from engines.pathology.results import Heatmap

    try:
        with tifffile.TiffFile(path) as tif:
            values = tif.pages[0].asarray().astype(np.float32)
            meta = json.loads(tif.pages[0].description or "{}")
    except Exception as exc:  # noqa: BLE001
        raise EngineError(f"{Path(path).name}: not a heatmap written by the workstation ({exc})") from None
    return Heatmap(values, float(meta.get("cell_level0_px", 1.0)), tuple(meta.get("origin_level0_px", (0, 0))),
                   meta.get("label", "probability"))
