"""`reslab embed`'s older runtime flags still work (hidden): --onnx is --runtime onnxruntime, --bf16 is --precision bf16."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.inference.conftest import run_cli


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    return photos


@pytest.fixture
def weights(tmp_path):
    import torch

    from reslab.models import create_model

    torch.manual_seed(0)
    path = tmp_path / "resnet20.pth"
    torch.save(create_model("resnet20").state_dict(), path)
    return path


@pytest.mark.parametrize(("flags", "ran_on"), [(["--onnx"], "onnxruntime fp32"), (["--bf16", "--runtime", "torch"], "torch bf16")])
def test_old_flags_choose_the_runtime_they_named(folder, weights, tmp_path, capsys, flags, ran_on):
    index = tmp_path / "index"
    args = ["embed", str(folder), "--out", str(index), "--model", "resnet20", "--weights", str(weights), "--workers", "0", "--json", *flags]
    assert run_cli(args) == 0, capsys.readouterr()
    assert json.loads((index / "manifest.json").read_text())["runtime"] == ran_on
