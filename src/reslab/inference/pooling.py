"""How a CNN's feature maps become one retrieval descriptor: the options from the image-retrieval
literature, each measured in docs/search.md.

- `pool`: "avg" (global average, the classifier's own) or "gem", generalized mean pooling
  (Radenović, Tolias & Chum 2018): (mean x^p)^(1/p) per channel; p = 3 weighs the strongest
  activations, which localise the object, more than a flat average.
- `scales`: multi-scale descriptors: the image resized by each factor, the descriptors summed
  (Radenović et al. 2018 use 1, 1/sqrt 2, 1/2).
- `flip`: the descriptors of the image and of its horizontal mirror summed, so a mirrored copy
  gets exactly the same vector.
- `layers`: intermediate layers pooled the same way, each L2-normalised and concatenated with the
  last one: mid-level features (parts, textures) help near-duplicate and instance matching.
- `whole_small`: what reaches the network, not how it is pooled: an image smaller than the
  network's input (a thumbnail, upsampled anyway) is resized whole to the input size instead of
  resized past it and centre-cropped, so its edges are not cut away (+3 points of P@10 on the 32 px
  CIFAR selection folder of docs/search.md); photos larger than the input are cropped as before.

The descriptor is part of the graph every runtime runs (`reslab.inference.heads`), so GeM, flips
and scales run inside ONNX Runtime or OpenVINO too. `Pooling` itself needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import ReslabError

if TYPE_CHECKING:
    import torch

POOLS = ("avg", "gem")
# what `reslab embed` uses for a new CNN index when no --param says otherwise: GeM and flip
# invariance (docs/search.md: neutral to +1 point of P@10 on the selection folders, and a mirrored copy
# gets its original's vector), thumbnails upsampled whole (+3 points on the CIFAR selection folder)
DEFAULT_PARAMS: dict = {"pool": "gem", "flip": True, "whole_small": True}


@dataclass(frozen=True)
class Pooling:
    pool: str = "avg"
    gem_p: float = 3.0
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    layers: tuple[str, ...] = ()
    whole_small: bool = False  # the input, not the pooling: see the module's docstring

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.pool not in POOLS:
            raise ReslabError(f"pool '{self.pool}' is not one of {', '.join(POOLS)}")
        if self.gem_p <= 0:
            raise ReslabError(f"gem_p must be > 0 (3 is the usual value), got {self.gem_p}")
        if not self.scales or any(not 0.25 <= s <= 2.0 for s in self.scales):
            raise ReslabError(f"scales must be factors in [0.25, 2], e.g. 1,0.707; got {self.scales}")

    @classmethod
    def from_params(cls, params: dict) -> "Pooling":
        """From an index manifest's params; absent keys are the original defaults (average pooling,
        one scale, no flip), so indexes built before these options keep embedding queries their way."""
        known = {"pool", "gem_p", "scales", "flip", "layers", "whole_small"}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in known})

    def as_params(self) -> dict:
        return {"pool": self.pool, "gem_p": self.gem_p, "scales": list(self.scales), "flip": self.flip, "layers": list(self.layers),
                "whole_small": self.whole_small}  # fmt: skip

    @property
    def is_plain(self) -> bool:
        """The classifier's own average pooling (whole_small changes the input, not the pooling)."""
        return replace(self, whole_small=False) == Pooling()


@dataclass(frozen=True)
class EmbeddingHead:
    """What a session's "embeddings" output is: the pooled features (neither set), a layer averaged,
    or a retrieval descriptor (`pooling`). Part of every export's and decision's key."""

    layer: str | None = None
    pooling: Pooling | None = None

    def __post_init__(self):
        if self.layer is not None or (self.pooling is not None and self.pooling.is_plain):
            object.__setattr__(self, "pooling", None)  # a layer is averaged as it is; plain pooling is the default

    def key(self) -> dict:
        # whole_small changes the input, not the graph: one export serves both
        graph = {k: v for k, v in self.pooling.as_params().items() if k != "whole_small"} if self.pooling else None
        return {"layer": self.layer, "pooling": graph}

    @property
    def label(self) -> str:
        """For folder names: "pooled", the layer, or the pooling in short ("gem-flip")."""
        if self.layer is not None:
            return self.layer
        if self.pooling is None:
            return "pooled"
        p = self.pooling
        return "-".join([p.pool] + (["flip"] if p.flip else []) + ([f"{len(p.scales)}scales"] if p.scales != (1.0,) else [])
                        + ([f"{len(p.layers)}layers"] if p.layers else []))


def gem(x: "torch.Tensor", p: float = 3.0, eps: float = 1e-6) -> "torch.Tensor":
    """Generalized mean over the spatial positions of (B, C, H, W): (B, C)."""
    return x.float().clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def pool_map(x: "torch.Tensor", pooling: Pooling) -> "torch.Tensor":
    import torch

    if x.dim() != 4:  # a vector already (e.g. a ViT token): nothing to pool
        return torch.flatten(x.float(), 1)
    return gem(x, pooling.gem_p) if pooling.pool == "gem" else x.float().mean(dim=(2, 3))


def descriptor(net, x: "torch.Tensor", pooling: Pooling) -> "torch.Tensor":
    """The (B, dim) descriptor of a normalised batch under `pooling` (not yet L2-normalised)."""
    return descriptor_and_features(net, x, pooling)[0]


def descriptor_and_features(net, x: "torch.Tensor", pooling: Pooling) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """The descriptor, and the last feature map of the image itself (unflipped, scale 1) when one of
    the views is that: the logits come from it without another pass."""
    import torch.nn.functional as F

    views = [x, x.flip(-1)] if pooling.flip else [x]
    total, original = None, None
    for flipped, view in enumerate(views):
        for s in pooling.scales:
            v = view if s == 1.0 else F.interpolate(view, scale_factor=s, mode="bilinear", align_corners=False, antialias=s < 1)
            d, last = _one_scale(net, v, pooling)
            if not flipped and s == 1.0:
                original = last
            total = d if total is None else total + d
    return total, original


def _one_scale(net, x: "torch.Tensor", pooling: Pooling) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(descriptor, last feature map) of one view."""
    import torch
    import torch.nn.functional as F

    if not pooling.layers:
        last = net.forward_features(x)
        return pool_map(last, pooling), last
    modules = dict(net.named_modules())
    missing = [name for name in pooling.layers if name not in modules or not name]
    if missing:
        raise ReslabError(f"the model has no layer {', '.join(missing)}; its stages are {', '.join(getattr(net, 'feature_names', []))}")
    captured: dict[str, torch.Tensor] = {}
    handles = [modules[name].register_forward_hook(_capture(captured, name)) for name in pooling.layers]
    try:
        last = net.forward_features(x)
    finally:
        for h in handles:
            h.remove()
    parts = [pool_map(captured[name], pooling) for name in pooling.layers] + [pool_map(last, pooling)]
    return torch.cat([F.normalize(p, dim=1) for p in parts], dim=1), last


def _capture(store: dict, name: str):
    def hook(_module, _inputs, output):
        store[name] = output[0] if isinstance(output, (tuple, list)) else output

    return hook
