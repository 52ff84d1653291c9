"""The template every engine is built on (MONAI Label's BasicInferTask: pre-transforms -> inferer -> post-transforms).

An engine declares three steps and the template runs them the same way everywhere::

    prepare(request, progress, cancel) -> inputs     read, check the input contract, preprocess (numpy)
    infer(inputs, progress, cancel)    -> outputs    the network (or the classical method)
    finish(outputs, inputs, request)   -> result     postprocess into a typed result (engines.core.results)

``PipelineEngine`` is that shape for classical methods. ``ModelEngine`` adds the network's life cycle: the
engine names its weights (``weights_name``) and the card architecture it runs (``architecture``) and says how to
build the network from the card (``build_network(card)``); the template owns

- loading: safetensors through the weights store (never a pickle), the state dict checked strictly, one
  plain-language message whatever went wrong (``WeightsError`` is an ``EngineError``: no wrappers needed);
- the device: one network per device in a cache, ``predict`` before ``load`` loads on the resolved default
  device (CSI_DEVICE, else CUDA, else CPU) and logs it, ``network_device`` says where the weights really are;
- ``torch.inference_mode``, the CPU thread policy (engines.core.threads), cancellation (one ``CancelToken`` made
  here when the caller gave none) and batching with a CUDA out-of-memory fallback (``forward_batches``: halve
  the batch, then move to the CPU and say so);
- calibration: ``temperature`` from the card, ``ood_check(score)`` against the card's validation percentiles.

Training and evaluation scripts call the same ``prepare``/``infer``/``finish`` (or ``evaluate_request``), so the
figures on a model card are the figures of the path users run.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from engines.core.engine import CancelToken, Engine, EngineError, ProgressFn, no_progress

log = logging.getLogger(__name__)


def as_token(cancel: CancelToken | None) -> CancelToken:
    """The caller's token, or a fresh one that is never cancelled."""
    return cancel if cancel is not None else CancelToken()


class PipelineEngine(Engine):
    """prepare -> infer -> finish, with cancellation between the steps (classical engines and the base of models)."""

    def prepare(self, request: Mapping[str, Any], *, progress: ProgressFn, cancel: CancelToken) -> Any:
        raise NotImplementedError

    def infer(self, inputs: Any, *, progress: ProgressFn, cancel: CancelToken) -> Any:
        """The computation proper; a classical engine may do everything in ``prepare`` and pass it through."""
        return inputs

    def finish(self, outputs: Any, inputs: Any, request: Mapping[str, Any]) -> Any:
        return outputs

    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> Any:
        cancel = as_token(cancel)
        inputs = self.prepare(request, progress=progress, cancel=cancel)
        cancel.raise_if_cancelled()
        outputs = self._run_infer(inputs, progress, cancel)
        cancel.raise_if_cancelled()
        return self.finish(outputs, inputs, request)

    def _run_infer(self, inputs: Any, progress: ProgressFn, cancel: CancelToken) -> Any:
        return self.infer(inputs, progress=progress, cancel=cancel)


