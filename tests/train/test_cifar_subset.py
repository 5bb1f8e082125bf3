"""A short real training on a CIFAR-10 subset beats chance by a wide margin."""

from __future__ import annotations

import pytest

from reslab.train import fit, load_config


@pytest.mark.data
def test_resnet20_learns_cifar10_subset(cifar10_root, tmp_path):
    cfg = load_config("cifar_quick", [
        f'data.path="{cifar10_root}"', "data.limit_per_class=200", "data.val_fraction=0.02",
        "data.eval_split=holdout", "data.cache_decoded=false", f'run.dir="{tmp_path}"', "run.progress=false",
        "train.epochs=4", "train.batch_size=64", "train.ema_decay=0",
    ])
    history = fit(cfg)
    last = history.rows[-1]
    # 2,000 training images, 4 epochs, 1,000 held-out images of the training set; chance is 10%
    assert last["val_top1"] > 30.0, history.rows
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]
