"""Weighted k-nearest-neighbour classification of frozen features (Wu et al. 2018's protocol).

The standard monitor of self-supervised training (InstDisc, MoCo, lightly's benchmarks): embed a
labelled bank (the training images, unaugmented) and the test images with the backbone, L2-
normalise, and let each test image's k = 200 most cosine-similar bank images vote for their
class with weight exp(similarity / 0.1). No training, so the number measures the features only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..train.evaluate import autocast

KNN_K = 200
KNN_TEMPERATURE = 0.1


@torch.no_grad()
def embed_loader(model: nn.Module, loader, device: torch.device | str = "cpu", amp: str = "off",
                 channels_last: bool = False, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(features (N, D) float32, labels (N,)) on the CPU: `model(x)` of every batch, in eval mode,
    L2-normalised unless `normalize` is False (a linear probe standardises them itself)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for images, target in loader.batches() if hasattr(loader, "batches") else loader:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                out = model(images)
            out = out.float()
            feats.append((F.normalize(out, dim=1) if normalize else out).cpu())
            labels.append(target.cpu())
    finally:
        model.train(was_training)
    if not feats:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(labels).long()


@torch.no_grad()
def knn_predict(query: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = KNN_K, temperature: float = KNN_TEMPERATURE, exclude_self: bool = False,
                chunk: int = 1024) -> torch.Tensor:  # fmt: skip
    """Class scores (Q, num_classes) of the weighted kNN vote; argmax is the prediction.

    query (Q, D), bank (N, D): L2-normalised rows. exclude_self: query row i is bank row i and must
    not vote for itself (leave-one-out on one labelled set). Queries go in chunks, so memory is
    chunk x N rather than Q x N.
    """
    k = min(k, bank.shape[0] - (1 if exclude_self else 0))
    if k < 1:
        raise ValueError("the kNN bank needs at least one image besides the query")
    scores = []
    for start in range(0, query.shape[0], chunk):
        sim = query[start : start + chunk] @ bank.T  # (c, N) cosine similarities
        if exclude_self:
            rows = torch.arange(sim.shape[0])
            sim[rows, start + rows] = float("-inf")
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, dtype=weights.dtype)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        scores.append(votes)
    return torch.cat(scores) if scores else torch.zeros(0, num_classes)


def knn_accuracy(query: torch.Tensor, query_labels: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                 num_classes: int, k: int = KNN_K, temperature: float = KNN_TEMPERATURE,
                 exclude_self: bool = False) -> dict:  # fmt: skip
    """{"knn_top1", "knn_top5" (percent), "count"} of the weighted kNN vote."""
    scores = knn_predict(query, bank, bank_labels, num_classes, k, temperature, exclude_self)
    top = scores.topk(min(5, num_classes), dim=1).indices
    hit = top == query_labels[:, None]
    n = max(len(query_labels), 1)
    return {"knn_top1": 100.0 * hit[:, 0].sum().item() / n, "knn_top5": 100.0 * hit.any(dim=1).sum().item() / n,
            "count": len(query_labels)}


class PooledFeatures(nn.Module):
    """A zoo model's pooled pre-classifier features as its output, whether or not it has a classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
