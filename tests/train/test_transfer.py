"""Fine-tuning helpers: what the data decides, class weights, discriminative rates, frozen stages and
BatchNorm, the linear probe, and the `finetune` recipe end to end on a tiny folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reslab.models import create_model
from reslab.train import fit, load_config
from reslab.train.config import OptimConfig
from reslab.train.losses import classification_loss
from reslab.train.optim import build_optimizer, set_lr
from reslab.train.runs import load_run_model
from reslab.train.transfer import (
    auto_batch_size, auto_epochs, class_weights, fit_linear_head, freeze_bn, freeze_stages,
)  # fmt: skip


def test_auto_batch_size_never_exceeds_the_data():
    assert auto_batch_size(200, 32) == 32
    assert auto_batch_size(100, 32) == 16  # a quarter of 100 is 25 -> 16
    assert auto_batch_size(40, 32) == 8
    assert auto_batch_size(3, 32) == 1


def test_auto_epochs_aims_at_a_number_of_images_within_bounds():
    assert auto_epochs(200, 1600, 4, 30) == 8
    assert auto_epochs(10, 1600, 4, 30) == 30
    assert auto_epochs(100_000, 1600, 4, 30) == 4


def test_class_weights_only_for_imbalanced_folders_in_auto():
    balanced = np.array([0] * 10 + [1] * 12)
    assert class_weights(balanced, 2, "auto") is None
    imbalanced = np.array([0] * 30 + [1] * 10)
    w = class_weights(imbalanced, 2, "auto")
    assert w is not None and w[1] / w[0] == pytest.approx(3.0)
    assert float(w.mean()) == pytest.approx(1.0)
    assert class_weights(balanced, 2, "off") is None
    assert class_weights(balanced, 2, "loss") is not None


def test_weighted_loss_matches_torch_weighted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(12, 3, generator=g), torch.randint(0, 3, (12,), generator=g)
    w = torch.tensor([0.5, 1.0, 2.0])
    ours = classification_loss(logits, target, class_weights=w)
    assert ours.item() == pytest.approx(F.cross_entropy(logits, target, weight=w).item(), rel=1e-6)
    soft = F.one_hot(target, 3).float()  # one-hot soft targets weigh like hard labels
    assert classification_loss(logits, soft, class_weights=w).item() == pytest.approx(ours.item(), rel=1e-6)


def test_discriminative_rates_scale_the_backbone_only():
    model = create_model("resnet20", num_classes=4)
    opt = build_optimizer(model, OptimConfig(lr=0.1, backbone_lr_scale=0.1, no_decay_norm_bias=True), 0.1)
    head = {id(p) for p in model.get_classifier().parameters()}
    set_lr(opt, 0.02)
    for g in opt.param_groups:
        in_head = all(id(p) in head for p in g["params"])
        assert g["lr"] == pytest.approx(0.02 if in_head else 0.002)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_frozen_stages_get_no_gradient_and_keep_bn_statistics():
    model = create_model("resnet20", num_classes=4)
    frozen = freeze_stages(model, 2)  # stem and layer1
    assert frozen and all(n.startswith(("conv1", "bn1", "layer1.")) for n in frozen)
    assert any(n.startswith("layer1.") for n in frozen) and not any(n.startswith("layer2.") for n in frozen)
    before = model.layer1[0].bn1.running_mean.clone()
    trained_before = model.layer2[0].bn1.running_mean.clone()
    model.train()
    freeze_bn(model, only_frozen=True)
    model(torch.randn(8, 3, 16, 16)).sum().backward()
    assert model.conv1.weight.grad is None and model.layer1[0].conv1.weight.grad is None
    assert model.layer2[0].conv1.weight.grad is not None
    assert torch.equal(model.layer1[0].bn1.running_mean, before)  # frozen stage: statistics fixed
    assert not torch.equal(model.layer2[0].bn1.running_mean, trained_before)  # trained stage: they move


def test_freeze_bn_everywhere_keeps_every_running_statistic():
    model = create_model("resnet20", num_classes=4).train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    freeze_bn(model)
    model(torch.randn(8, 3, 16, 16)).sum().backward()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())


def test_linear_head_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 4
    y = torch.arange(60) % 3
    x = centres[y] + torch.randn(60, 16, generator=g)
    head = fit_linear_head(x, y, 3, weight_decay=1e-4, steps=50)
    assert (head(x).argmax(1) == y).float().mean() == 1.0


def _photo_folder(root, per_class=12, size=40):
    """Three classes of coloured noise photos: red, green and blue dominant, different sizes."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            a = (rng.random((size + i, size + 2 * i, 3)) * 90).astype(np.uint8)
            a[..., c] += 150
            Image.fromarray(a).save(root / name / f"{i}.jpg", quality=90)
    return root


