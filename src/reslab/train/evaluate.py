"""Evaluation: top-1/top-5, loss, per-class accuracy, confusion matrix and predictions.

Works on a `reslab.data` eval loader (`.batches()`) or any iterable of (images, labels). Images
of shape (B, V, C, H, W) are multi-view test-time augmentation (10-crop, flip): the softmax
probabilities of the V views are averaged, as in the ResNet and AlexNet papers.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .distributed import DistInfo, all_reduce_sum


def autocast(device: torch.device, amp: str):
    """The autocast context of an amp mode (off | bf16 | fp16)."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if amp == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    device: torch.device | str = "cpu",
    *,
    num_classes: int | None = None,
    amp: str = "off",
    channels_last: bool = False,
    dist_info: DistInfo | None = None,
    keep_predictions: bool = True,
) -> dict:
    """Evaluate `model` in eval mode; returns percentages and arrays.

    Returns {"top1", "top5", "loss", "count", "per_class_accuracy" (K,), "confusion" (K, K; rows =
    true class), "predictions" (N,), "labels" (N,)}. Under DDP, counts are summed over processes
    (the arrays stay local).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    info = dist_info or DistInfo()
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum, top1 correct, top5 correct, count
    confusion = None
    preds, labels = [], []
    batches = loader.batches() if hasattr(loader, "batches") else loader
    view_weights = getattr(loader, "view_weights", None)
    try:
        for images, target in batches:
            images = images.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            views = images.shape[1] if images.ndim == 5 else 0
            if views:
                images = images.flatten(0, 1)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = model(images)
            logits = (logits[0] if isinstance(logits, tuple) else logits).float()
            if views:
                probs = F.softmax(logits, dim=1).view(-1, views, logits.shape[1])
                if view_weights is not None:
                    probs = (probs * torch.tensor(view_weights, dtype=probs.dtype, device=probs.device)[:, None]).sum(dim=1)
                else:
                    probs = probs.mean(dim=1)
                log_probs = probs.clamp_min(1e-12).log()
            else:
                log_probs = F.log_softmax(logits, dim=1)
            k = log_probs.shape[1]
            if confusion is None:
                confusion = np.zeros((num_classes or k, num_classes or k), dtype=np.int64)
            top = log_probs.topk(min(5, k), dim=1).indices
            hit = top == target[:, None]
            # accumulated on the device: one host sync per batch (for the predictions) rather than four
            sums_dev = torch.stack([F.nll_loss(log_probs, target, reduction="sum").double(), hit[:, 0].sum().double(),
                                    hit.any(dim=1).sum().double(), torch.tensor(float(target.numel()), dtype=torch.float64,
                                                                                 device=target.device)])
            sums += sums_dev.cpu()
            pred = top[:, 0].cpu().numpy()
            true = target.cpu().numpy()
            np.add.at(confusion, (true, pred), 1)
            if keep_predictions:
                preds.append(pred)
                labels.append(true)
    finally:
        model.train(was_training)
    sums = all_reduce_sum(sums, info)
    count = max(sums[3].item(), 1.0)
    if confusion is None:
        confusion = np.zeros((num_classes or 0, num_classes or 0), dtype=np.int64)
    per_class = 100.0 * np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {
        "loss": sums[0].item() / count,
        "top1": 100.0 * sums[1].item() / count,
        "top5": 100.0 * sums[2].item() / count,
        "count": int(sums[3].item()),
        "per_class_accuracy": per_class,
        "confusion": confusion,
        "predictions": np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64),
        "labels": np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64),
    }
