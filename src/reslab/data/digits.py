"""scikit-learn's handwritten digits as an image folder: a dataset that needs no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..fileio import atomic_open


def write_digits_folder(out: str | Path, size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> Path:
    """Write the 1,797 8x8 digits (16 grey levels) upscaled to size x size as PNGs:
    `out/train/<digit>/<index>.png` and `out/val/<digit>/...` (a seeded, class-stratified split).

    Files that already exist are kept (the folder is deterministic), so a second call is cheap.
    Returns `out`.
    """
    from sklearn.datasets import load_digits

    from .formats import stratified_holdout

    out = Path(out)
    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    labels = digits.target.astype(np.int64)
    train_index, val_index = stratified_holdout(labels, val_fraction, seed)
    for split, index in (("train", train_index), ("val", val_index)):
        for i in index:
            path = out / split / str(labels[i]) / f"{i:04d}.png"
            if path.exists():
                continue
            # bicubic upscaling keeps strokes smooth, as a scanned digit would be
            img = Image.fromarray(images[i], "L").resize((size, size), Image.BICUBIC)
            with atomic_open(path, "wb") as f:
                img.save(f, format="PNG")
    return out
