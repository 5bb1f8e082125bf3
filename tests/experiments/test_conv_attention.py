"""Convolution vs attention: the compute match, the verdict's arithmetic, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from reslab.analysis.zoo import profile_by_name
from reslab.cli import main
from reslab.experiments.common import ExperimentSetup, Preset
from reslab.experiments.conv_attention import NETS, QUICK, VIT_OPTIONS, Budget, Point, _common, run_conv_vs_attention, verdict


def test_the_two_networks_cost_the_same_per_image():
    conv = profile_by_name("resnet20")
    attention = profile_by_name("vit_tiny_patch4_32", **VIT_OPTIONS)
    assert abs(attention.macs / conv.macs - 1) < 0.1  # same compute per image, attention's products included
    assert attention.global_from is not None and conv.global_from is None  # global after one block vs grown by layers
    # and both presets give every network of a size the same steps and batch
    for budget in (QUICK,):
        keys = dict(o.split("=", 1) for o in budget.preset.overrides)
        assert keys["train.steps"] == str(budget.steps) and keys["train.batch_size"] == "128"
    # the networks change their model and optimiser, never the data, the steps or the batch
    assert all("data" not in c and set(c.get("train", {})) <= {"grad_clip", "channels_last"} for c in NETS.values())


def point(net, n, test, train=(90.0,)):
    return Point(net, n, tuple(test), tuple(train))


def test_verdict_sees_the_gap_shrink_grow_or_stay_within_noise():
    shrinking = [point("resnet20", 50, [40]), point("vit", 50, [25]), point("resnet20", 5000, [80]), point("vit", 5000, [76])]
    text = " ".join(verdict(shrinking))
    assert "goes from +15.00 points at 50 images per class to +4.00 at 5,000" in text and "data-hungry" in text
    assert "one seed" in text
    growing = [point("resnet20", 50, [40]), point("vit", 50, [38]), point("resnet20", 500, [60]), point("vit", 500, [50])]
    assert "does not shrink" in " ".join(verdict(growing))
    vit_ahead = [point("resnet20", 50, [20]), point("vit", 50, [25]), point("resnet20", 500, [30]), point("vit", 500, [40])]
    assert "ahead already on the smallest subset" in " ".join(verdict(vit_ahead))
    turning = [point("resnet20", 50, [30]), point("vit", 50, [25]), point("resnet20", 500, [40]), point("vit", 500, [42])]
    assert "turns into a lead for the ViT" in " ".join(verdict(turning))
    noisy = [point("resnet20", 50, [40, 44]), point("vit", 50, [30, 34]),
             point("resnet20", 500, [60, 66]), point("vit", 500, [51, 55])]
    assert "within seed noise" in " ".join(verdict(noisy))
    assert "at one subset size" in verdict([point("resnet20", 50, [40])])[0]


@pytest.fixture(scope="module")
def colour_data_32(tmp_path_factory):
    """train/ and val/ of three colours, 32x32 (the ViT's input size)."""
    root = tmp_path_factory.mktemp("colours32")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        for c, name in enumerate(["red", "green", "blue"]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 80, (32, 32, 3)).astype(np.uint8)
                a[..., c] += 150
                Image.fromarray(a).save(folder / f"{i}.png")
    return root


@pytest.mark.slow
def test_tiny_experiment_end_to_end(colour_data_32, tmp_path):
    tiny = Budget(
        Preset("tiny", None, overrides=(*_common(steps=3, warmup=1), "data.workers=0", "data.eval_split=val",
                                        "train.batch_size=8", "train.amp=off", "run.progress=false", "run.tensorboard=false"),
               description="test scale"),
        per_class=(4, 8),
        steps=3,
    )
    setup = ExperimentSetup(data=str(colour_data_32), out=tmp_path / "cva", seeds=(0,), device="cpu")
    summary = run_conv_vs_attention(setup, tiny)
    results = json.loads((tmp_path / "cva" / "results.json").read_text())
    assert {r["net"] for r in results["runs"]} == {"resnet20-n4", "resnet20-n8", "vit-n4", "vit-n8"}
    configs = {r["net"]: r["config"] for r in results["runs"]}
    assert configs["vit-n8"]["data"]["limit_per_class"] == 8 and configs["vit-n8"]["optim"]["name"] == "adamw"
    assert configs["resnet20-n4"]["train"]["steps"] == configs["vit-n4"]["train"]["steps"] == 3
    assert len(summary["points"]) == 4 and summary["verdict"]
    assert summary["costs"]["vit"]["macs"] > 0 and "shortcut" in str(configs["resnet20-n4"]["model"]["options"])
    with Image.open(tmp_path / "cva" / "conv_vs_attention.png") as im:
        assert im.size[0] > 500 and np.asarray(im.convert("L"), dtype=float).std() > 10
    assert "Convolution vs attention" in (tmp_path / "cva" / "results.md").read_text()


def test_cli_refuses_impossible_subsets(tmp_path, capsys):
    with pytest.raises(SystemExit) as failed:
        main(["experiment", "conv-vs-attention", "--quick", "--data", str(tmp_path), "--per-class", "50,9000"])
    assert failed.value.code == 1
    assert "5,000 training images per class" in capsys.readouterr().err
