"""Intermediate feature maps of any zoo model, by stage name.

Every zoo model lists its named stages in `model.feature_names`, shallow to deep. A name is a
dotted module path (`"layer1"`, `"features.5"`, `"inception4e"`) whose output is that stage's
feature map, unless the model's `feature_aliases` dict maps it to one: ResNets call the output of
their max-pool "stem" (`feature_aliases = {"stem": "maxpool"}`). A new family declares these two
class attributes and nothing else.

    from reslab.models import create_model
    from reslab.models.features import feature_maps

    model = create_model("resnet50").eval()
    maps = feature_maps(model, images)          # {"stem": (B, 64, 56, 56), ..., "layer4": (B, 2048, 7, 7)}
    maps = feature_maps(model, images, ["layer3"])
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ReslabError


def feature_module_path(model: nn.Module, name: str) -> str:
    """The dotted module path whose output is the feature map `name`."""
    names = list(getattr(model, "feature_names", []))
    if name not in names:
        raise ReslabError(
            f"{type(model).__name__} has no feature map named {name!r}; its names are: {', '.join(names) or 'none'}"
        )
    return getattr(model, "feature_aliases", {}).get(name, name)


def feature_modules(model: nn.Module, names: list[str] | None = None) -> dict[str, nn.Module]:
    """`{name: module}` for the given feature names (default: all of `model.feature_names`)."""
    names = list(model.feature_names) if names is None else list(names)
    return {name: model.get_submodule(feature_module_path(model, name)) for name in names}


def feature_maps(model: nn.Module, x: torch.Tensor, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Run `model.forward_features(x)` and return the output of each named stage, in network order.

    Hooks are removed afterwards, even on an error. The tensors keep their autograd graph (for
    gradient-based saliency); call under `torch.no_grad()` when you only need the values. A module
    that runs more than once in a pass keeps its last output.
    """
    modules = feature_modules(model, names)
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in modules.items():

        def hook(_module, _inputs, output, name=name):
            captured[name] = output

        handles.append(module.register_forward_hook(hook))
    try:
        model.forward_features(x)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in modules if n not in captured]
    if missing:
        raise RuntimeError(f"feature maps {missing} of {type(model).__name__} were not produced by forward_features")
    return {name: captured[name] for name in modules}


def remove_classifier(model: nn.Module) -> nn.Module:
    """Replace the model's classifier by an identity, in place: `model(x)` then returns the pooled
    features (B, num_features), and the state dict is the zoo's minus the classifier's keys."""
    classifier = model.get_classifier()
    for path, module in model.named_modules():
        if module is classifier and path:
            parent, _, attr = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, nn.Identity())
            model.num_features = classifier.in_features
            return model
    raise ReslabError(f"cannot find the classifier of {type(model).__name__} to remove it")
