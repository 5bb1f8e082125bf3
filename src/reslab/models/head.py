"""What every zoo classifier shares: `forward = forward_head(forward_features(x))` and its head.

A family's trunk is its own (`forward_features`, written out statement by statement); the head
is the same everywhere, in three steps a family may override:

    pool_features(x)  feature map (B, C, H, W) -> one vector per image (B, C)   default: self.avgpool, flatten
    pre_logits(x)     layers between the pooled vector and the last Linear      default: none (VGG/AlexNet: the MLP)
    logits(x)         the classifier itself                                     default: the Linear at classifier_path

`forward_head(x, pre_logits=True)` stops before `logits`: the embedding that search and
analysis use. `get_classifier()` is that last Linear, `reset_classifier(n)` replaces it with a
fresh n-way one (fine-tuning); the state-dict names stay torchvision's.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead:
    """Mixin for zoo models: list it before nn.Module, set `classifier_path`, define `forward_features`."""

    classifier_path: str = "fc"  # dotted module path of the last nn.Linear, e.g. "classifier.6"

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(x), 1)

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.get_classifier()(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.pool_features(x))  # (B, num_features)
        return x if pre_logits else self.logits(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.get_submodule(self.classifier_path)

    def reset_classifier(self, num_classes: int) -> nn.Linear:
        """Replace the last Linear with a freshly initialised `num_classes`-way one; returns it."""
        old = self.get_classifier()
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        parent, _, leaf = self.classifier_path.rpartition(".")
        setattr(self.get_submodule(parent) if parent else self, leaf, new)
        return new
