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

from engines.core.engine import CancelToken, EngineError, EngineInfo, ProgressFn
from engines.core.model_engine import ModelEngine
from engines.pathology.results import SlideAnalysis

WEIGHTS_PREFIX = "frozen-metastasis-"
ARCHITECTURE = "patch-classifier-cnn"
MISSING_WEIGHTS = ("the frozen-section metastasis ensemble has no weights: it needs patch classifiers trained on "
                   "lymph-node sections with tumour labels (safetensors + model card named frozen-metastasis-0, "
                   "-1, ... in the models folder). None are shipped because no such data is available offline.")


class PatchEnsembleAnalyzer:
    """Mean tumour probability of M patch classifiers, one value per tile (a TileAnalyzer).

    ``models`` is a list of torch modules (run here on ``device``), or an engine whose ``forward_batches``
    runs the members (the template's device, batching and out-of-memory fallback)."""

    detects = False

    def __init__(self, models: Sequence[Any] | Any, device: str = "cpu", tile: int = 256, margin: int = 0,
                 batch_size: int = 8, target_mpp: float = 1.0) -> None:
        self.engine = models if hasattr(models, "forward_batches") else None
        if self.engine is None and not models:
            raise EngineError(MISSING_WEIGHTS)
        self.models, self.device = ([] if self.engine is not None else list(models)), device
        self.tile, self.margin, self.batch_size, self.target_mpp = tile, margin, batch_size, target_mpp

    def analyze(self, batch: np.ndarray, mpp: float) -> np.ndarray:
        if self.engine is not None:
            items = [np.ascontiguousarray(rgb.transpose(2, 0, 1), np.float32) / 255.0 for rgb in batch]
            return np.stack(self.engine.forward_batches(items, batch=len(items))).reshape(-1, 1, 1)
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            return mean_tumour_probability(self.models, x).float().cpu().numpy().reshape(-1, 1, 1)


def mean_tumour_probability(models: Sequence[Any], x):
    """The ensemble's output: the members' softmax probability of class 1 (tumour), averaged."""
    import torch

    return torch.stack([torch.softmax(m(x), dim=1)[:, 1] for m in models]).mean(0)


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


class FrozenSectionEnsembleEngine(ModelEngine):
    """Not registered (no weights); see the module docstring.

    On the engine template: the "network" is the ensemble (a ModuleList of the members, loaded from the
    weights store as ``frozen-metastasis-0``, ``-1``, ... or given to the constructor), cached per device;
    tiles run through ``forward_batches``."""

    id = "frozen-metastasis-ensemble"
    weights_name = f"{WEIGHTS_PREFIX}0"
    architecture = ARCHITECTURE
    model_noun = "the frozen-section metastasis ensemble"
    cpu_batch = 8
    gpu_batch = 64

    def __init__(self, models: Sequence[Any] | None = None) -> None:
        super().__init__()
        self.given = list(models or [])

    def info(self) -> EngineInfo:
        return EngineInfo(id=self.id, title="Frozen section: metastasis ensemble", task="classification",
                          workspace="pathology", inputs="one H&E whole-slide image",
                          outputs="tumour-probability heatmap and slide-level call", labels=("normal", "tumour"),
                          weights=self.weights_name, description=MISSING_WEIGHTS)

    def _build_loaded(self, device: str):
        from torch import nn

        if self.given:
            return nn.ModuleList(self.given).to(device).eval(), None
        from engines.core.weights import WeightsStore

        store = WeightsStore.default()
        names = []
        while store.status(f"{WEIGHTS_PREFIX}{len(names)}") == "ok":
            names.append(f"{WEIGHTS_PREFIX}{len(names)}")
        if not names:
            raise EngineError(MISSING_WEIGHTS)
        members, card = [], None
        for name in names:  # each member through the template's one loading path (card, SHA-256, shapes)
            self.weights_name = name
            member, card = super()._build_loaded("cpu")
            members.append(member)
        self.weights_name = names[0]
        return nn.ModuleList(members).to(device).eval(), card

    def build_network(self, card):
        raise EngineError(MISSING_WEIGHTS)  # no patch-classifier architecture ships with the workstation

    def forward(self, x):
        return mean_tumour_probability(self.network, x)

    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if len(paths) != 1:
            raise EngineError(f"{self.id} takes one slide, got {len(paths)}")
        return {"slide_path": Path(paths[0])}

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken):
        from engines.pathology.slide import open_slide

        max_tiles = request.get("max_tiles")
        return (open_slide(request["slide_path"]), float(request.get("threshold", 0.5)),
                int(max_tiles) if max_tiles else None)

    def infer(self, inputs, *, progress: ProgressFn, cancel: CancelToken) -> SlideAnalysis:
        from engines.pathology.tiles import run_tile_pipeline

        reader, threshold, max_tiles = inputs
        analyzer = PatchEnsembleAnalyzer(self, self.device or "cpu", batch_size=self.batch_size())
        with reader:
            return run_tile_pipeline(reader, analyzer, engine_id=self.id, class_names=["tumour"],
                                     threshold=threshold, progress=progress, cancel=cancel, max_tiles=max_tiles)

    def finish(self, analysis: SlideAnalysis, inputs, request: Mapping[str, Any]) -> SlideAnalysis:
        from engines.pathology.tiles import require_tissue

        require_tissue(analysis)
        analysis.summary.update(slide_call(analysis, float(request.get("threshold", 0.5))))
        analysis.device = str(self.device or "cpu")
        return analysis
