"""Calibration: do a classifier's confidences match its accuracy? (Guo et al. 2017)

The expected calibration error bins the test images by their top-1 confidence and averages, over
bins weighted by their share of images, |accuracy - mean confidence|. 0 is perfect calibration;
an over-confident network (typical after long training with hard labels) has confidence above
accuracy, which label smoothing is known to pull down (Müller et al. 2019).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .evaluate import autocast


@torch.no_grad()
def softmax_outputs(model: torch.nn.Module, loader, device: torch.device | str = "cpu", amp: str = "off") -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, K) float64, labels (N,)) of `model` in eval mode over a loader."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        for images, target in loader.batches() if hasattr(loader, "batches") else loader:
            with autocast(device, amp):
                logits = model(images.to(device))
            probs.append(F.softmax(logits.float(), dim=1).double().cpu().numpy())
            labels.append(target.cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(probs), np.concatenate(labels)


def calibration_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict]:
    """Equal-width confidence bins on (0, 1]: for each, its count, accuracy and mean confidence."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin b holds confidences in (edges[b], edges[b + 1]]; a confidence of exactly 0 cannot occur
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    table = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": n,
                      "accuracy": float(correct[mask].mean()) if n else None,
                      "confidence": float(confidence[mask].mean()) if n else None})  # fmt: skip
    return table


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE in percent: sum over bins of (share of images) x |accuracy - mean confidence| x 100."""
    total = len(labels)
    if total == 0:
        return float("nan")
    return 100.0 * sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in calibration_bins(probs, labels, bins) if b["count"])
