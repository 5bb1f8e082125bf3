"""A quick experiment end to end at tiny scale: real training, plots, results.json."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from reslab.errors import ReslabError
from reslab.experiments.common import ExperimentSetup, Preset
from reslab.experiments.degradation import run_degradation
from reslab.experiments.layer_responses import run_layer_responses

TINY = Preset(
    name="tiny",
    recipe=None,
    overrides=("data.image_size=16", "data.workers=0", "train.epochs=2", "train.batch_size=16",
               "run.progress=false", "run.tensorboard=false"),
    description="test scale",
)


def _png_with_content(path):
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.shape[1] > 500 and pixels.std() > 10


@pytest.mark.slow
def test_degradation_then_layer_responses(colour_data, tmp_path):
    setup = ExperimentSetup(data=str(colour_data), out=tmp_path / "deg", preset=TINY, seeds=(0,), device="cpu")
    summary = run_degradation(setup, depths=(20, 32))
    results = json.loads((tmp_path / "deg" / "results.json").read_text())
    assert {r["net"] for r in results["runs"]} == {"plain20", "plain32", "resnet20", "resnet32"}
    assert all(len(json.loads((tmp_path / "deg" / "runs" / f"{r['net']}-s0" / "metrics.jsonl").read_text().splitlines()[-1])) for r in results["runs"])
    assert results["runs"][0]["config"]["train"]["epochs"] == 2 and results["seeds"] == [0]
    assert summary["verdict"] and "(one seed" in " ".join(summary["verdict"])
    _png_with_content(tmp_path / "deg" / "degradation.png")

    # run again: the finished runs are reused, a changed config is refused, nothing is overwritten
    stamp = (tmp_path / "deg" / "runs" / "plain20-s0" / "model.safetensors").stat().st_mtime_ns
    assert run_degradation(setup, depths=(20, 32))["verdict"] == summary["verdict"]
    assert (tmp_path / "deg" / "runs" / "plain20-s0" / "model.safetensors").stat().st_mtime_ns == stamp
    changed = dataclasses.replace(setup, extra=("optim.lr=0.05",))
    with pytest.raises(ReslabError, match="optim.lr"):
        run_degradation(changed, depths=(20, 32))

    # Figure 7 on the runs just trained: reused (no training), every 3x3 layer measured
    runs = [tmp_path / "deg" / "runs" / f"{n}-s0" for n in ("plain20", "resnet20")]
    layer_setup = ExperimentSetup(data="", out=tmp_path / "f7", preset=TINY, seeds=(0,), device="cpu")
    f7 = run_layer_responses(layer_setup, runs=runs, max_images=24)
    assert [len(v) for v in f7["responses"].values()] == [19, 19]  # 6n+1 3x3 convs for n=3
    assert all(r["std"] > 0 for v in f7["responses"].values() for r in v)
    _png_with_content(tmp_path / "f7" / "layer_responses.png")
    # nothing was trained, so no preset or seed of this call is claimed for the figure
    assert json.loads((tmp_path / "f7" / "results.json").read_text())["preset"] is None
    footer = (tmp_path / "f7" / "results.md").read_text()
    assert "Measured on the given runs" in footer and "Preset `" not in footer
