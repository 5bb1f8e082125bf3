"""Attention rollout (Abnar & Zuidema 2020): which image patches a ViT's prediction draws on.

A token's output after one block is a weighted sum of all tokens, with the weights A (averaged over
heads) computed from the input; the residual connection adds the token itself, so one block mixes
with (A + I) / 2, rows renormalised. Multiplying these matrices from the first block to the last
gives how much each input patch flows into each final token; the class token's row (or, for a
mean-pooled ViT, the mean of the patch rows) over the patch grid is the map, upsampled to the
image. Unlike Grad-CAM it is class-agnostic: it shows where the network looks, not the evidence for
one class. `saliency` picks rollout for a ViT and Grad-CAM for a CNN, so the two can sit side by side.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ReslabError


def has_attention(model: nn.Module) -> bool:
    from ..models.vit import SelfAttention

    return any(isinstance(m, SelfAttention) for m in model.modules())


def rollout_matrix(weights: list[torch.Tensor], discard_ratio: float = 0.0) -> torch.Tensor:
    """(B, N, N) product over blocks of (mean-over-heads attention + I) / 2, rows renormalised.

    weights: one (B, heads, N, N) tensor per block, first block first.
    discard_ratio: the fraction of the weakest attention weights per row set to zero before mixing
    (the original's noise filter; the class token's own column is always kept).
    """
    if not weights:
        raise ReslabError("no attention weights were recorded; is the model a ViT?")
    b, _, n, _ = weights[0].shape
    eye = torch.eye(n, dtype=torch.float64, device=weights[0].device)
    result = eye.expand(b, n, n)
    for w in weights:
        a = w.double().mean(dim=1)  # (B, N, N): heads averaged
        if discard_ratio > 0:
            k = int(n * discard_ratio)
            if k:
                lowest = a.topk(k, dim=-1, largest=False).indices
                keep = torch.ones_like(a).scatter_(-1, lowest, 0.0)
                keep[:, :, 0] = 1.0
                a = a * keep
        a = (a + eye) / 2
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result


def attention_rollout(model: nn.Module, x: torch.Tensor, discard_ratio: float = 0.0) -> np.ndarray:
    """Attention rollout of a batch `x` (B, C, H, W) through ViT `model`: (B, H, W) float32 maps in [0, 1]."""
    from ..models.vit import record_attention

    if x.ndim != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), record_attention(model) as weights:
            model(x)
    finally:
        model.train(was_training)
    r = rollout_matrix(weights, discard_ratio)  # (B, N, N)
    h, w = model.patch_grid
    patches = r.shape[-1] - h * w  # prefix tokens: the class token
    if getattr(model, "pool", "token") == "mean":
        flow = r[:, patches:, patches:].mean(dim=1)  # what the averaged patch tokens draw on
    else:
        flow = r[:, 0, patches:]  # what the class token draws on
    maps = flow.float().reshape(-1, 1, h, w)
    maps = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = maps.flatten(1).amin(dim=1)[:, None, None]
    hi = maps.flatten(1).amax(dim=1)[:, None, None]
    maps = (maps - lo) / (hi - lo).clamp_min(1e-12)
    return maps.cpu().numpy().astype(np.float32)


def saliency(model: nn.Module, x: torch.Tensor, target_classes=None) -> tuple[np.ndarray, str]:
    """(B, H, W) maps in [0, 1] and the method's name: attention rollout for a ViT, Grad-CAM otherwise."""
    if has_attention(model):
        return attention_rollout(model, x), "attention rollout"
    from .gradcam import grad_cam_batch

    maps, _ = grad_cam_batch(model, x, target_classes)
    return maps, "Grad-CAM"
