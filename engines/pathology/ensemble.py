"""Frozen-section metastasis mode (seed 5.2): an ensemble of patch classifiers over the tile pipeline.

The machinery is here; the weights are not. No lymph-node frozen sections (or any H&E metastasis data) are
reachable offline, so no honest tumour classifier can be trained in this project, and the engine is not
registered. Given weights named ``frozen-metastasis-0``, ``frozen-metastasis-1``, ... (safetensors + model
card, architecture ``patch-classifier-cnn``, trained on e.g. CAMELYON16 patches at 1 µm/px), it averages the
members' tumour probabilities per tile into a heatmap and makes a slide-level call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.core.engine import CancelToken, Engine, EngineError, EngineInfo, ProgressFn, no_progress
from engines.pathology.results import SlideAnalysis

WEIGHTS_PREFIX = "frozen-metastasis-"
ARCHITECTURE = "patch-classifier-cnn"
MISSING_WEIGHTS = ("the frozen-section metastasis ensemble has no weights: it needs patch classifiers trained on "
                   "lymph-node sections with tumour labels (safetensors + model card named frozen-metastasis-0, "
                   "-1, ... in the models folder). None are shipped because no such data is available offline.")


class PatchEnsembleAnalyzer:
    """Mean tumour probability of M patch classifiers, one value per tile (a TileAnalyzer)."""

    detects = False

    def __init__(self, models: Sequence[Any], device: str = "cpu", tile: int = 256, margin: int = 0,
                 batch_size: int = 8, target_mpp: float = 1.0) -> None:
        if not models:
            raise EngineError(MISSING_WEIGHTS)
        self.models, self.device = list(models), device
        self.tile, self.margin, self.batch_size, self.target_mpp = tile, margin, batch_size, target_mpp

    def analyze(self, batch: np.ndarray, mpp: float) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            probs = [torch.softmax(m(x), dim=1)[:, 1] for m in self.models]  # class 1 = tumour
            mean = torch.stack(probs).mean(0)
        return mean.float().cpu().numpy().reshape(-1, 1, 1)


def slide_call(analysis: SlideAnalysis, threshold: float = 0.5, min_tiles: int = 2) -> dict[str, Any]:
    """Slide label: metastasis when at least ``min_tiles`` tissue tiles reach ``threshold``."""
    values = analysis.heatmap.values
    analysed = values[~np.isnan(values)]
    positive_cells = int((analysed >= threshold).sum())
    cells_per_tile = max(1, analysed.size // max(1, analysis.summary.get("tiles_analysed", 1)))
    positive_tiles = positive_cells / cells_per_tile
    return {"slide_call": "metastasis" if positive_tiles >= min_tiles else "no metastasis found",
            "max_tumour_probability": round(float(analysed.max()), 4) if analysed.size else None,
            "positive_tiles": round(positive_tiles, 1), "threshold": threshold}


class FrozenSectionEnsembleEngine(Engine):
    """Not registered (no weights); see the module docstring."""

    id = "frozen-metastasis-ensemble"

    def __init__(self, models: Sequence[Any] | None = None) -> None:
        super().__init__()
        self.models = list(models or [])

    def info(self) -> EngineInfo:
        return EngineInfo(id=self.id, title="Frozen section: metastasis ensemble", task="classification",
                          workspace="pathology", inputs="one H&E whole-slide image",
                          outputs="tumour-probability heatmap and slide-level call", labels=("normal", "tumour"),
                          weights=f"{WEIGHTS_PREFIX}0", description=MISSING_WEIGHTS)

    def load(self, device: str) -> None:
        if not self.models:
            raise EngineError(MISSING_WEIGHTS)
        for m in self.models:
            m.to(device).eval()
        super().load(device)

    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if len(paths) != 1:
            raise EngineError(f"{self.id} takes one slide, got {len(paths)}")
        return {"slide_path": Path(paths[0])}

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> SlideAnalysis:
        from engines.pathology.slide import open_slide
        from engines.pathology.tiles import require_tissue, run_tile_pipeline

        analyzer = PatchEnsembleAnalyzer(self.models, self.device or "cpu")
        with open_slide(request["slide_path"]) as reader:
            analysis = run_tile_pipeline(reader, analyzer, engine_id=self.id, class_names=["tumour"],
                                         threshold=float(request.get("threshold", 0.5)), progress=progress,
                                         cancel=cancel, max_tiles=request.get("max_tiles"))
        require_tissue(analysis)
        analysis.summary.update(slide_call(analysis, float(request.get("threshold", 0.5))))
        return analysis
