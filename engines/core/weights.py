"""The weights store: safetensors plus a model card, nothing else.

A checkpoint is untrusted input. This store never unpickles: it reads only files whose header parses as
safetensors, and only when a model card beside them names the file's SHA-256. Layout, for a model NAME:

    NAME.safetensors   the tensors
    NAME.card.json     the model card (see ModelCard)

Bundled models live in resources/models; a user's own models in the user data folder (models/).
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from engines.core.atomic import atomic_path, atomic_write_text
from engines.core.errors import EngineError
from engines.core.paths import resources_dir, user_models_dir

CARD_FORMAT = "csi-workstation/model-card@1"
_MAX_HEADER = 100 * 1024 * 1024


class WeightsError(EngineError):
    """The weights cannot be used; the message says why in plain language (so it is an EngineError)."""


def load_state_checked(module, tensors: Mapping[str, Any], what: str = "the weights") -> None:
    """``module.load_state_dict(tensors, strict=True)``, with a plain-language WeightsError when the tensors do
    not fit the network (missing, unexpected or mis-shaped: a checkpoint that is not ours under our name)."""
    try:
        module.load_state_dict(dict(tensors), strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{what} do not fit the network their card describes ({first[:200]})") from None


@dataclass
class ModelCard:
    """What a user and a reviewer need to know about a model (written beside its weights)."""

    name: str
    architecture: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    version: str = "1"
    task: str = ""
    labels: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    training_data: str = ""
    training_command: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    limits: str = ""
    intended_use: str = "Research use only. Not for diagnosis or treatment."
    sha256: str = ""
    format: str = CARD_FORMAT
    # tensor name -> shape, recorded by WeightsStore.save; checked against the file's header when present
    tensor_shapes: dict[str, list[int]] = field(default_factory=dict)
    # temperature, reliability bins and out-of-distribution score percentiles (engines.core.calibration)
    calibration: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"the model card is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
            raise WeightsError("the model card is not a CSI Workstation model card")
        known = {f for f in cls.__dataclass_fields__}
        missing = {"name", "architecture", "sha256"} - raw.keys()
        if missing:
            raise WeightsError(f"the model card lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in raw.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def header_shapes(header: Mapping[str, Any]) -> dict[str, list[int]]:
    """Tensor name -> shape, from a header :func:`check_safetensors_header` returned."""
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def shape_mismatch(file_name: str, actual: Mapping[str, Any], expected: Mapping[str, Any], against: str) -> str | None:
    """One plain sentence when the tensors ``actual`` (name -> shape) differ from ``expected``; None when they fit."""
    actual = {k: list(v) for k, v in actual.items()}
    expected = {k: list(v) for k, v in expected.items()}
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    wrong = [k for k in sorted(expected.keys() & actual.keys()) if actual[k] != expected[k]]
    if not (missing or extra or wrong):
        return None
    parts = []
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} tensor{'s have' if len(wrong) > 1 else ' has'} another shape (e.g. '{k}' is "
                     f"{'x'.join(map(str, actual[k])) or 'a scalar'}, {against} needs "
                     f"{'x'.join(map(str, expected[k])) or 'a scalar'})")
    if missing:
        parts.append(f"{len(missing)} tensor{'s' if len(missing) > 1 else ''} missing (e.g. '{missing[0]}')")
    if extra:
        parts.append(f"{len(extra)} unexpected tensor{'s' if len(extra) > 1 else ''} (e.g. '{extra[0]}')")
    return f"{file_name} does not fit {against}: {'; '.join(parts)}"


def check_safetensors_header(path: Path) -> dict[str, Any]:
    """Parse the safetensors header by hand (8-byte length + JSON); refuse anything else.

    This catches pickles, zip archives (torch.save) and truncated files before any library touches them.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path.name} is too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n <= 1 or n > min(_MAX_HEADER, size - 8):
            raise WeightsError(f"{path.name} is not a safetensors file (a pickle or torch.save archive is "
                               f"refused: checkpoints are never unpickled)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WeightsError(f"{path.name} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path.name} is not a safetensors file")
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
                and _int_list(entry.get("shape")) and _int_list(entry.get("data_offsets"))
                and len(entry["data_offsets"]) == 2 and 0 <= entry["data_offsets"][0] <= entry["data_offsets"][1]):
            raise WeightsError(f"{path.name} is damaged: the entry for tensor '{str(key)[:80]}' in its header is "
                               f"not a valid tensor description")
    end = 8 + n + max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if end > size:
        raise WeightsError(f"{path.name} is truncated ({size} bytes, its header needs {end})")
    return header


