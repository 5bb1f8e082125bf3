"""A picture of what the augmentation does: each row one training image, its evaluation view first,
then independent augmented draws. Check a recipe by eye before spending a day training on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .build import build_data
from .config import DataConfig
from .loaders import InMemoryTrainLoader, derive_seed
from .transforms import FileEvalTransform


def augmentation_views(cfg: DataConfig, samples: int = 6, draws: int = 5, seed: int = 0):
    """(views (samples, 1 + draws, C, H, W) on [0, 1], class names of the samples)."""
    data = build_data(cfg, batch_size=1, seed=seed, device="cpu")
    train = data.train
    n = train.num_samples
    picks = np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False)
    mean = torch.tensor(data.mean).view(-1, 1, 1)
    std = torch.tensor(data.std).view(-1, 1, 1)
    rows, names = [], []
    for i in picks.tolist():
        if isinstance(train, InMemoryTrainLoader):
            x = train.images[i : i + 1]
            clean = x.float().div(255).expand(-1, data.num_channels, -1, -1)[0]
            augmented = [train.augment(x, torch.Generator().manual_seed(derive_seed(seed, d, i)))[0] * std + mean for d in range(draws)]
            label = int(train.labels[i])
        else:
            split, transform = train.split, train.loader.dataset.transform
            clean = FileEvalTransform(cfg, data.mean, data.std)(split.paths[i]) * std + mean
            augmented = [transform(split.paths[i], np.random.default_rng(derive_seed(seed, d, i))) * std + mean for d in range(draws)]
            label = int(split.labels[i])
        rows.append(torch.stack([clean, *augmented]).clamp(0, 1))
        names.append(data.classes[label])
    return torch.stack(rows), names


def save_augmentation_preview(cfg: DataConfig, out: str | Path, samples: int = 6, draws: int = 5, seed: int = 0) -> Path:
    """Draw `augmentation_views` as a PNG grid (first column: the evaluation view)."""
    from ..plots import plot_image_grid

    views, names = augmentation_views(cfg, samples, draws, seed)
    images, captions = [], []
    for row, name in zip(views, names):
        for k, v in enumerate(row):
            a = v.permute(1, 2, 0).numpy()
            images.append(a[:, :, 0] if a.shape[2] == 1 else a)
            captions.append(f"{name} (eval)" if k == 0 else f"draw {k}")
    grey = views.shape[2] == 1
    title = f"augment={cfg.augment}, {cfg.image_size}px" + (f", jitter {cfg.color_jitter:g}" if cfg.color_jitter else "") + (
        f", PCA lighting {cfg.pca_lighting:g}" if cfg.pca_lighting else ""
    )
    return plot_image_grid(images, out, captions, columns=1 + draws, title=title, cmap="gray" if grey else None)
