"""Small networks for the inference tests: a CIFAR ResNet-20 (random, seeded) and a trained-run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def resnet20_file(tmp_path_factory) -> Path:
    """A ResNet-20 state dict saved as a plain .pth (seeded random weights)."""
    from reslab.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet20.pth"
    torch.save(create_model("resnet20").state_dict(), path)
    return path


@pytest.fixture(scope="session")
def resnet20(resnet20_file):
    from reslab.inference import load

    return load("resnet20", str(resnet20_file))


def write_run(folder: Path, classes=("ant", "bee", "cicada"), seed: int = 2) -> Path:
    """A run folder holding what `reslab train` exports: model.safetensors with config, classes, preprocessing."""
    from reslab.models import create_model
    from reslab.preprocess import EvalPreprocess
    from reslab.train.runs import export_safetensors

    torch.manual_seed(seed)
    model = create_model("resnet20", num_classes=len(classes))
    config = {"model": {"name": "resnet20", "num_classes": len(classes), "options": {}}, "data": {"image_size": 32}}
    pre = EvalPreprocess(crop=32, resize=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    folder.mkdir(parents=True, exist_ok=True)
    export_safetensors(folder / "model.safetensors", model, config, list(classes), pre)
    return folder


@pytest.fixture
def run_folder(tmp_path) -> Path:
    return write_run(tmp_path / "run")


def run_cli(args: list[str]) -> int:
    """`reslab ARGS` in this process; its exit code (output stays in capsys)."""
    from reslab.cli import main

    try:
        main(args)
    except SystemExit as e:
        return e.code or 0
    return 0
