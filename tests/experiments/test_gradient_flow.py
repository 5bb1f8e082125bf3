"""Gradient flow at a toy size of the quick preset: recorded norms, figure, table, verdict; and the recorder itself."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from reslab.experiments.common import ExperimentSetup, Preset
from reslab.experiments.gradient_flow import QUICK_FLOW, GradientRecordingTask, recorded_steps, run_gradient_flow
from reslab.train import fit, load_config

from ..train.conftest import SyntheticData

TOY = Preset("toy", QUICK_FLOW.recipe, (*QUICK_FLOW.overrides, "data.limit_per_class=0", "data.image_size=8",
                                        "data.cifar_pad=1", "data.val_fraction=0.25", "train.batch_size=8",
                                        "train.epochs=2", "data.workers=0", "run.progress=false",
                                        "run.tensorboard=false"), "toy")  # fmt: skip


def test_recorded_norms_are_the_gradients_norms(tmp_path):
    """The hooks' norms equal the norms of .grad after one backward (no accumulation, no optimizer yet)."""
    cfg = load_config(None, [f'run.dir="{tmp_path}"', "run.progress=false", "run.tensorboard=false", "model.name=resnet20",
                             "train.batch_size=16", "train.steps=1", "data.image_size=16", "optim.lr=0"])  # fmt: skip
    task = GradientRecordingTask(cfg, record=[0])
    captured = {}
    original = torch.optim.SGD.step

    def spy(self, *a, **k):  # the gradients the optimizer is about to use
        captured.update({id(p): p.grad.norm().item() for group in self.param_groups for p in group["params"] if p.grad is not None})
        return original(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        history = fit(cfg, data=SyntheticData(), task=task)
    finally:
        torch.optim.SGD.step = original
    (row,) = task.rows
    assert row["step"] == 0 and len(row["norms"]) == len(task.layers) == 20  # 19 convs and the fc of resnet20
    for (_name, weight), norm in zip(task.layers, row["norms"]):
        assert norm == pytest.approx(captured[id(weight)], rel=1e-5)
    assert history.model is not None


def test_recorded_steps():
    assert recorded_steps(10, 30) == {0, 1, 3, 9, 10, 19, 29}  # early steps, and the last of each epoch


@pytest.mark.slow
def test_gradient_flow_at_toy_size(colour_data, tmp_path):
    setup = ExperimentSetup(data=str(colour_data), out=tmp_path / "flow", preset=TOY, seeds=(0,), device="cpu")
    summary = run_gradient_flow(setup, depth=20)
    assert len(summary["verdict"]) == 2 and "plain20" in summary["verdict"][0]
    numbers = summary["numbers"]
    assert set(numbers) == {"plain20", "resnet20"} and "0" in numbers["plain20"]
    assert len(numbers["resnet20"]["0"]["conv_norms"]) == 19
    lines = (tmp_path / "flow" / "runs" / "resnet20-s0" / "gradient_norms.jsonl").read_text().splitlines()
    # 36 training images, batch 8: 4 steps an epoch; steps 0, 1, 3 (also the end of epoch 1) and 7
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 3, 7]
    with Image.open(tmp_path / "flow" / "gradient_flow.png") as im:
        assert np.asarray(im.convert("L"), dtype=float).std() > 10
    assert "| plain20 | at initialisation" in (tmp_path / "flow" / "results.md").read_text()
    # run again: the finished runs and their recorded norms are reused
    assert run_gradient_flow(setup, depth=20)["verdict"] == summary["verdict"]
