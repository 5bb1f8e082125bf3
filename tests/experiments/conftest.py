"""Tiny image data for end-to-end experiment runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    """train/<colour>/*.png and val/<colour>/*.png, 16x16: noise with one channel raised."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("val", 8)):
        for c, name in enumerate(["red", "green", "blue"]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 80, (16, 16, 3)).astype(np.uint8)
                a[..., c] += 150
                Image.fromarray(a).save(folder / f"{i}.png")
    return root
