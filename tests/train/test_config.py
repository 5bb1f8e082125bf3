"""Recipes, --set overrides and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from reslab.errors import ReslabError
from reslab.train.config import config_to_toml, list_recipes, load_config, recipes_dir

REPO = Path(__file__).resolve().parents[2]


def test_shipped_recipes_live_in_the_package_and_load():
    # one source of truth: src/reslab/recipes (packaged); no second copy at the repository's top
    assert not (REPO / "recipes").exists()
    names = list_recipes()
    assert {"cifar_resnet_paper", "imagenet_resnet_paper", "cifar_quick", "finetune"} <= set(names)
    for name in names:
        assert load_config(name) == load_config(recipes_dir() / f"{name}.toml"), name


def test_paper_recipes_hold_the_paper_numbers():
    cifar = load_config("cifar_resnet_paper")
    assert (cifar.model.name, cifar.train.batch_size, cifar.optim.lr, cifar.optim.weight_decay) == ("resnet20", 128, 0.1, 1e-4)
    assert cifar.schedule.milestones == (32000, 48000) and cifar.schedule.unit == "step" and cifar.train.steps == 64000
    assert cifar.data.val_fraction == 0.1 and cifar.data.augment == "cifar_paper"
    imagenet = load_config("imagenet_resnet_paper")
    assert imagenet.schedule.name == "plateau" and imagenet.train.steps == 600_000 and imagenet.train.batch_size == 256
    assert imagenet.train.eval_tta == "ten_crop" and imagenet.model.dropout == 0.0


def test_overrides_with_dotted_keys_and_types():
    cfg = load_config("cifar_resnet_paper", ["optim.lr=0.05", "model.name=resnet56", "schedule.milestones=[10, 20]",
                                             "model.options.shortcut=B", "train.amp=bf16", "data.path=/tmp/x y"])
    assert cfg.optim.lr == 0.05 and cfg.model.name == "resnet56" and cfg.schedule.milestones == (10, 20)
    assert cfg.model.options == {"shortcut": "B"} and cfg.train.amp == "bf16" and cfg.data.path == "/tmp/x y"


def test_unknown_key_names_close_matches():
    with pytest.raises(ReslabError, match=r"unknown config key 'optim\.lrr'.*optim\.lr"):
        load_config(None, ["optim.lrr=0.1"])
    with pytest.raises(ReslabError, match="unknown config section 'optm'.*optim"):
        load_config(None, ["optm.lr=0.1"])
    with pytest.raises(ReslabError, match="train.epochs"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ReslabError, match="unknown"):
        load_config(None, ["data.pth=/x"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config("cifar_quick", ["data.path=/data/c10", "model.options.shortcut=B"])
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path) == cfg


def test_command_line_length_replaces_the_recipes_with_a_notice(caplog):
    # issue 12, defect 5: --set train.epochs=5 on a recipe with train.steps was silently ignored
    with caplog.at_level("WARNING"):
        cfg = load_config("imagenet_resnet_paper", ["train.epochs=5"])
    assert (cfg.train.epochs, cfg.train.steps) == (5.0, 0)
    assert "train.epochs=5 from the command line replaces train.steps=600000 from the recipe" in caplog.text
    cfg = load_config("cifar_quick", ["train.steps=100"])  # and the other way round
    assert (cfg.train.epochs, cfg.train.steps) == (0.0, 100)


def test_two_training_lengths_from_one_place_are_an_error(tmp_path):
    both = "train\\.epochs \\(5\\) and train\\.steps \\(100\\) both set the training length; keep one"
    with pytest.raises(ReslabError, match=both):
        load_config(None, ["train.epochs=5", "train.steps=100"])
    recipe = tmp_path / "both.toml"
    recipe.write_text("[train]\nepochs = 5\nsteps = 100\n")
    with pytest.raises(ReslabError, match=both):
        load_config(recipe)
    from reslab.train.config import replace

    with pytest.raises(ReslabError, match=both):
        replace(load_config(None, ["train.steps=100"]), train={"epochs": 5})


@pytest.mark.parametrize(
    "override, words",
    [("optim.name=adam", "optim.name is 'adam'; choose one of sgd, adamw"),
     ("schedule.name=step", "schedule.name is 'step'"), ("schedule.unit=iter", "schedule.unit"),
     ("train.amp=fp8", "train.amp is 'fp8'"), ("train.eval_tta=five_crop", "train.eval_tta"),
     ("train.batch_size=-1", "train.batch_size"), ("train.bn=maybe", "train.bn"),
     ("train.class_balance=on", "train.class_balance")],
)  # fmt: skip
def test_choices_are_checked_when_the_config_loads(override, words):
    # before any data is read: load_config alone raises
    with pytest.raises(ReslabError, match=words.replace(".", r"\.").replace("(", r"\(")):
        load_config("cifar_quick", [override])


def test_apply_overrides_after_replace():
    from reslab.train.config import apply_overrides, replace

    cfg = replace(load_config("cifar_quick"), model={"name": "resnet56"}, train={"seed": 3})
    cfg = apply_overrides(cfg, ["train.seed=4", "model.options.shortcut=B"])
    assert (cfg.model.name, cfg.train.seed, cfg.model.options) == ("resnet56", 4, {"shortcut": "B"})
    assert apply_overrides(cfg, []) is cfg
    with pytest.raises(ReslabError, match="optim.name"):
        apply_overrides(cfg, ["optim.name=lion"])


def test_tuple_keys_take_numbers_of_their_kind():
    # found by the faults suite's fuzzing: a string in a probability tuple reached a comparison (TypeError)
    with pytest.raises(ReslabError, match="data.solarize_p"):
        load_config(None, ['data.solarize_p="x"'])
    with pytest.raises(ReslabError, match="data.rrc_scale' takes 2 values"):
        load_config(None, ["data.rrc_scale=[0.1, 0.5, 0.9]"])
    assert load_config(None, ["data.solarize_p=[0, 0.2]", "data.views=2"]).data.solarize_p == (0.0, 0.2)
