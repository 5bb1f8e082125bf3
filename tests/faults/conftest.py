"""Shared fixtures of the fault-injection suite: tiny photo folders and tiny training configs.

Everything here is small on purpose: the whole suite must fit the test budget on two cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reslab.train.config import load_config
from tests.train.conftest import one_thread  # noqa: F401 - autouse: one intra-op thread on a shared 2-core machine


def write_photo_folder(root: Path, classes=("ants", "bees"), per_class: int = 8, size=(20, 24),
                       splits=("train", "val"), seed: int = 0) -> Path:
    """An image folder of random PNGs: <root>/<split>/<class>/<i>.png."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    """2 classes x 8 training and 8 validation photos, 24x20 pixels (read-only: tests must not write here)."""
    return write_photo_folder(tmp_path_factory.mktemp("photos"))


def file_training_config(data_path: Path, run_dir: Path, *overrides: str):
    """resnet20 on 16-pixel crops decoded from files by a DataLoader (not in memory), batch 4."""
    return load_config(None, [
        f'run.dir="{run_dir}"', "run.progress=false", "run.tensorboard=false", "model.name=resnet20",
        f'data.path="{data_path}"', 'data.in_memory="no"', "data.workers=0", "data.image_size=16",
        "train.batch_size=4", "train.epochs=2", "optim.lr=0.05", *overrides,
    ])
