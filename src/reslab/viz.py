"""Look inside a network: feature maps of one image at a named stage, first-layer filters, and
where networks look (attention rollout for ViTs beside Grad-CAM for CNNs).

The network comes from `reslab.inference.load` (a zoo name with weights, or a trained run), so
the same commands work on both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ReslabError


def _normalise01(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def top_channel_maps(model: nn.Module, x: torch.Tensor, layer: str, top: int = 16) -> tuple[np.ndarray, list[int]]:
    """The `top` most active channels of stage `layer` for one image x (C, H, W): ((k, h, w), indices).

    Channels are ranked by their mean activation, the ones that respond most to this image.
    """
    from .models.features import feature_maps

    names = list(getattr(model, "feature_names", []))
    if names and layer not in names:
        raise ReslabError(f"the model has no stage '{layer}'; its stages are: {', '.join(names)}")
    from .models.vit import patch_grid_map

    with torch.no_grad():
        out = feature_maps(model.eval(), x[None] if x.ndim == 3 else x, names=[layer])[layer]
        if out.ndim == 3 and hasattr(model, "patch_grid"):  # a ViT's tokens: its patches on their grid
            out = patch_grid_map(model, out)
        maps = out[0]
    if maps.ndim != 3:
        raise ReslabError(f"stage '{layer}' has no spatial output (shape {tuple(maps.shape)}); pick an earlier stage")
    order = maps.mean(dim=(1, 2)).argsort(descending=True)[:top].tolist()
    return maps[order].float().cpu().numpy(), order


def plot_feature_maps(model: nn.Module, x: torch.Tensor, layer: str, path, image: np.ndarray | None = None, top: int = 16) -> Path:
    """A grid of the image (if given) and its `top` strongest channel maps at `layer`."""
    from .plots import plot_image_grid

    maps, order = top_channel_maps(model, x, layer, top)
    tiles = [_normalise01(m) for m in maps]
    captions = [f"ch {c}" for c in order]
    if image is not None:
        tiles.insert(0, np.asarray(image))
        captions.insert(0, "input")
    return plot_image_grid(tiles, path, captions=captions, columns=min(9, len(tiles)), cmap="viridis",
                           title=f"{getattr(model, 'model_name', type(model).__name__)}: {layer}, top {len(order)} channels by mean activation")


def first_conv(model: nn.Module) -> nn.Conv2d:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ReslabError("the model has no convolution to draw filters from")


def plot_first_layer_filters(model: nn.Module, path, max_filters: int = 64) -> Path:
    """The first convolution's filters as small images (RGB when it reads 3 channels), each scaled to [0, 1]."""
    from .plots import plot_image_grid

    weight = first_conv(model).weight.detach().float().cpu()[:max_filters]  # (out, in, k, k)
    tiles = []
    for w in weight:
        if w.shape[0] == 3:
            tiles.append(_normalise01(w.permute(1, 2, 0).numpy()))
        else:
            tiles.append(_normalise01(w.mean(0).numpy()))
    k = weight.shape[-1]
    return plot_image_grid(tiles, path, columns=min(16, len(tiles)), cmap="gray",
                           title=f"first-layer filters ({len(tiles)} of {first_conv(model).out_channels}, {k}x{k})")


def plot_saliency(models: list[tuple[str, nn.Module, object, list[str] | None]], images: list, path,
                  device: str | torch.device = "cpu") -> Path:
    """One row per image: the image, then each model's map over it, attention rollout for a ViT
    and Grad-CAM (for its predicted class) for a CNN.

    models: (label, model in eval mode, its EvalPreprocess, its class names or None).
    images: PIL images; each model sees them through its own preprocessing (size, normalisation).
    """
    from .plots import plot_image_grid
    from .report.attention import saliency
    from .report.evaluation import display_image
    from .report.gradcam import overlay_heatmap

    if not models or not images:
        raise ReslabError("give at least one model and one image")
    columns = [[] for _ in images]  # per image: (tile, caption) pairs
    for label, model, preprocess, classes in models:
        x = torch.stack([preprocess(img) for img in images]).to(device)
        maps, method = saliency(model, x)
        with torch.no_grad():
            predicted = model(x).argmax(dim=1).tolist()
        for row, (xi, cam, p) in enumerate(zip(x, maps, predicted)):
            shown = display_image(xi.cpu(), preprocess.mean, preprocess.std)
            if not columns[row]:
                columns[row].append((shown, "input"))
            guess = classes[p] if classes else f"class {p}"
            columns[row].append((overlay_heatmap(shown, cam), f"{label}\n{method}: {guess}"))
    tiles = [t for row in columns for t, _ in row]
    captions = [c for row in columns for _, c in row]
    return plot_image_grid(tiles, path, captions=captions, columns=len(models) + 1,
                           title="where each network looks: attention rollout (ViT), Grad-CAM (CNN)")
