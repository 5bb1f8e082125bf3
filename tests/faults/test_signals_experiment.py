"""Signals and `reslab experiment`: kill -9 of the group during the second network's first epoch
(before any checkpoint of it), then SIGTERM to the group during the same network's training (status
143 and a checkpoint); each rerun of the same command reuses the finished network, trains the killed
one again from the start or resumes the stopped one, and the last rerun reaches the weights an
uninterrupted run does and writes the results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from reslab.train import fit, load_config
from reslab.train.checkpoint import load_checkpoint

from .cli_runs import run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(__import__("sys").platform != "linux", reason="Linux process groups")]

# 2 classes x 16 photos, a quarter held out: 24 training photos, batch 8, 2 epochs = 6 steps a network
SETTINGS = ["data.image_size=16", "data.cifar_pad=2", "data.val_fraction=0.25", "data.in_memory=no", "data.workers=1",
            "train.batch_size=8", "train.epochs=2", "schedule.milestones=[1]", "run.progress=false"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green"]):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(16):
            a = rng.integers(0, 80, (16, 16, 3)).astype(np.uint8)
            a[..., c] += 150
            Image.fromarray(a).save(folder / f"{i}.png")
    return root


def test_a_stopped_experiment_resumes_where_it_stopped(colours, tmp_path):
    out_dir = tmp_path / "degradation"
    sets = [a for s in SETTINGS for a in ("--set", s)]
    args = ["experiment", "degradation", "--quick", "--data", str(colours), "--out", str(out_dir), "--depths", "20",
            "--device", "cpu", *sets]
    first_net, second_net = out_dir / "runs" / "plain20-s0", out_dir / "runs" / "resnet20-s0"

    # kill -9 of the whole group in the second network's second step: no checkpoint of it yet
    killed = run(args, tmp_path / "p0", pause=("step", 6 + 2), send="SIGKILL-group")
    assert killed.returncode == -9 and killed.left_behind == [], killed.output[-3000:]
    assert json.loads((first_net / "meta.json").read_text())["status"] == "finished"
    assert second_net.is_dir() and not (second_net / "checkpoints" / "last.pt").exists()
    finished_at = (first_net / "model.safetensors").stat().st_mtime_ns

    # the rerun reuses the first network and trains the second again from the start: SIGTERM to
    # the group in its second step stops it with a checkpoint
    stopped = run(args, tmp_path / "p1", pause=("step", 2), send="SIGTERM-group")
    assert stopped.returncode == 143 and stopped.left_behind == [], stopped.output[-3000:]
    assert "stopped before its first checkpoint: training it again" in " ".join(stopped.output.split())  # log lines wrap
    meta = json.loads((second_net / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["signal"] == "SIGTERM" and meta["checkpoint_step"] == 2
    assert not (out_dir / "results.json").exists()

    again = run(args, tmp_path / "p2")
    assert again.returncode == 0, again.output[-3000:]
    assert "reusing the finished run" in again.output and "resuming the stopped run" in again.output
    assert (first_net / "model.safetensors").stat().st_mtime_ns == finished_at  # not retrained
    assert {r["net"] for r in json.loads((out_dir / "results.json").read_text())["runs"]} == {"plain20", "resnet20"}

    # the resumed network ends where one uninterrupted run of its config does
    torch.set_num_threads(1)
    config = load_config(second_net / "config.toml", [f'run.dir="{tmp_path / "reference"}"', "run.name=ref"])
    reference = fit(config)
    a, b = load_checkpoint(reference.run_dir)["model"], load_checkpoint(second_net)["model"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
