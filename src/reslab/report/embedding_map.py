"""2-D maps of embeddings (PCA, or t-SNE through scikit-learn), coloured by class."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

METHODS = ("pca", "tsne")


def embedding_map_2d(embeddings: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project (N, D) embeddings to (N, 2). PCA is linear and instant; t-SNE keeps neighbourhoods."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need at least 3 embeddings of shape (N, D), got {x.shape}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        # perplexity must stay below the number of points
        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)
    raise ValueError(f"unknown projection '{method}'; choose one of {METHODS}")


def plot_embedding_map(
    points: np.ndarray, labels: Sequence[int], classes: Sequence[str], path, title: str | None = None
) -> Path:
    from ..plots import pyplot, save_figure

    plt = pyplot()
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, name in enumerate(classes):
        mask = labels == k
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=8, alpha=0.75, color=cmap(k % cmap.N), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best", framealpha=0.8)
    ax.set_title(title or "validation embeddings")
    fig.tight_layout()
    return save_figure(fig, path)
