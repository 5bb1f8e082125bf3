"""2-D embedding maps: PCA finds the direction that separates classes; t-SNE keeps neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from reslab.report.embedding_map import embedding_map_2d, plot_embedding_map


def _two_clusters(n=20, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.1, (2 * n, d))
    x[n:, 3] += 5.0  # the classes differ along one axis only
    return x, np.array([0] * n + [1] * n)


def test_pca_first_axis_separates_the_clusters():
    x, labels = _two_clusters()
    points = embedding_map_2d(x, "pca")
    assert points.shape == (40, 2)
    first = points[:, 0]
    assert (first[labels == 0].max() < first[labels == 1].min()) or (first[labels == 1].max() < first[labels == 0].min())


def test_tsne_keeps_clusters_apart(tmp_path):
    x, labels = _two_clusters()
    points = embedding_map_2d(x, "tsne")
    centre0, centre1 = points[labels == 0].mean(0), points[labels == 1].mean(0)
    spread = max(np.linalg.norm(points[labels == k] - c, axis=1).mean() for k, c in ((0, centre0), (1, centre1)))
    assert np.linalg.norm(centre0 - centre1) > 2 * spread
    assert plot_embedding_map(points, labels, ["a", "b"], tmp_path / "m.png").stat().st_size > 5000


def test_bad_input():
    with pytest.raises(ValueError, match="umap"):
        embedding_map_2d(np.zeros((5, 3)), "umap")
    with pytest.raises(ValueError, match="at least 3"):
        embedding_map_2d(np.zeros((2, 3)), "pca")
