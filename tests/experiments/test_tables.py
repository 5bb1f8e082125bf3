"""cifar-depths and shortcuts summaries from synthetic runs: the paper's columns and parameter counts."""

from __future__ import annotations

import json

import pytest

from reslab.errors import ReslabError
from reslab.experiments.common import QUICK, ExperimentSetup, RunResult, mean_std, parse_seeds
from reslab.experiments.depths import PAPER_TABLE6, depth_changes, summarise_cifar_depths
from reslab.experiments.shortcuts import summarise_shortcuts


def _run(net, seed, test_error, tmp_path):
    rows = [{"epoch": 1, "train_top1": 50.0, "val_top1": 40.0}, {"epoch": 2, "train_top1": 95.0, "val_top1": 100 - test_error}]
    return RunResult(net, seed, tmp_path / net, rows, {})


def test_cifar_depths_table_beside_the_paper(tmp_path):
    nets = {"resnet20": 20, "resnet56": 56}
    results = [_run("resnet20", s, e, tmp_path) for s, e in ((0, 9.0), (1, 9.5))] + [_run("resnet56", s, e, tmp_path) for s, e in ((0, 7.0), (1, 7.4))]
    setup = ExperimentSetup(data="d", out=tmp_path, preset=QUICK, seeds=(0, 1))
    summary = summarise_cifar_depths(setup, results, nets)
    rows = {r["net"]: r for r in summary["rows"]}
    # the paper's parameter counts (Table 6) within rounding: 0.27M and 0.85M
    assert round(rows["resnet20"]["params"] / 1e6, 2) == PAPER_TABLE6[20][0]
    assert round(rows["resnet56"]["params"] / 1e6, 2) == PAPER_TABLE6[56][0]
    assert rows["resnet56"]["test_error_mean_std"][0] == pytest.approx(7.2)
    md = (tmp_path / "results.md").read_text()
    assert "| resnet20 | 0.27 | 0.27 | 9.25 ± 0.35 | 8.75 | 2 |" in md
    assert "quick preset" in md
    assert (tmp_path / "cifar_depths.png").stat().st_size > 5000
    assert json.loads((tmp_path / "results.json").read_text())["experiment"] == "cifar-depths"


def test_resnet110_warms_up_like_the_paper():
    assert depth_changes(110)["schedule"]["warmup_until_error"] == 80
    assert depth_changes(56) == {"model": {"name": "resnet56"}}


def test_shortcut_options_add_parameters_in_order(tmp_path):
    nets = {"resnet20-A": "A", "resnet20-B": "B", "resnet20-C": "C"}
    results = [_run(net, 0, 10.0 - i, tmp_path) for i, net in enumerate(nets)]
    summary = summarise_shortcuts(ExperimentSetup(data="d", out=tmp_path, seeds=(0,)), results, "resnet20", nets)
    params = [r["params"] for r in summary["rows"]]
    assert params[0] < params[1] < params[2]
    assert [r["paper_top1_error"] for r in summary["rows"]] == [25.03, 24.52, 24.19]
    assert "| C | resnet20 |" in (tmp_path / "results.md").read_text()


def test_mean_std_and_seed_parsing():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([4.0]) == (4.0, 0.0)
    assert parse_seeds("0, 1,2") == (0, 1, 2)
    with pytest.raises(ReslabError, match="0,1,2"):
        parse_seeds("0;1")


def test_config_differences_ignore_resolution_and_paths():
    from reslab.experiments.common import config_differences

    old = {"model": {"name": "resnet20", "num_classes": 10}, "data": {"path": "/a", "mean": [0.5]}, "train": {"epochs": 4.0}}
    new = {"model": {"name": "resnet20", "num_classes": 0}, "data": {"path": "/b", "mean": (0.5,)}, "train": {"epochs": 4.0}}
    assert config_differences(old, new) == []
    new["train"] = {"epochs": 5.0}
    new["model"]["name"] = "resnet56"
    assert config_differences(old, new) == ["model.name", "train.epochs"]
