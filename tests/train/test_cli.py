"""`reslab train` and `reslab eval` end to end on a small image folder (the real data pipeline)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from reslab.cli import main


def write_folder(root, classes=("circle", "square", "cross"), per_class=(16, 6), size=16, seed=0):
    """Class-dependent shapes with noise, as PNG files: train/<class>/*.png and val/<class>/*.png."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = {
        "circle": (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2,
        "square": (abs(yy - size / 2) < size / 3) & (abs(xx - size / 2) < size / 3),
        "cross": (abs(yy - size / 2) < 2) | (abs(xx - size / 2) < 2),
    }
    for split, n in zip(("train", "val"), per_class):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (size, size, 3)) + 180 * masks[c][..., None]
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / split / c / f"{i}.png")
    return root


def test_train_then_eval_writes_run_and_confusion(tmp_path, capsys):
    data = write_folder(tmp_path / "shapes")
    runs = tmp_path / "runs"
    args = ["train", "cifar_quick", "--data", str(data), "--name", "shapes", "--set", f'run.dir="{runs}"',
            "--set", "train.epochs=3", "--set", "train.batch_size=16", "--set", "data.image_size=16",
            "--set", "data.eval_split=val", "--set", "run.progress=false", "--set", "data.workers=0",
            "--set", "data.cache_decoded=false", "--set", "train.amp=off", "--set", "optim.lr=0.2"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0, capsys.readouterr().err
    run = runs / "shapes"
    for name in ("config.toml", "metrics.jsonl", "metrics.csv", "meta.json", "model.safetensors",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())

    with pytest.raises(SystemExit) as done:
        main(["eval-classifier", str(run), "--batch-size", "8"])
    assert done.value.code == 0, capsys.readouterr().err
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    rows = list(csv.reader((run / "eval" / "confusion.csv").open()))
    assert rows[0] == ["true\\predicted", "circle", "cross", "square"]
    confusion = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert confusion.sum() == metrics["count"] == 18 and confusion.sum(axis=1).tolist() == [6, 6, 6]
    assert metrics["top1"] == pytest.approx(100.0 * np.trace(confusion) / 18)
    # the last epoch's validation accuracy, measured during training on the same split and weights
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["top1"] == pytest.approx(last["val_top1"])
    assert (run / "eval" / "confusion.png").stat().st_size > 2000
    assert len((run / "eval" / "per_class.csv").read_text().splitlines()) == 4

    # continue the finished run for one more epoch: the recipe is the run's own config.toml
    with pytest.raises(SystemExit) as done:
        main(["train", "--resume", str(run), "--set", "train.epochs=4"])
    assert done.value.code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]

    # a new run under an existing name is refused; nothing is overwritten
    with pytest.raises(SystemExit) as failed:
        main(args)
    assert failed.value.code == 1 and "already exists" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as failed:
        main(["train", "cifar_quick", "--data", str(tmp_path), "--set", "optim.lrr=1"])
    assert failed.value.code == 1
    err = capsys.readouterr().err
    assert "optim.lr" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as failed:
        main(["eval-classifier", str(tmp_path / "nope")])
    assert failed.value.code == 1 and "does not exist" in capsys.readouterr().err
