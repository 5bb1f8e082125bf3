"""scikit-learn's handwritten digits as an image folder: a dataset that needs no download."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits_folder(out: str | Path, size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> Path:
    """Write the 1,797 8x8 digits (16 grey levels) upscaled to size x size as PNGs:
    `out/train/<digit>/<index>.png` and `out/val/<digit>/...` (a seeded, class-stratified split).

    The folder is built beside `out` and moved into place, so an interrupted run leaves no half
    dataset; an existing `out/train` is kept as it is (the content is deterministic). Returns `out`.
    """
    from sklearn.datasets import load_digits

    from .formats import stratified_holdout

    out = Path(out)
    if (out / "train").is_dir() and (out / "val").is_dir():
        return out
    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    labels = digits.target.astype(np.int64)
    train_index, val_index = stratified_holdout(labels, val_fraction, seed)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-", dir=out))
    try:
        for split, index in (("train", train_index), ("val", val_index)):
            for i in index:
                path = tmp / split / str(labels[i]) / f"{i:04d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                # bicubic upscaling keeps the strokes smooth, as a scanned digit would be
                Image.fromarray(images[i], "L").resize((size, size), Image.BICUBIC).save(path)
        for split in ("train", "val"):
            if not (out / split).exists():
                (tmp / split).replace(out / split)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
