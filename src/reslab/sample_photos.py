"""Photos that ship with scikit-image and scikit-learn: real pictures with no download.

Used by the search demo, `reslab bench embed` and the runtime calibration of `reslab.inference`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo"]


def bundled_photos() -> dict[str, Image.Image]:
    """The colour photos bundled with scikit-image and scikit-learn (no download), as RGB images."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {}
    for name in SKIMAGE_PHOTOS:
        try:
            a = getattr(skimage.data, name)()
        except Exception:  # a future scikit-image may move a photo behind its optional downloader
            continue
        photos[name] = Image.fromarray(np.asarray(a)).convert("RGB")
    sk = load_sample_images()
    for filename, a in zip(sk.filenames, sk.images):
        photos[Path(filename).stem] = Image.fromarray(a).convert("RGB")
    return photos
