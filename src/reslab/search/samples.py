"""Photos that ship with scikit-image and scikit-learn, and transformed copies of them.

Used by the demo and `reslab bench embed` when no folder is given: real photographs with no
download, and copies whose originals are known (for near-duplicate and retrieval checks).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from ..fileio import atomic_write_bytes
from ..sample_photos import bundled_photos

def _crop(image: Image.Image, fraction: float = 0.08) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    return image.crop((dx, dy, w - dx, h - dy))


# name -> transform: the edits a photo collection typically holds copies under
TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "flipped": ImageOps.mirror,
    "resized": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.BICUBIC),
    "jpeg40": lambda im: im,  # the edit is the saving itself, at quality 40 (see SAVE_QUALITY)
    "cropped": _crop,
}

SAVE_QUALITY = {"jpeg40": 40}


def write_photo_collection(out: Path, copies: bool = True) -> tuple[Path, Path | None]:
    """Write originals to out/originals/<name>.jpg and transformed copies to out/copies/<name>__<edit>.jpg."""
    originals, copies_dir = out / "originals", (out / "copies" if copies else None)
    for name, image in bundled_photos().items():
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=92)
        atomic_write_bytes(originals / f"{name}.jpg", buf.getvalue())
        if copies_dir is not None:
            for edit, fn in TRANSFORMS.items():
                buf = io.BytesIO()
                fn(image).save(buf, "JPEG", quality=SAVE_QUALITY.get(edit, 90))
                atomic_write_bytes(copies_dir / f"{name}__{edit}.jpg", buf.getvalue())
    return originals, copies_dir
