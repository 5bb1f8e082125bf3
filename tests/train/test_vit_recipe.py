"""The shipped vit_cifar recipe trains a ViT: AdamW, warm-up + cosine, Mixup/CutMix, label smoothing."""

from __future__ import annotations

import math

import torch

from reslab.train import fit, load_config

from .conftest import SyntheticData


def test_vit_cifar_recipe_holds_the_literatures_settings_and_trains(tmp_path):
    recipe = load_config("vit_cifar")
    assert (recipe.model.name, recipe.optim.name, recipe.optim.lr, recipe.optim.weight_decay) == ("vit_tiny_patch4_32", "adamw", 1e-3, 0.05)
    assert (recipe.schedule.name, recipe.schedule.warmup, recipe.train.label_smoothing) == ("cosine", 10, 0.1)
    assert (recipe.train.mixup_alpha, recipe.train.cutmix_alpha, recipe.data.random_erasing) == (0.8, 1.0, 0.25)
    assert recipe.optim.no_decay_norm_bias

    cfg = load_config("vit_cifar", [
        f'run.dir="{tmp_path}"', "run.progress=false", "run.tensorboard=false", "train.epochs=2", "train.batch_size=16",
        "schedule.warmup=1", "train.amp=off", "data.image_size=16",
        "model.options={image_size = 16, num_layers = 2, hidden_dim = 32, num_heads = 2, mlp_dim = 64}",
    ])
    history = fit(cfg, data=SyntheticData())
    assert len(history.rows) == 2 and all(math.isfinite(r["train_loss"]) for r in history.rows)
    model = history.model
    # AdamW moved the weights; the zero-initialised head learned something
    assert model.get_classifier().weight.abs().sum() > 0
    assert torch.isfinite(model(torch.randn(2, 3, 16, 16))).all()
