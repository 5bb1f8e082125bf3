"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.

The heatmap is ReLU(sum_c alpha_c A_c) with A the activations of a convolutional layer and
alpha_c the spatial mean of d(class score)/dA_c, upsampled to the input and scaled to [0, 1].
By default A is the model's last feature map (`forward_features`), the layer the original paper
recommends: late enough to be class-specific, still spatial. For a ViT, A is the patch tokens
entering its last block (`model.gradcam_layer`: only there do they still reach the class token that
the head reads), laid out on the patch grid; `attention.py` has attention rollout.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ReslabError


def _resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = list(getattr(model, "feature_names", [])) or [n for n, _ in model.named_children()]
        raise ReslabError(f"the model has no layer '{layer}'; choose one of: {', '.join(names)}") from None


def _logits(output) -> torch.Tensor:
    # GoogLeNet-style namedtuples put the main logits first
    return output[0] if isinstance(output, tuple) else output


def grad_cam_batch(
    model: nn.Module,
    x: torch.Tensor,
    target_classes: list[int] | torch.Tensor | None = None,
    layer: str | nn.Module | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Grad-CAM for a batch `x` (B, C, H, W): returns ((B, H, W) heatmaps in [0, 1], classes used).

    target_classes: one class index per image; default the model's predicted class.
    layer: a module or a dotted module name (e.g. "layer3"); default the last feature map.
    The model is run in eval mode (restored afterwards); parameter gradients are not touched.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")
    if layer is None:
        # a ViT's final patch tokens do not reach its class-token head: it names an earlier layer
        layer = getattr(model, "gradcam_layer", None)
    was_training = model.training
    model.eval()
    # the input needs a gradient so the graph exists even when every parameter is frozen
    x = x.detach().clone().requires_grad_(True)
    captured: list[torch.Tensor] = []
    try:
        with torch.enable_grad():
            if layer is None:
                activations = model.forward_features(x)
                logits = _logits(model.forward_head(activations))
            else:
                handle = _resolve_layer(model, layer).register_forward_hook(lambda m, i, o: captured.append(o))
                try:
                    logits = _logits(model(x))
                finally:
                    handle.remove()
                if not captured:
                    raise ReslabError(f"layer '{layer}' was not used in the forward pass; pick a layer on the data path")
                activations = captured[-1]
            if activations.ndim != 4 and not (activations.ndim == 3 and hasattr(model, "patch_grid")):
                raise ReslabError("Grad-CAM needs a spatial (B, C, H, W) activation; pick a convolutional layer")
            if target_classes is None:
                classes = logits.argmax(dim=1)
            else:
                classes = torch.as_tensor(target_classes, device=logits.device).long().reshape(-1)
                if len(classes) != len(x):
                    raise ValueError(f"{len(classes)} target classes for {len(x)} images")
            score = logits.gather(1, classes[:, None]).sum()
            (grads,) = torch.autograd.grad(score, activations)
    finally:
        model.train(was_training)
    if activations.ndim == 3:  # a ViT's tokens (B, 1 + h*w, D): the patch tokens laid out on their grid
        from ..models.vit import patch_grid_map

        activations, grads = patch_grid_map(model, activations), patch_grid_map(model, grads)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # alpha_c: (B, C, 1, 1)
    cam = F.relu((weights * activations.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    cam = cam / peak  # an all-zero map (no positive evidence) stays zero
    return cam.cpu().numpy().astype(np.float32), classes.cpu().tolist()


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target_class: int | None = None,
    layer: str | nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM of one image `x` ((C, H, W) or (1, C, H, W)): an (H, W) float32 heatmap in [0, 1]."""
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}")
    cams, _ = grad_cam_batch(model, x, None if target_class is None else [target_class], layer)
    return cams[0]


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend `heatmap` (H, W) in [0, 1] over `image` ((H, W, 3) uint8 or float in [0, 1]); uint8 result."""
    from matplotlib import colormaps

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[:2] != heatmap.shape:
        raise ValueError(f"heatmap {heatmap.shape} and image {image.shape[:2]} differ in size")
    colour = colormaps[cmap](np.clip(heatmap, 0, 1))[..., :3] * 255
    return ((1 - alpha) * image[..., :3] + alpha * colour).round().clip(0, 255).astype(np.uint8)
