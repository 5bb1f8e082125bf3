"""Losses: cross-entropy with label smoothing, soft-target cross-entropy (Mixup/CutMix), GoogLeNet's aux heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over the batch of -sum_k t_k log softmax(z)_k, with t smoothed towards uniform by `label_smoothing`."""
    if label_smoothing > 0:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[-1]
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def classification_loss(outputs, targets: torch.Tensor, label_smoothing: float = 0.0, aux_weight: float = 0.3,
                        class_weights: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Loss of a model's training output against hard labels (B,) or soft targets (B, K).

    GoogLeNet's training output is a (logits, aux2, aux1) tuple: loss = main + aux_weight * (aux1 + aux2),
    as in Szegedy et al. 2014. class_weights (K,): each sample's loss weighted by its class's weight
    (a soft target's by the target-weighted mean), normalised by the batch's total weight.
    """
    if isinstance(outputs, tuple):
        main, *aux = outputs
        loss = classification_loss(main, targets, label_smoothing, class_weights=class_weights)
        for a in aux:
            if a is not None:
                loss = loss + aux_weight * classification_loss(a, targets, label_smoothing, class_weights=class_weights)
        return loss
    if class_weights is not None:
        w = class_weights.to(outputs.device, torch.float32)
        if targets.dtype.is_floating_point:
            t = targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[-1] if label_smoothing > 0 else targets
            per_sample = torch.sum(-t * F.log_softmax(outputs.float(), dim=-1), dim=-1)
            weight = targets.float() @ w
        else:
            per_sample = F.cross_entropy(outputs.float(), targets, label_smoothing=label_smoothing, reduction="none")
            weight = w[targets]
        return (per_sample * weight).sum() / weight.sum().clamp_min(1e-12)
    if targets.dtype.is_floating_point:
        return soft_target_cross_entropy(outputs, targets, label_smoothing)
    return F.cross_entropy(outputs.float(), targets, label_smoothing=label_smoothing)


def main_logits(outputs) -> torch.Tensor:
    return outputs[0] if isinstance(outputs, tuple) else outputs