class WeightsStore:
    """Finds, verifies and loads model weights. ``roots`` are searched in order."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(r) for r in roots]

    @classmethod
    def default(cls) -> "WeightsStore":
        return cls([user_models_dir(), resources_dir() / "models"])

    def _candidates(self, root: Path, pattern: str) -> list[Path]:
        """``root/pattern`` and ``root/<domain>/pattern`` (bundled weights are grouped by domain)."""
        return sorted(root.glob(pattern)) + sorted(root.glob(f"*/{pattern}"))

    def paths(self, name: str) -> tuple[Path, Path]:
        for root in self.roots:
            for weights in self._candidates(root, f"{name}.safetensors"):
                return weights, weights.with_name(f"{name}.card.json")
        for root in self.roots:  # a non-safetensors checkpoint of that name: say why it is refused
            for other in self._candidates(root, f"{name}.*"):
                if other.suffix in {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}:
                    raise WeightsError(f"{other.name} is a pickle-based checkpoint; only .safetensors weights "
                                       f"with a model card are loaded")
        raise WeightsError(f"no weights named '{name}' (looked in {', '.join(str(r) for r in self.roots)})")

    def card(self, name: str) -> ModelCard:
        weights, card_path = self.paths(name)
        return self.verify(weights, card_path)

    @staticmethod
    def verify(weights: Path, card_path: Path) -> ModelCard:
        """Check header, card, SHA-256 and (when the card records them) tensor shapes; return the card."""
        return WeightsStore._verify(weights, card_path)[0]

    @staticmethod
    def _verify(weights: Path, card_path: Path) -> tuple[ModelCard, dict[str, list[int]]]:
        if weights.suffix != ".safetensors":
            raise WeightsError(f"{weights.name}: only .safetensors weights are loaded")
        try:
            header = check_safetensors_header(weights)
        except OSError as exc:
            raise WeightsError(f"{weights.name} could not be read ({exc.strerror or exc})") from None
        shapes = header_shapes(header)
        if not card_path.exists():
            raise WeightsError(f"{weights.name} has no model card ({card_path.name}); refusing to load it")
        try:
            card = ModelCard.from_json(card_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise WeightsError(f"the model card {card_path.name} could not be read "
                               f"({getattr(exc, 'strerror', None) or 'it is not text'})") from None
        except TypeError:  # a field of the wrong kind in the card
            raise WeightsError(f"the model card {card_path.name} is damaged (a field has the wrong type)") from None
        actual = sha256_file(weights)
        if card.sha256 != actual:
            raise WeightsError(f"{weights.name} does not match its model card (SHA-256 differs): the weights "
                               f"or the card were changed")
        if card.tensor_shapes:
            if not isinstance(card.tensor_shapes, dict) or not all(_int_list(v) for v in card.tensor_shapes.values()):
                raise WeightsError(f"the model card {card_path.name} is damaged (its tensor shapes are not lists "
                                   f"of sizes)")
            problem = shape_mismatch(weights.name, shapes, card.tensor_shapes, "its model card")
            if problem:
                raise WeightsError(problem)
        return card, shapes

    def load(self, name: str, device: str = "cpu", expect_architecture: str | None = None
             ) -> tuple[dict[str, Any], ModelCard]:
        """Return (tensors, card). Raises WeightsError with a plain-language reason."""
        weights, card_path = self.paths(name)
        return self.load_file(weights, card_path, device, expect_architecture)

    @classmethod
    def load_file(cls, weights: Path, card_path: Path | None = None, device: str = "cpu",
                  expect_architecture: str | None = None) -> tuple[dict[str, Any], ModelCard]:
        weights = Path(weights)
        card_path = Path(card_path) if card_path else weights.with_name(weights.stem + ".card.json")
        card = cls.verify(weights, card_path)
        if expect_architecture and card.architecture != expect_architecture:
            raise WeightsError(f"{weights.name} holds a '{card.architecture}' model, not '{expect_architecture}'")
        from safetensors import SafetensorError
        from safetensors.torch import load_file  # no pickle anywhere in this path

        try:
            return load_file(str(weights), device=device), card
        except SafetensorError as exc:
            raise WeightsError(f"{weights.name} is damaged and cannot be read as safetensors "
                               f"({str(exc).split(':')[0].strip()[:120]})") from None
        except OSError as exc:
            raise WeightsError(f"{weights.name} could not be read ({exc.strerror or exc})") from None

    def status(self, name: str, network: Callable[[ModelCard], Any] | None = None) -> str:
        """'ok', or why the weights named ``name`` cannot be used. Never raises for bad weights.

        Tensor shapes are checked against the card when it records them; otherwise, when ``network`` is given
        (card -> the torch module or the name -> shape mapping the engine builds), against that network, so
        a card whose architecture arguments do not describe its tensors is not reported as "ok". Building a
        network imports torch: callers on the GUI thread should rely on the card's recorded shapes.
        """
        try:
            weights, card_path = self.paths(name)
            card, shapes = self._verify(weights, card_path)
            if not card.tensor_shapes and network is not None:
                expected = _network_shapes(weights, card, network)
                problem = shape_mismatch(weights.name, shapes, expected, "the network its card describes")
                if problem:
                    return problem
            return "ok"
        except WeightsError as exc:
            return str(exc)

    @staticmethod
    def save(directory: Path, name: str, tensors: Mapping[str, Any], card: ModelCard) -> tuple[Path, Path]:
        """Write weights and card atomically (used by the training scripts)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        weights = directory / f"{name}.safetensors"
        with atomic_path(weights) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                      metadata={"format": "pt", "name": name, "architecture": card.architecture})
        card.name = name
        card.sha256 = sha256_file(weights)
        card.tensor_shapes = {k: [int(d) for d in v.shape] for k, v in tensors.items()}
        card_path = directory / f"{name}.card.json"
        atomic_write_text(card_path, card.to_json())
        return weights, card_path


_network_cache: dict[tuple, dict[str, list[int]]] = {}


def _network_shapes(weights: Path, card: ModelCard, network: Callable[[ModelCard], Any]) -> dict[str, list[int]]:
    """The shapes of the network ``network(card)`` builds (cached per weights file and card)."""
    owner = getattr(network, "__self__", None)  # an engine's bound method: cache per engine class
    key = None if owner is None else (
        str(weights), card.sha256, json.dumps(card.arch_args, sort_keys=True, default=str), card.architecture,
        type(owner).__module__, type(owner).__qualname__, getattr(network, "__name__", ""))
    if key is None or key not in _network_cache:
        try:
            built = network(card)
        except WeightsError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"the model card of {weights.name} does not describe a network this engine can "
                               f"build ({type(exc).__name__}: {str(exc)[:120]})") from None
        if hasattr(built, "state_dict"):
            built = {k: list(v.shape) for k, v in built.state_dict().items()}
        shapes = {k: [int(d) for d in v] for k, v in dict(built).items()}
        if key is None:
            return shapes
        _network_cache[key] = shapes
    return _network_cache[key]