class ModelEngine(PipelineEngine):
    """An engine with a network loaded from the weights store. Subclasses set ``weights_name`` and
    ``architecture`` and implement ``build_network(card)``, ``prepare`` and ``finish`` (``infer`` defaults to
    ``forward_batches`` over ``inputs`` when they are a sequence of arrays)."""

    #: the name in the weights store (resources/models/**/NAME.safetensors + NAME.card.json)
    weights_name: str = ""
    #: the card's architecture this engine runs; None accepts any the subclass's build_network accepts
    architecture: str | None = None
    #: how messages name the model ("the C4d CNN"); defaults to the engine id
    model_noun: str = ""
    #: said after a load failure, e.g. "The 'chord-templates' engine needs no weights."
    fallback_hint: str = ""
    #: slices/windows/tiles per forward pass on the CPU and on an accelerator
    cpu_batch: int = 8
    gpu_batch: int = 32

    def __init__(self) -> None:
        super().__init__()
        self._networks: dict[str, Any] = {}
        self.card = None
        self._lock = threading.RLock()  # one engine call at a time per instance (workers share engines)

    # -- what a subclass declares ---------------------------------------------------------------------
    def build_network(self, card) -> Any:
        """A fresh torch module for ``card`` (its ``arch_args``), weights not yet loaded."""
        raise NotImplementedError

    def weights_network(self, card) -> Any:  # used by weights_status to compare shapes with the card
        return self.build_network(card)

    # -- life cycle -----------------------------------------------------------------------------------
    @property
    def noun(self) -> str:
        return self.model_noun or self.id

    def _build_loaded(self, device: str):
        from engines.core.weights import WeightsError, WeightsStore, load_state_checked

        try:
            tensors, card = WeightsStore.default().load(self.weights_name, "cpu",
                                                        expect_architecture=self.architecture)
            try:
                network = self.build_network(card)
            except (KeyError, TypeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise WeightsError(f"the model card does not describe a network this engine can build "
                                   f"({first[:200]})") from None
            load_state_checked(network, tensors, f"the weights of {self.noun}")
        except WeightsError as exc:
            hint = f" {self.fallback_hint}" if self.fallback_hint else ""
            raise type(exc)(f"{self.noun} cannot load its weights '{self.weights_name}': {exc}.{hint}") from None
        return network.to(device).eval(), card

    def load(self, device: str) -> None:
        with self._lock:
            if device not in self._networks:
                self._networks[device], self.card = self._build_loaded(device)
            self.device = device

    def attach_network(self, network, card=None, device: str = "cpu") -> "ModelEngine":
        """Run ``network`` (a model in memory: a training script's, being evaluated) instead of the shipped
        weights, so the evaluation goes through this engine's own prepare/infer/finish. Returns the engine."""
        with self._lock:
            self._networks[device] = network.to(device).eval()
            if card is not None:
                self.card = card
            self.device = device
        return self

    def unload(self) -> None:
        with self._lock:
            had_accelerator = any(not d.startswith("cpu") for d in self._networks)
            self._networks.clear()
            self.device = None
        if had_accelerator:
            from engines.core.device import free_accelerator_memory

            free_accelerator_memory()

    @property
    def loaded(self) -> bool:
        return self.device is not None and self.device in self._networks

    def ensure_loaded(self) -> Any:
        """The network on the current device; before any ``load``, loads on the resolved default device."""
        if not self.loaded:
            from engines.core.device import resolve_device

            device = self.device or resolve_device().device
            log.info("%s: predict before load: loading on %s", self.id, device)
            self.load(device)
        return self._networks[self.device]

    @property
    def network(self) -> Any:
        return self.ensure_loaded()

    @property
    def network_device(self) -> str | None:
        """Where the network's weights really are (None when not loaded)."""
        net = self._networks.get(self.device or "")
        if net is None:
            return None
        try:
            return str(next(net.parameters()).device)
        except StopIteration:
            return self.device

    @property
    def temperature(self) -> float:
        from engines.core.calibration import temperature_of

        return temperature_of(self.card)

    def ood_check(self, score: float, *, what: str = "the input"):
        from engines.core.calibration import ood_check

        return ood_check(score, self.card, what=what)

    # -- running --------------------------------------------------------------------------------------
    def predict(self, request: Mapping[str, Any], *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> Any:
        with self._lock:
            self.ensure_loaded()
            return super().predict(request, progress=progress, cancel=cancel)

    def _run_infer(self, inputs: Any, progress: ProgressFn, cancel: CancelToken) -> Any:
        import torch

        if str(self.device or "cpu").startswith("cpu"):
            from engines.core.threads import apply_thread_policy

            apply_thread_policy()
        with torch.inference_mode():
            return self.infer(inputs, progress=progress, cancel=cancel)

    def infer(self, inputs: Any, *, progress: ProgressFn, cancel: CancelToken) -> Any:
        return self.forward_batches(inputs, progress=progress, cancel=cancel)

    def batch_size(self) -> int:
        return self.cpu_batch if str(self.device or "cpu").startswith("cpu") else self.gpu_batch

    def forward(self, x: "Any") -> Any:
        """One forward pass of the network on a batch tensor (override for nets with several inputs)."""
        return self.network(x)

    def forward_batches(self, items: Sequence[np.ndarray] | np.ndarray, *, progress: ProgressFn = no_progress,
                        cancel: CancelToken | None = None, span: tuple[float, float] = (0.05, 0.95),
                        message: str = "running the network", batch: int | None = None,
                        post: Callable[[Any], np.ndarray] | None = None) -> list[np.ndarray]:
        """Run the network over ``items`` (arrays of one shape, stacked into batches) and return one output
        array per item, in order. ``post`` turns a batch output tensor into numpy (default: float32 on the CPU).

        A CUDA out-of-memory error halves the batch and retries; at batch 1 the network moves to the CPU and the
        run goes on there (logged as a warning). Cancellation is checked between batches.
        """
        import torch

        from engines.core.device import free_accelerator_memory, is_out_of_memory

        cancel = as_token(cancel)
        post = post or (lambda t: t.float().cpu().numpy())
        n = len(items)
        size = max(1, int(batch or self.batch_size()))
        out: list[np.ndarray] = []
        start = 0
        lo, hi = span
        while start < n:
            cancel.raise_if_cancelled()
            chunk = np.stack([np.asarray(a) for a in items[start:start + size]])
            try:
                x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device or "cpu")
                y = post(self.forward(x))
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled here
                if not is_out_of_memory(exc) or str(self.device or "cpu").startswith("cpu"):
                    raise
                free_accelerator_memory()
                if size > 1:
                    size = max(1, size // 2)
                    log.warning("%s: out of GPU memory; retrying with batches of %d", self.id, size)
                else:
                    log.warning("%s: out of GPU memory even one item at a time; going on on the CPU", self.id)
                    self.load("cpu")
                continue
            out.extend(list(y))
            start += len(chunk)
            progress(lo + (hi - lo) * start / max(1, n), f"{message} ({start}/{n})")
        return out

    def evaluate_request(self, request: Mapping[str, Any], *, cancel: CancelToken | None = None) -> Any:
        """The whole user path on one request, for training and evaluation scripts (same as ``predict``)."""
        return self.predict(request, cancel=cancel)

