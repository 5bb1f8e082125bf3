"""cifar-depths presets: every preset makes a valid config for every depth; --preset from the CLI, at toy size."""

from __future__ import annotations

import json

import pytest

from reslab.cli import main
from reslab.experiments.common import PRESETS
from reslab.experiments.depths import DEFAULT_DEPTHS, depth_changes
from reslab.train.config import load_config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config_for_every_depth(name):
    preset = PRESETS[name]
    for depth in DEFAULT_DEPTHS:
        changes = depth_changes(depth)
        overrides = [*preset.overrides, *(f"{section}.{key}={value!r}".replace("'", '"')
                                          for section, keys in changes.items() for key, value in keys.items())]
        cfg = load_config(preset.recipe, overrides)
        assert cfg.model.name == f"resnet{depth}"
        assert cfg.train.epochs > 0 or cfg.train.steps > 0


def test_the_cheap_presets_are_cheaper_than_the_full_one():
    def work(preset):  # training images seen by one network, in units of 32x32 images
        cfg = load_config(preset.recipe, list(preset.overrides))
        per_class = cfg.data.limit_per_class or 5000
        images = 10 * per_class * cfg.train.epochs if cfg.train.steps == 0 else cfg.train.steps * cfg.train.batch_size
        return images * (cfg.data.image_size / 32) ** 2

    full, gpu10, cpu, quick = (work(PRESETS[n]) for n in ("full", "gpu10", "cpu", "quick"))
    assert quick < cpu < gpu10 < full / 5  # gpu10: the five depths see fewer images than one network of the full recipe


def test_cli_runs_the_cpu_preset_at_toy_size(colour_data, tmp_path):
    out = tmp_path / "depths"
    with pytest.raises(SystemExit) as finished:
        main(["experiment", "cifar-depths", "--data", str(colour_data), "--out", str(out), "--preset", "cpu",
              "--depths", "20", "--device", "cpu", "--set", "data.eval_split=val", "--set", "train.epochs=1",
              "--set", "train.batch_size=16", "--set", "data.workers=0", "--set", "run.progress=false"])
    assert finished.value.code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["preset"]["name"] == "cpu" and "data.limit_per_class=2500" in results["preset"]["overrides"]
    assert [r["net"] for r in results["runs"]] == ["resnet20"]
    assert "cpu preset" in (out / "results.md").read_text()


@pytest.mark.parametrize("args, message", [(["--preset", "tiny"], "'tiny' is not one of"),
                                           (["--quick", "--preset", "cpu"], "disagree")])
def test_cli_refuses_unknown_or_conflicting_presets(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as failed:
        main(["experiment", "cifar-depths", "--data", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert failed.value.code != 0
    assert message in capsys.readouterr().err
