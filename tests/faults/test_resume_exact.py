"""Resume is bit-exact for every model with stochastic layers (dropout, drop-path), on data decoded
from files by a DataLoader: the case that broke (issue 12, defect 1).

The families are discovered from the model registry, so a new family with dropout or drop-path is
tested without touching this file.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from reslab.models.registry import create_model, list_models, model_entry
from reslab.train import engine, fit
from reslab.train.checkpoint import load_checkpoint

from .conftest import file_training_config

STOCHASTIC_RATE = 0.3  # what an option named like a dropout rate is set to when its default is 0


def _drop_options(name: str) -> list[str]:
    """The builder's options that set a dropout or drop-path rate (named `*drop*`, a float default)."""
    params = inspect.signature(model_entry(name).builder).parameters.values()
    return [p.name for p in params if "drop" in p.name and isinstance(p.default, float)]


def stochastic_families() -> list[str]:
    """Each family with a dropout or drop-path option, once (signatures only: nothing is built)."""
    families = {}
    for name in list_models():
        if _drop_options(name):
            families.setdefault(model_entry(name).family, name)
    return sorted(families)


def smallest_member(family: str) -> tuple[str, dict]:
    """The family's model with the fewest parameters (built on the meta device: no memory, no time),
    with every dropout/drop-path option that defaults to 0 switched on."""
    members = [n for n in list_models(family) if _drop_options(n)]

    def size(name):
        with torch.device("meta"):
            return sum(p.numel() for p in create_model(name, num_classes=2).parameters())

    name = min(members, key=size)
    defaults = inspect.signature(model_entry(name).builder).parameters
    options = {k: STOCHASTIC_RATE for k in _drop_options(name) if not defaults[k].default}
    if "image_size" in defaults:  # ViTs take one input size, set at build time: the smallest tried below
        options["image_size"] = 32
    return name, options


def smallest_input(name: str, options: dict) -> int:
    """The smallest of a few square input sizes the network accepts (checked on the meta device);
    from 32 pixels: below that, MobileNet's last stages see 1x1 maps of 2 images and BatchNorm's
    backward gives NaN weights in two runs alike."""
    with torch.device("meta"):
        model = create_model(name, num_classes=2, **options).train()
        for size in (32, 64, 96, 128, 224, 299):  # 299: Inception v3's training-mode auxiliary head
            try:
                model(torch.empty(2, 3, size, size))
                return size
            except (RuntimeError, ValueError):
                continue
    raise AssertionError(f"{name} accepts none of the sizes tried")


def _interrupt_at(step_to_stop: int):
    def on_step(step, loss):
        if step == step_to_stop:
            raise KeyboardInterrupt

    return on_step


def _last_weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _differing(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def _stopped_and_resumed(cfg, stop_at: int):
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, on_step=_interrupt_at(stop_at))
    (run_dir,) = list(__import__("pathlib").Path(cfg.run.dir).iterdir())
    assert load_checkpoint(run_dir)["state"]["step"] == stop_at
    return fit(cfg, resume=run_dir)


def test_resume_with_classifier_dropout_on_file_data_is_bit_exact(photo_folder, tmp_path):
    # 16 photos, batch 4: 4 steps per epoch; stop after step 6, in the middle of epoch 2
    settings = ("model.dropout=0.5", "train.ema_decay=0.9", "schedule.name=cosine")
    full = fit(file_training_config(photo_folder, tmp_path / "full", *settings))
    resumed = _stopped_and_resumed(file_training_config(photo_folder, tmp_path / "parts", *settings), stop_at=6)
    assert _differing(_last_weights(full.run_dir), _last_weights(resumed.run_dir)) == []
    assert [r["train_loss"] for r in full.rows] == [r["train_loss"] for r in resumed.rows]


def test_the_resume_test_sees_a_shifted_dropout_stream(photo_folder, tmp_path, monkeypatch):
    # The guard of the test above: without the per-step reseeding, the data loader's draws from the
    # global generator shift the dropout masks of a resumed run, and the comparison catches it.
    monkeypatch.setattr(engine, "seed_step", lambda seed, step, rank: None)
    import reslab.data.loaders as loaders

    make = loaders._make_dataloader

    def global_generator_loader(*args, **kwargs):
        loader = make(*args, **kwargs)
        loader.generator = None  # as before the fix
        return loader

    monkeypatch.setattr(loaders, "_make_dataloader", global_generator_loader)
    settings = ("model.dropout=0.5",)
    full = fit(file_training_config(photo_folder, tmp_path / "full", *settings))
    resumed = _stopped_and_resumed(file_training_config(photo_folder, tmp_path / "parts", *settings), stop_at=6)
    assert _differing(_last_weights(full.run_dir), _last_weights(resumed.run_dir)) != []


@pytest.mark.slow
@pytest.mark.parametrize("family", stochastic_families())
def test_resume_is_bit_exact_for_every_stochastic_family(family, tmp_path, tmp_path_factory):
    from .conftest import write_photo_folder

    name, options = smallest_member(family)
    size = smallest_input(name, options)
    model = create_model(name, num_classes=2, **options).train()
    nn.init.normal_(model.get_classifier().weight)  # ViTs start with a zero classifier, whose logits show nothing
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(x)
        torch.manual_seed(2)
        second = model(x)
    first, second = (o[0] if isinstance(o, tuple) else o for o in (first, second))
    assert not torch.equal(first, second), f"{name} with {options} is not stochastic in training mode"
    del model

    photos = write_photo_folder(tmp_path / "photos", per_class=4, size=(size, size))
    options_toml = "{" + ", ".join(f"{k} = {v}" for k, v in options.items()) + "}"
    # two steps, stopped after the first: the fewest that show a shifted random stream (VGG and
    # AlexNet have 60-130 M parameters, so every step and checkpoint counts); no momentum buffers
    settings = (f"model.name={name}", f"model.options={options_toml}", f"data.image_size={size}",
                'data.augment="none"', "optim.lr=0.01", "optim.momentum=0", "train.batch_size=2", "train.epochs=0", "train.steps=2")
    full = fit(file_training_config(photos, tmp_path / "full", *settings))
    resumed = _stopped_and_resumed(file_training_config(photos, tmp_path / "parts", *settings), stop_at=1)
    assert _differing(_last_weights(full.run_dir), _last_weights(resumed.run_dir)) == []
