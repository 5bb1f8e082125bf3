"""One pass over validation images collecting what a report shows.

Predictions, the confusion matrix, per-class accuracy, pooled embeddings, and a few images
(with their labels and predictions) for the sample grid and the Grad-CAM panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ReportEvaluation:
    labels: np.ndarray  # (N,) true class
    predictions: np.ndarray  # (N,) argmax class
    confidences: np.ndarray  # (N,) softmax probability of the prediction
    embeddings: np.ndarray  # (N, D) pooled features (forward_head(pre_logits=True))
    confusion: np.ndarray  # (K, K) counts, rows true, columns predicted
    loss: float  # mean cross-entropy
    kept_images: torch.Tensor  # (M, C, H, W) normalised inputs of a few images per class, for display
    kept_index: np.ndarray  # (M,) their positions in labels/predictions

    @property
    def top1(self) -> float:
        return 100.0 * float((self.labels == self.predictions).mean())

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Percent correct per true class (NaN for a class with no images)."""
        totals = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, 100.0 * np.diag(self.confusion) / totals, np.nan)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def most_confused_pairs(cm: np.ndarray, classes: list[str], k: int = 5) -> list[tuple[str, str, int, float]]:
    """The k largest off-diagonal cells: (true, predicted, count, percent of the true class)."""
    off = np.array(cm, dtype=np.int64, copy=True)
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1][:k]
    pairs = []
    for idx in flat:
        i, j = np.unravel_index(idx, off.shape)
        if off[i, j] == 0:
            break
        pairs.append((classes[i], classes[j], int(off[i, j]), 100.0 * off[i, j] / max(cm[i].sum(), 1)))
    return pairs


def evaluate_for_report(
    model: nn.Module,
    batches: Iterable,
    num_classes: int,
    device: str | torch.device = "cpu",
    max_images: int | None = 2000,
    keep_images: int = 64,
) -> ReportEvaluation:
    """Run `model` (eval mode) over (images, labels) batches, at most `max_images` images."""
    device = torch.device(device)
    model = model.to(device).eval()
    labels, preds, confs, embeds, kept, kept_index = [], [], [], [], [], []
    # a few images of every class, so the sample grid is not all one class of a sorted loader
    per_class = max(1, -(-keep_images // num_classes))
    kept_per_class = np.zeros(num_classes, dtype=np.int64)
    loss_sum, seen = 0.0, 0
    from ..data.progress import image_progress

    with torch.no_grad(), image_progress() as progress:
        task = progress.add_task("analysing validation images", total=max_images)
        for images, targets in batches:
            if max_images is not None:
                images, targets = images[: max_images - seen], targets[: max_images - seen]
            if len(images) == 0:
                break
            for i, label in enumerate(torch.as_tensor(targets).tolist()):
                if kept_per_class[label] < per_class and len(kept) < keep_images:
                    kept_per_class[label] += 1
                    kept.append(images[i].cpu())
                    kept_index.append(seen + i)
            x = images.to(device, non_blocking=True)
            y = torch.as_tensor(targets).to(device, non_blocking=True)
            feats = model.forward_features(x)
            embedding = model.forward_head(feats, pre_logits=True)
            logits = model.forward_head(feats)
            loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
            prob, pred = logits.float().softmax(dim=1).max(dim=1)
            labels.append(y.cpu())
            preds.append(pred.cpu())
            confs.append(prob.cpu())
            embeds.append(embedding.float().flatten(1).cpu())
            seen += len(x)
            progress.update(task, advance=len(x))
            if max_images is not None and seen >= max_images:
                break
    if seen == 0:
        raise ValueError("no validation images to evaluate")
    labels_np = torch.cat(labels).numpy()
    preds_np = torch.cat(preds).numpy()
    kept_t = torch.stack(kept)
    return ReportEvaluation(
        labels=labels_np,
        predictions=preds_np,
        confidences=torch.cat(confs).numpy(),
        embeddings=torch.cat(embeds).numpy(),
        confusion=confusion_matrix(labels_np, preds_np, num_classes),
        loss=loss_sum / seen,
        kept_images=kept_t,
        kept_index=np.asarray(kept_index, dtype=np.int64),
    )


def across_classes(indices: Sequence[int], labels: Sequence[int], n: int) -> list[int]:
    """Up to n of `indices`, taken in turn from each class (its first, then its second, ...),
    so that a panel of samples shows every class rather than the first few of a sorted loader."""
    by_class: dict[int, list[int]] = {}
    for i in indices:
        by_class.setdefault(int(labels[i]), []).append(i)
    picked: list[int] = []
    queues = [by_class[c] for c in sorted(by_class)]
    depth = 0
    while len(picked) < n and any(depth < len(q) for q in queues):
        picked += [q[depth] for q in queues if depth < len(q)][: n - len(picked)]
        depth += 1
    return picked


def display_image(x: torch.Tensor, mean, std) -> np.ndarray:
    """Undo normalisation of one (C, H, W) input: (H, W, 3) or (H, W) floats in [0, 1]."""
    c = x.shape[0]
    mean = torch.as_tensor(mean[:c], dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor(std[:c], dtype=x.dtype).view(-1, 1, 1)
    img = (x.cpu() * std + mean).clamp(0, 1)
    return img[0].numpy() if c == 1 else img.permute(1, 2, 0).numpy()


def eval_batches(config: dict, data_path: str | None = None, device: str = "cpu", batch_size: int = 200,
                 mean: tuple | None = None, std: tuple | None = None, max_images: int | None = None):
    """The evaluation batches of a run's data (its [data] config; `data_path` replaces the path).

    mean, std: the run's normalisation (from load_run_model's preprocess). Given, the training
    split is cut to one image per class (it is not used, so not worth decoding); the evaluation
    split is the same either way, since a hold-out is drawn before any per-class limit.
    max_images (with mean, std): an evaluation split larger than that is cut to a seeded subset of
    each class (splits are stored class by class: its first images would show only the first classes).
    Returns (an object with the data's `classes`, iterable of (images, labels)), normalised as in training.
    """
    from ..data import DataConfig, build_data, build_eval_loader, open_source
    from ..data.build import select_splits
    from ..errors import ReslabError

    raw = dict(config.get("data", {}))
    if data_path:
        raw["path"] = str(data_path)
    if not raw.get("path"):
        raise ReslabError("the run's config names no data path; pass --data PATH (the folder it was trained on)")
    raw["eval_batch_size"] = batch_size
    if mean and std:
        raw["mean"], raw["std"], raw["limit_per_class"] = list(mean), list(std), 1
    cfg = DataConfig.from_dict(raw)
    if max_images and mean and std:
        source = open_source(cfg.path, cfg.format, labelled=cfg.labelled)
        chosen = select_splits(source, cfg)[1]
        if chosen is not None and len(chosen) > max_images:
            per_class = -(-max_images // max(1, len(source.classes)))
            loader, classes = build_eval_loader(cfg, cfg.eval_split, batch_size, mean=mean, std=std, device=device, per_class=per_class)
            return SimpleNamespace(classes=classes), loader.batches()
    data = build_data(cfg, batch_size=1, seed=0, device=device)
    if data.eval is None:
        raise ReslabError(f"{cfg.path} gives no evaluation split with this run's config; set data.eval_split or pass --data")
    return data, data.eval.batches()
