"""One training harness for every model script: arguments, seeding, threads, time budget, resumable
checkpoints, a steps/s log, and the best model saved with its card.

A script builds its data and network, then::

    run = TrainingRun.from_args("c4d-cnn", args)           # args from TrainingRun.parser(...)
    model, opt = ..., ...
    step = run.resume(model, opt)                          # 0, or the step of the last checkpoint
    while run.keep_going(step):
        loss = ...; step += 1
        run.log_step(step, loss=loss)                      # a line with steps/s every --log-every seconds
        if step % args.eval_every == 0:
            metric = evaluate_through_the_engine(...)      # the engine's own prepare/infer/finish
            run.save_best(metric, model, card_for(metric))
        run.checkpoint_maybe(step, model, opt)             # every --checkpoint-minutes, under an ignored folder
    run.done(step)

Checkpoints are safetensors (model and optimizer tensors) plus a JSON of the rest: never a pickle, like the
weights store. They live under ``.training/<name>/`` (ignored by git) unless ``--checkpoint-dir`` says otherwise.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

log = logging.getLogger("csi.training")

DEFAULT_CHECKPOINT_ROOT = Path(".training")


def add_common_arguments(ap: argparse.ArgumentParser, *, minutes: float = 20.0, seed: int = 0) -> argparse.ArgumentParser:
    ap.add_argument("--seed", type=int, default=seed, help="seed of every random generator")
    ap.add_argument("--max-minutes", type=float, default=minutes, help="wall-clock budget of the training loop")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: the workstation's policy, engines.core.threads)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--checkpoint-dir", default="", help="where resumable checkpoints go (default .training/NAME)")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0, help="minutes between checkpoints")
    ap.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
    ap.add_argument("--log-every", type=float, default=30.0, help="seconds between steps/s log lines")
    return ap


def parser(description: str = "", **defaults: Any) -> argparse.ArgumentParser:
    return add_common_arguments(argparse.ArgumentParser(description=description), **defaults)


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def _flatten_optimizer(opt) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optimizer state as (tensors, JSON-able rest): no pickle needed to resume."""
    import torch

    sd = opt.state_dict()
    tensors: dict[str, Any] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        plain_state[str(pid)] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain_state[str(pid)][k] = v
    return tensors, {"state": plain_state, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(opt, tensors: Mapping[str, Any], rest: Mapping[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for pid, plain in rest["state"].items():
        state[int(pid)] = dict(plain)
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


class TrainingRun:
    """The bookkeeping of one training: budget, threads, seed, device, checkpoints, log, best model."""

    def __init__(self, name: str, *, seed: int = 0, max_minutes: float = 20.0, threads: int = 0,
                 device: str = "auto", checkpoint_dir: str | Path = "", checkpoint_minutes: float = 5.0,
                 resume: bool = True, log_every: float = 30.0) -> None:
        self.name = name
        self.seed = seed
        self.budget_s = max(0.0, float(max_minutes) * 60.0)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else DEFAULT_CHECKPOINT_ROOT / name
        self.checkpoint_every_s = max(10.0, float(checkpoint_minutes) * 60.0)
        self.resume_enabled = resume
        self.log_every_s = max(1.0, float(log_every))
        self.best_metric: float | None = None
        self.resumed_extra: dict[str, Any] = {}  # the ``extra`` of the checkpoint ``resume`` loaded
        self.started = time.monotonic()
        self._last_log = (self.started, 0)
        self._last_checkpoint = self.started
        self._first_step = 0
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        seed_everything(seed)
        self.threads = self._set_threads(threads)
        from engines.core.device import resolve_device

        self.device = resolve_device(device).device
        log.info("%s: seed %d, %d CPU thread(s), device %s, budget %.1f min", name, seed, self.threads,
                 self.device, self.budget_s / 60)

    @classmethod
    def from_args(cls, name: str, args: argparse.Namespace) -> "TrainingRun":
        return cls(name, seed=args.seed, max_minutes=args.max_minutes, threads=args.threads, device=args.device,
                   checkpoint_dir=args.checkpoint_dir, checkpoint_minutes=args.checkpoint_minutes,
                   resume=not args.no_resume, log_every=args.log_every)

    @staticmethod
    def _set_threads(threads: int) -> int:
        import torch

        if threads and threads > 0:
            torch.set_num_threads(int(threads))
            # an evaluation through an engine applies the thread policy: it must keep this run's count
            os.environ["CSI_TORCH_THREADS"] = str(int(threads))
            return int(threads)
        from engines.core.threads import apply_thread_policy

        return apply_thread_policy()

    # -- budget and log -------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def time_left(self) -> float:
        return self.budget_s - self.elapsed_s

    def keep_going(self, step: int, max_steps: int | None = None) -> bool:
        if max_steps is not None and step >= max_steps:
            return False
        return self.time_left() > 0

    def log_step(self, step: int, **values: float) -> None:
        now = time.monotonic()
        last_t, last_step = self._last_log
        if now - last_t < self.log_every_s:
            return
        rate = (step - last_step) / max(1e-9, now - last_t)
        extra = " ".join(f"{k} {float(v):.4g}" for k, v in values.items())
        log.info("%s: step %d, %.2f steps/s, %.1f min left %s", self.name, step, rate, self.time_left() / 60, extra)
        self._last_log = (now, step)

    # -- checkpoints ----------------------------------------------------------------------------------
    @property
    def _ckpt_weights(self) -> Path:
        return self.checkpoint_dir / "last.safetensors"

    @property
    def _ckpt_state(self) -> Path:
        return self.checkpoint_dir / "last.json"

    def checkpoint(self, step: int, model, optimizer=None, extra: Mapping[str, Any] | None = None) -> Path:
        """Save model (and optimizer) tensors and the step atomically; the previous checkpoint stays until then."""
        from safetensors.torch import save_file

        from engines.core.atomic import atomic_path, atomic_write_text

        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        rest: dict[str, Any] = {"step": int(step), "name": self.name, "seed": self.seed,
                                "best_metric": self.best_metric, "extra": dict(extra or {})}
        if optimizer is not None:
            opt_tensors, opt_rest = _flatten_optimizer(optimizer)
            tensors.update(opt_tensors)
            rest["optimizer"] = opt_rest
        with atomic_path(self._ckpt_weights) as tmp:
            save_file(tensors, str(tmp))
        atomic_write_text(self._ckpt_state, json.dumps(rest, default=float))
        self._last_checkpoint = time.monotonic()
        log.info("%s: checkpoint at step %d in %s", self.name, step, self.checkpoint_dir)
        return self._ckpt_weights

    def checkpoint_maybe(self, step: int, model, optimizer=None, extra: Mapping[str, Any] | None = None) -> None:
        if time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s:
            self.checkpoint(step, model, optimizer, extra)

    def resume(self, model, optimizer=None) -> int:
        """Load the last checkpoint into ``model`` (and ``optimizer``); return its step, or 0 without one."""
        if not self.resume_enabled or not (self._ckpt_weights.exists() and self._ckpt_state.exists()):
            return 0
        from safetensors.torch import load_file

        tensors = load_file(str(self._ckpt_weights))
        rest = json.loads(self._ckpt_state.read_text(encoding="utf-8"))
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        if optimizer is not None and "optimizer" in rest:
            _unflatten_optimizer(optimizer, tensors, rest["optimizer"])
        self.best_metric = rest.get("best_metric")
        self.resumed_extra = dict(rest.get("extra") or {})
        self._first_step = int(rest.get("step", 0))
        self._last_log = (time.monotonic(), self._first_step)
        log.info("%s: resumed at step %d from %s", self.name, self._first_step, self.checkpoint_dir)
        return self._first_step

    # -- the model that ships -------------------------------------------------------------------------
    def save_best(self, metric: float, model, card_for: Callable[[], Any], out_dir: str | Path,
                  *, higher_is_better: bool = True) -> bool:
        """Save ``model`` with the card ``card_for()`` builds when ``metric`` beats the best so far."""
        better = (self.best_metric is None or
                  (metric > self.best_metric if higher_is_better else metric < self.best_metric))
        if not better:
            return False
        from engines.core.weights import WeightsStore

        self.best_metric = float(metric)
        card = card_for()
        WeightsStore.save(Path(out_dir), card.name, model.state_dict(), card)
        log.info("%s: best so far (%.4f): saved %s", self.name, metric, card.name)
        return True

    def done(self, step: int) -> dict[str, Any]:
        trained = step - self._first_step
        summary = {"name": self.name, "steps": int(step), "steps_this_run": int(trained),
                   "minutes": round(self.elapsed_s / 60, 2), "steps_per_s": round(trained / max(1e-9, self.elapsed_s), 3),
                   "threads": self.threads, "device": self.device, "seed": self.seed, "best_metric": self.best_metric}
        log.info("%s: finished: %s", self.name, json.dumps(summary))
        return summary


def command_line() -> str:
    """The command that started this script, for the model card's training_command."""
    return " ".join([".venv/bin/python", *[a if " " not in a else repr(a) for a in sys.argv]])

