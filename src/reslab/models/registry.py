"""The model registry: a dict and a decorator.

Each builder takes `num_classes` and a handful of named options and returns an `nn.Module`
that follows the feature API (`forward_features`, `forward_head`, `feature_names`).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..errors import ReslabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    input_size: tuple[int, int, int] = (3, 224, 224)  # the default input (C, H, W)
    num_classes: int = 1000
    mean: tuple[float, ...] = IMAGENET_MEAN  # on [0, 1] pixels
    std: tuple[float, ...] = IMAGENET_STD
    resize: int = 256  # evaluation: shorter side resized to this, then a centre crop of input_size
    interpolation: str = "bilinear"
    # named pretrained weights: tag -> function returning a state dict in this model's key names
    pretrained: dict[str, Callable[[], dict]] = field(default_factory=dict)
    description: str = ""


_MODELS: dict[str, ModelEntry] = {}


def register_model(family: str, **entry_fields) -> Callable:
    """Decorator: register `fn` under its function name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        doc = (fn.__doc__ or "").strip().splitlines()
        _MODELS[fn.__name__] = ModelEntry(
            name=fn.__name__, builder=fn, family=family, description=doc[0] if doc else "", **entry_fields
        )
        return fn

    return wrap


def register_builder(name: str, builder: Callable[..., nn.Module], doc: str, family: str, **entry_fields) -> Callable:
    """Register a builder made by a factory (one signature shared by many depths) as `name`."""
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return register_model(family, **entry_fields)(builder)


def list_models(family: str | None = None) -> list[str]:
    _ensure_loaded()
    return sorted(n for n, e in _MODELS.items() if family is None or e.family == family)


def model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `reslab models` lists them"
        raise ReslabError(f"unknown model '{name}'{hint}")
    return _MODELS[name]


NO_WEIGHTS = ("none", "random", "")  # spellings of "random initialisation" where a weights value is asked for


def create_model(name: str, num_classes: int | None = None, weights: str | None = None, **options) -> nn.Module:
    """Build a zoo model by name.

    num_classes: size of the classifier (default: the model's own, 1000 for ImageNet nets).
    weights: a local .pth/.pt/.safetensors file, or a named tag such as "imagenet" where the
        model has one; None, "none" or "random" is random initialisation (torchvision's weights=None).
        With a different num_classes the backbone is kept and the head re-initialised.
    options: architecture options of that family (e.g. variant="v1", shortcut="A").
    """
    entry = model_entry(name)
    params = inspect.signature(entry.builder).parameters
    unknown = [k for k in options if k not in params]
    if unknown:
        known = sorted(k for k in params if k != "num_classes")
        raise ReslabError(
            f"model '{name}' has no option {', '.join(map(repr, unknown))}; its options are: {', '.join(known) or 'none'}"
        )
    model = entry.builder(num_classes=num_classes or entry.num_classes, **options)
    model.model_name = name
    if weights is not None and str(weights).strip().lower() not in NO_WEIGHTS:
        from .weights import load_weights

        load_weights(model, weights, entry=entry)
    return model


def _ensure_loaded() -> None:
    # Importing the family modules runs their @register_model decorators.
    from . import zoo  # noqa: F401
