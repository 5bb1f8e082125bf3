"""A tiny real run (three colour classes, 16x16 images), trained once for the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ["blue", "green", "red"]


def write_colour_folder(root: Path, per_class: int = 24, size: int = 16, seed: int = 0) -> Path:
    """train/<colour>/*.png and val/<colour>/*.png: noise with one channel raised."""
    rng = np.random.default_rng(seed)
    channel = {"red": 0, "green": 1, "blue": 2}
    for split, n in (("train", per_class), ("val", per_class // 2)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
                a[..., channel[name]] += 150
                Image.fromarray(a).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    return write_colour_folder(tmp_path_factory.mktemp("colours"))


@pytest.fixture(scope="session")
def tiny_run(colour_data, tmp_path_factory) -> Path:
    from reslab.train import fit, load_config

    runs = tmp_path_factory.mktemp("runs")
    config = load_config(None, [
        f'data.path="{colour_data}"', "data.image_size=16", "data.workers=0", "model.name=resnet20",
        "train.epochs=2", "train.batch_size=16", "train.device=cpu", "optim.lr=0.05",
        f'run.dir="{runs}"', "run.name=tiny", "run.progress=false", "run.tensorboard=false",
    ])
    return Path(fit(config).run_dir)
