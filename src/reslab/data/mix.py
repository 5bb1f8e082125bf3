"""Mixup and CutMix on batches, giving soft targets (the training engine owns the loss).

Each image is mixed with its mirror in the batch (`x.flip(0)`, as timm does): no extra permutation
to draw, and the pairs are still random because the batches are shuffled.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    # torch.distributions has no generator argument: seed NumPy's Beta from the torch generator.
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator | None) -> tuple[int, int, int, int]:
    """A box of about (1 - lam) of the image at a uniform centre, clipped to the image: (y1, y2, x1, x2)."""
    cut = float(np.sqrt(1.0 - lam))
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy = int(torch.randint(0, height, (1,), generator=generator))
    cx = int(torch.randint(0, width, (1,), generator=generator))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return y1, y2, x1, x2


def mix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    generator: torch.Generator | None = None,
    switch_prob: float = 0.5,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (lam ~ Beta(a, a), x = lam x + (1 - lam) x') or CutMix (a box from x' pasted in, lam
    = the kept area) on a batch; with both alphas > 0 CutMix is chosen with `switch_prob`.

    Returns (mixed images, soft targets (B, num_classes), rows summing to 1). With both alphas 0
    the images are returned unchanged with one-hot (optionally smoothed) targets.
    """
    targets = F.one_hot(y.long(), num_classes).to(torch.float32)
    if label_smoothing > 0:
        targets = targets * (1 - label_smoothing) + label_smoothing / num_classes
    use_mixup, use_cutmix = mixup_alpha > 0, cutmix_alpha > 0
    if not (use_mixup or use_cutmix):
        return x, targets
    if use_mixup and use_cutmix:
        use_cutmix = bool(torch.rand(1, generator=generator) < switch_prob)
    partner = x.flip(0)
    if use_cutmix:
        lam = _beta(cutmix_alpha, generator)
        y1, y2, x1, x2 = cutmix_box(x.shape[-2], x.shape[-1], lam, generator)
        x = x.clone()
        x[..., y1:y2, x1:x2] = partner[..., y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (x.shape[-2] * x.shape[-1])  # the area actually kept
    else:
        lam = _beta(mixup_alpha, generator)
        x = x * lam + partner * (1.0 - lam)
    targets = targets.to(x.device)
    return x, targets * lam + targets.flip(0) * (1.0 - lam)
