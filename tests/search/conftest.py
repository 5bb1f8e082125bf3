"""Helpers for the search tests: a tiny deterministic embedder and small photo folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


class ThumbEmbedder:
    """A 6x6 colour thumbnail as the embedding: instant, deterministic, and sensitive to content.

    Stands in for a CNN where a test checks the pipeline's bookkeeping, not embedding quality.
    `embedded` counts the images that reached `embed` (in the main process).
    """

    method = "thumb"
    needs_fit = False
    dim = 6 * 6 * 3

    def __init__(self):
        self.embedded = 0

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.convert("RGB").resize((6, 6), Image.BILINEAR), dtype=np.float32).reshape(-1)

    def embed(self, batch: list) -> np.ndarray:
        self.embedded += len(batch)
        x = np.stack(batch) - 127.5
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def fit(self, samples) -> None:
        return None

    def manifest(self) -> dict:
        return {"method": "thumb", "model": None, "weights_sha256": None, "layer": None, "params": {"size": 6}, "dim": self.dim}

    @classmethod
    def from_manifest(cls, manifest, index_dir):
        return cls()


@pytest.fixture
def thumb():
    return ThumbEmbedder()


def copy_photos(root: Path, dest: Path, per_class: int, split: str = "train") -> Path:
    for cls in ("ants", "bees"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for p in sorted((root / split / cls).glob("*.jpg"))[:per_class]:
            shutil.copy(p, dest / cls / p.name)
    return dest


@pytest.fixture
def photo_copier():
    """copy_photos(root, dest, per_class, split) for tests that need another selection."""
    return copy_photos


@pytest.fixture
def photos(hymenoptera_root, tmp_path) -> Path:
    """20 ants + 20 bees photos in a fresh folder the test may edit."""
    return copy_photos(hymenoptera_root, tmp_path / "photos", 20)


@pytest.fixture(scope="session")
def lite0():
    """The EfficientNet-Lite0 ImageNet embedder, loaded once for the session."""
    from reslab.embeddings import make_embedder

    return make_embedder("cnn", model="efficientnet_lite0", weights="imagenet", device="cpu")
