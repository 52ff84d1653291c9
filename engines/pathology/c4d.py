"""C4d peritubular-capillary engines (seed 5.1): the plain colour-deconvolution threshold, and the CNN.

Both run through the tile pipeline and return a ``SlideAnalysis`` (positivity heatmap, detections with
scores and outlines, slide summary) so that a pathologist can compare them side by side.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.core.atomic import atomic_path, atomic_write_text
from engines.core.checks import Checks
from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.core.weights import load_state_checked
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


class _CnnAnalyzer:
    detects = True

    def __init__(self, model, device: str, tile: int = 512, margin: int = 32, batch_size: int = 2):
        self.model, self.device = model, device
        self.target_mpp, self.tile, self.margin, self.batch_size = WORKING_MPP, tile, margin, batch_size

    def analyze(self, batch: np.ndarray, mpp: float) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            return torch.sigmoid(self.model(x)).float().cpu().numpy()


class _C4dBase(Engine):
    title = ""

    input_key = "slide_path"
    input_noun = "slide"
    sample_id = "ihc-slide"

    def _analyzer(self, request: Mapping[str, Any]):
        raise NotImplementedError

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> SlideAnalysis:
        from engines.pathology.slide import open_slide
        from engines.pathology.tiles import require_tissue, run_tile_pipeline

        cancel = cancel or CancelToken()
        progress(0.0, "opening the slide")
        reader = request.get("reader")
        own = reader is None
        if own:
            reader = open_slide(request["slide_path"])
        try:
            checks = self.check_input(reader)
            cancel.raise_if_cancelled()
            analysis = run_tile_pipeline(
                reader, self._analyzer(request), engine_id=self.id, class_names=["C4d-positive"],
                threshold=float(request.get("threshold", 0.5)),
                min_area_um2=float(request.get("min_area_um2", MIN_AREA_UM2)),
                progress=progress, cancel=cancel,
                max_tiles=int(request["max_tiles"]) if request.get("max_tiles") else None)
        finally:
            if own:
                reader.close()
        require_tissue(analysis)
        analysis.checks = checks.items
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

    def _analyzer(self, request):
        return _DeconvolutionAnalyzer(threshold=float(request.get("dab_threshold", DAB_THRESHOLD)))


class C4dCnnEngine(_C4dBase):
    """The CNN segmenter trained on AI-assisted labels (deconvolution proposals, enlarged masks)."""

    id = "c4d-cnn"

    def __init__(self) -> None:
        super().__init__()
        self.model = None
        self.card = None

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

    def load(self, device: str) -> None:
        from engines.core.weights import WeightsError, WeightsStore
        from engines.pathology.c4d_model import ARCHITECTURE, TinyUNet

        try:
            tensors, card = WeightsStore.default().load(WEIGHTS_NAME, "cpu", expect_architecture=ARCHITECTURE)
        except WeightsError as exc:
            raise EngineError(f"the C4d CNN cannot load its weights: {exc}") from None
        model = TinyUNet(**card.arch_args)
        load_state_checked(model, tensors, "the C4d CNN's weights")
        self.model = model.to(device).eval()
        self.card = card
        super().load(device)

    def unload(self) -> None:
        self.model = None
        super().unload()

    def _analyzer(self, request):
        if self.model is None:
            raise EngineError("the C4d CNN is not loaded")
        return _CnnAnalyzer(self.model, self.device or "cpu")


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
