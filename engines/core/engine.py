"""The one shape every engine has (MONAI Label's InferTask idea), plus cancellation and progress."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

# The error types, cancellation and progress live in the leaf module errors.py (samples.py and weights.py
# need them and engine.py imports those two); they stay importable from here.
from engines.core.errors import Cancelled, CancelToken, EngineError, ProgressFn, no_progress

__all__ = ["Cancelled", "CancelToken", "Engine", "EngineError", "EngineInfo", "ProgressFn", "no_progress"]


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is, for listings, the About box and model cards."""

    id: str
    title: str
    task: str
    workspace: str
    inputs: str
    outputs: str
    labels: Sequence[str] = ()
    weights: str | None = None  # name in the weights store, or None for a classical method
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


class Engine:
    """Base class of every engine.

    Subclasses set ``id`` and implement ``info`` and ``predict``; models override ``load``/``unload``.
    ``predict`` must call ``progress`` now and then and check ``cancel`` between chunks of work.
    For the headless CLI an engine also maps input paths to a request (``request_from_paths``) and writes
    its result (``write_result``); ``sample_paths`` names bundled inputs for ``self-test``.
    """

    id: str = ""
    #: other names `csi-workstation run` accepts (e.g. "g2p" for "g2p-nsgd")
    aliases: tuple[str, ...] = ()
    #: True when inputs that are not files are meaningful text (words to pronounce), passed through as given
    text_inputs: bool = False
    #: engines that take exactly one input file: the request key it goes under and what it is called
    input_key: str | None = None
    input_noun: str = "input file"
    #: the bundled sample (engines.core.samples id) that `self-test` runs the engine on
    sample_id: str | None = None

    def __init__(self) -> None:
        self.device: str | None = None

    # -- identity -----------------------------------------------------------------------------------
    def info(self) -> EngineInfo:
        raise NotImplementedError

    # -- life cycle ----------------------------------------------------------------------------------
    def load(self, device: str) -> None:
        """Load weights onto ``device`` ("cpu", "cuda", "cuda:1", "mps"). Classical engines just record it."""
        self.device = device

    def unload(self) -> None:
        self.device = None

    @property
    def loaded(self) -> bool:
        return self.device is not None

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> Any:
        raise NotImplementedError

    def preflight(self, request: Mapping[str, Any]) -> Any:
        """The engine's input contract on ``request`` without running the model: a ``Checks`` (engines.core.checks),
        or None when the engine has no contract beyond what ``predict`` checks. Cheap (metadata and sampled
        statistics), never raises for a bad input: a refusal is a check with status "refused". Views use it to
        grey out engines the open study does not suit, with the reason."""
        return None

    # -- headless use -------------------------------------------------------------------------------
    def request_from_paths(self, paths: Sequence[Path]) -> Mapping[str, Any]:
        if self.input_key is None:
            raise EngineError(f"engine '{self.id}' cannot be run from files")
        if len(paths) != 1:
            raise EngineError(f"{self.id} takes one {self.input_noun}, got {len(paths)}")
        return {self.input_key: Path(paths[0])}

    def write_result(self, result: Any, out: Path) -> list[Path]:
        raise EngineError(f"engine '{self.id}' cannot write its result to a file")

    def default_output_name(self) -> str:
        """The file name `run` writes when no --out is given (and `self-test` writes)."""
        return str(self.info().extra.get("self_test_out", "result.json"))

    def sample_paths(self) -> list[Path]:
        """Bundled inputs this engine can run on (generated on first use)."""
        if self.sample_id is None:
            return []
        from engines.core.samples import sample_path

        return [sample_path(self.sample_id)]

    def weights_status(self) -> str:
        """'none needed', 'ok', or why the weights are unusable. Never raises."""
        name = self.info().weights
        if not name:
            return "none needed"
        from engines.core.weights import WeightsStore  # light: safetensors is imported only to load
        return WeightsStore.default().status(name, network=self.weights_network)

    # A method ``weights_network(card)`` returning the torch module this engine builds from ``card`` lets the
    # status compare the file's tensor shapes with that network when the card records no shapes; None skips.
    weights_network = None