@pytest.fixture
def finetune_config(tmp_path):
    def make(data, *overrides):
        # resnet20 stands in for a pretrained net: weights from a file, as a user's checkpoint would be
        weights = tmp_path / "pretrained.safetensors"
        if not weights.exists():
            from safetensors.torch import save_file

            torch.manual_seed(0)
            save_file(create_model("resnet20", num_classes=10).state_dict(), str(weights))
        return load_config("finetune", [f'data.path="{data}"', f'run.dir="{tmp_path / "runs"}"', "run.progress=false",
                                        "run.tensorboard=false", "model.name=resnet20", f'model.weights="{weights}"',
                                        "data.image_size=16", "data.cache_decoded=false", "data.workers=0",
                                        "finetune.images_per_run=100", "finetune.frozen_stages=1", *overrides])  # fmt: skip
    return make


def test_finetune_recipe_end_to_end_on_a_flat_folder(tmp_path, finetune_config):
    data = _photo_folder(tmp_path / "photos")
    history = fit(finetune_config(data))
    run = history.run_dir
    split = json.loads((run / "split.json").read_text())
    assert len(split["val"]) == 3 * round(12 * 0.2) and split["split_seed"] == 0  # 20% per class, recorded
    meta = json.loads((run / "meta.json").read_text())
    adapted = meta["adapted_to_data"]
    assert adapted["train.batch_size"] == 4 and adapted["train_images"] == 30  # a quarter of 30 is 7 -> 4
    assert adapted["data.in_memory"] == "yes" and adapted["eval_split"] == "holdout"
    assert meta["bn_frozen"] is True  # pretrained weights with a batch of 4
    assert history.probe is not None and history.probe["val_top1"] >= 0  # the probe ran and reported
    cfg_text = (run / "config.toml").read_text()
    assert "batch_size = 4" in cfg_text and "auto_holdout = 0.2" in cfg_text  # the resolved values are recorded
    # keep_best: model.safetensors holds best.pt's weights, which predict --run / embed --run load
    net, _config, classes, _prep = load_run_model(run)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert classes == ["blue", "green", "red"]
    assert all(torch.equal(net.state_dict()[k], best[k]) for k in best)


def test_finetune_keeps_an_existing_val_folder(tmp_path, finetune_config):
    root = tmp_path / "photos"
    _photo_folder(root / "train")
    _photo_folder(root / "val", per_class=4)
    history = fit(finetune_config(root, "finetune.probe_steps=0"))
    meta = json.loads((history.run_dir / "meta.json").read_text())
    assert meta["adapted_to_data"]["eval_split"] == "val" and meta["adapted_to_data"]["eval_images"] == 12
    assert not (history.run_dir / "split.json").exists()
    assert history.probe is None


def test_imbalanced_folder_gets_class_weights(tmp_path, finetune_config):
    root = _photo_folder(tmp_path / "photos")
    for p in sorted((root / "red").iterdir())[4:]:
        p.unlink()  # red: 4 images, the others 12
    history = fit(finetune_config(root, "finetune.probe_steps=0", "train.epochs=1"))
    meta = json.loads((history.run_dir / "meta.json").read_text())
    assert meta["class_weights"].startswith("class-weighted loss") and meta["adapted_to_data"]["class_counts"]["red"] == 3  # 4 less the held-out one


def _cli(args, capsys):
    from reslab.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_and_embed_use_the_finetuned_network(tmp_path, finetune_config, capsys):
    data = _photo_folder(tmp_path / "photos")
    run = fit(finetune_config(data, "finetune.probe_steps=20", "train.epochs=1")).run_dir
    image = sorted((data / "green").iterdir())[0]
    code, out, err = _cli(["predict", "--run", str(run), str(image), "--json", "-k", "3"], capsys)
    assert code == 0, err
    labels = [p["label"] for p in json.loads(out)["results"][0]["predictions"]]
    assert sorted(labels) == ["blue", "green", "red"]  # the folder's classes, not ImageNet's
    code, _out, err = _cli(["predict", "--run", str(tmp_path / "nope"), str(image)], capsys)
    assert code == 1 and "--run" in err and "does not exist" in err
    code, out, err = _cli(["embed", str(data), "--out", str(tmp_path / "idx"), "--run", str(run), "--workers", "0", "--json"], capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["run"] == str(run) and manifest["dim"] == 64  # resnet20's pooled features


def test_train_help_names_every_shipped_recipe_finetune_first():
    import re

    from typer.testing import CliRunner

    from reslab.cli import _load_commands, app
    from reslab.train.config import list_recipes

    _load_commands()
    out = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    listed = out[out.index("Shipped recipes:") : out.index("any TOML file")]
    names = re.findall(r"\b(?:finetune|[a-z]+_[a-z_]+)\b", listed)
    assert sorted(names) == list_recipes()
    assert names[0] == "finetune"
