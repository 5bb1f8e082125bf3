"""The one graph every runtime runs: normalised images -> (embeddings, logits).

Both outputs come from a single pass, so the same compiled or exported model serves predict
(logits), embed and search (embeddings) and the search page (both), and is exported once. The
embedding is the pooled features, a chosen layer (averaged), or a retrieval descriptor
(`reslab.inference.pooling`: GeM, flips, scales, concatenated layers).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ReslabError
from .pooling import EmbeddingHead, Pooling, descriptor_and_features


class InferenceHead(nn.Module):
    """The embedding of `net` (see the module docstring) and its logits."""

    @classmethod
    def of(cls, net: nn.Module, head: EmbeddingHead | None) -> "InferenceHead":
        head = head or EmbeddingHead()
        return cls(net, head.layer, head.pooling)

    def __init__(self, net: nn.Module, layer: str | None = None, pooling: Pooling | None = None):
        super().__init__()
        self.net = net
        self.layer = layer
        # a chosen layer is averaged as it is (the pooling options describe the last feature map)
        self.pooling = pooling if layer is None and pooling is not None and not pooling.is_plain else None
        self._layer_module = layer_module(net, layer) if layer is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._layer_module is not None:
            return self._layer_and_logits(x)
        if self.pooling is not None:
            embedding, features = descriptor_and_features(self.net, x, self.pooling)
            logits = self.net.forward_head(features) if features is not None else self.net(x)
            return embedding, logits
        features = self.net.forward_features(x)
        pooled = self.net.forward_head(features, pre_logits=True)  # (B, num_features)
        return pooled, self.net.get_classifier()(pooled)

    def _layer_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured = []
        handle = self._layer_module.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            features = self.net.forward_features(x)
        finally:
            handle.remove()
        out = captured[-1]
        out = out[0] if isinstance(out, (tuple, list)) else out
        if out.dim() == 4:  # a feature map (B, C, H, W): its spatial mean
            embedding = out.mean(dim=(2, 3))
        elif out.dim() == 3:  # a transformer's tokens (B, N, D): their mean
            embedding = out.mean(dim=1)
        else:
            embedding = torch.flatten(out, 1)
        return embedding, self.net.forward_head(features)


def layer_module(net: nn.Module, layer: str) -> nn.Module:
    """The module named `layer`: a stage of the model's feature_names ("stem", a ViT's "block6") or a module path."""
    from ..models.features import feature_module_path

    path = feature_module_path(net, layer) if layer in getattr(net, "feature_names", ()) else layer
    modules = dict(net.named_modules())
    if not layer or path not in modules:
        names = ", ".join(getattr(net, "feature_names", [])) or "none"
        raise ReslabError(f"model {getattr(net, 'model_name', type(net).__name__)} has no layer '{layer}'; its stages are {names}")
    return modules[path]


def embedding_dim(net: nn.Module, layer: str | None, input_size: tuple[int, int, int], pooling: Pooling | None = None) -> int:
    """The width of the embedding (the pooled features' when there is no layer and plain pooling)."""
    if layer is None and (pooling is None or pooling.is_plain):
        return int(net.num_features)
    param = next(net.parameters())
    with torch.inference_mode():
        out, _ = InferenceHead(net, layer, pooling)(torch.zeros(1, *input_size, device=param.device, dtype=param.dtype))
    return int(out.shape[1])
