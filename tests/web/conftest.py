"""A small real index (12 photos, colour-histogram features) shared by the web tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageOps
from skimage import data

SUBJECTS = ["astronaut", "coffee", "chelsea", "rocket"]


def write_photos(root: Path) -> None:
    """Three files per subject (original JPEG, mirrored JPEG, 3/4 crop PNG) in a folder per label."""
    for name in SUBJECTS:
        im = Image.fromarray(getattr(data, name)()).convert("RGB")
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{name}.jpg", quality=90)
        ImageOps.mirror(im).save(folder / f"{name}_mirror.jpg", quality=90)
        im.crop((0, 0, im.width * 3 // 4, im.height * 3 // 4)).save(folder / f"{name}_crop.png")


@pytest.fixture(scope="session")
def hist_index(tmp_path_factory) -> Path:
    from reslab.search.embed import EmbedOptions, build_index
    from reslab.embeddings import make_embedder

    base = tmp_path_factory.mktemp("web-index")
    write_photos(base / "photos")
    build_index(base / "photos", base / "index", make_embedder("hist"), EmbedOptions(workers=0, progress=False))
    return base / "index"


@pytest.fixture(scope="session")
def cnn_index(tmp_path_factory) -> Path:
    """The same photos embedded with EfficientNet-Lite0 ImageNet weights: it can also classify."""
    from reslab.search.embed import EmbedOptions, build_index
    from reslab.embeddings import make_embedder

    base = tmp_path_factory.mktemp("web-cnn-index")
    write_photos(base / "photos")
    build_index(base / "photos", base / "index", make_embedder("cnn"), EmbedOptions(workers=0, progress=False))
    return base / "index"
