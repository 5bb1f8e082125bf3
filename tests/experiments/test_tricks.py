"""The training lessons end to end at a toy size of the quick preset: every run, figure, table and verdict."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from reslab.experiments.common import Preset
from reslab.experiments.tricks import LESSONS, QUICK_TRICKS, parse_lessons, run_tricks
from reslab.errors import ReslabError

from ..data.conftest import write_cifar10, write_mnist

TOY = ("data.limit_per_class=0", "data.image_size=8", "data.cifar_pad=1", "data.workers=0", "train.epochs=2",
       "run.progress=false", "run.tensorboard=false", "train.amp=off", "train.channels_last=false")  # fmt: skip


def toy_preset():
    q = QUICK_TRICKS
    cifar = Preset("toy", q.cifar.recipe, (*q.cifar.overrides, *TOY, "data.val_fraction=0.25", "train.batch_size=8"), "toy")
    fashion = Preset("toy", q.fashion.recipe, (*q.fashion.overrides, *TOY, "train.batch_size=8", "model.options={width = 32}"),
                     "toy")  # fmt: skip
    return dataclasses.replace(q, name="toy", cifar=cifar, fashion=fashion, patience=1, batch=8, large_batch=16, warmup_epochs=1)


@pytest.mark.slow
def test_every_lesson_at_toy_size(tmp_path):
    cifar = tmp_path / "cifar"
    write_cifar10(cifar, per_batch=8)  # 40 training, 8 test images
    fashion = tmp_path / "fashion"
    write_mnist(fashion, n_train=60, n_test=20)
    out = tmp_path / "tricks"
    summary = run_tricks(out, cifar=str(cifar), fashion=str(fashion), preset=toy_preset(), device="cpu")
    assert set(summary["lessons"]) == set(LESSONS)
    results = json.loads((out / "results.json").read_text())
    nets = {r["net"] for r in results["runs"]}
    assert nets == {"fmnist-plain", "fmnist-dropout", "fmnist-early-stop", "base", "no-augment", "smoothing", "sgd",
                    "adamw", "large-batch", "large-batch-warmup"}  # fmt: skip
    configs = {r["net"]: r["config"] for r in results["runs"]}
    assert configs["large-batch"]["train"]["batch_size"] == 16 and configs["large-batch"]["optim"]["lr"] == pytest.approx(0.2)
    assert configs["large-batch-warmup"]["schedule"]["warmup"] == 1
    assert configs["fmnist-dropout"]["model"]["options"]["dropout"] == 0.5
    assert configs["fmnist-early-stop"]["train"]["early_stop_patience"] == 1
    markdown = (out / "results.md").read_text()
    for lesson, body in summary["lessons"].items():
        assert body["verdict"] and all(isinstance(s, str) and len(s) > 40 for s in body["verdict"])
        with Image.open(body["figure"]) as im:
            pixels = np.asarray(im.convert("L"), dtype=float)
        assert pixels.shape[1] > 400 and pixels.std() > 10, lesson
        assert f"]({lesson}.png)" in markdown
    assert "| label smoothing | test error (%) | ECE (%)" in markdown
    ls = summary["lessons"]["label_smoothing"]["numbers"]
    assert 0 <= ls["0"]["ece"][0] <= 100 and ls["0"]["accuracy"][0] == pytest.approx(100 - ls["0"]["test_error"][0])
    es = summary["lessons"]["early_stopping"]["numbers"]
    assert 1 <= es["best_epoch"] <= es["stop_epoch"] <= 2


def test_lesson_names():
    assert parse_lessons("dropout, early-stopping") == ("dropout", "early_stopping")
    with pytest.raises(ReslabError, match="choose from"):
        parse_lessons("dropout,batchnorm")
