"""Weight loading: file formats, wrappers and prefixes, fine-tuning heads, and every user mistake."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from reslab.errors import ReslabError
from reslab.fileio import atomic_save_safetensors, atomic_torch_save
from reslab.models import create_model, model_entry
from reslab.models.registry import ModelEntry
from reslab.models.weights import LoadReport, load_weights


@pytest.fixture(scope="module")
def trained():
    """A resnet20 whose weights differ from any fresh init (BN statistics included)."""
    torch.manual_seed(1)
    model = create_model("resnet20")
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.1)
    return model.eval()


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize(
    "filename, wrap",
    [
        ("plain.pth", lambda sd: sd),
        ("nested.pt", lambda sd: {"state_dict": sd, "epoch": 3}),
        ("training.pth", lambda sd: {"model": sd, "optimizer": {"lr": 0.1}}),
        ("ddp.pth", lambda sd: {f"module.{k}": v for k, v in sd.items()}),
        ("compiled.pth", lambda sd: {f"_orig_mod.module.{k}": v for k, v in sd.items()}),
        ("lightning.ckpt", lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 9}),
    ],
)
def test_round_trip_pth(tmp_path, trained, filename, wrap):
    path = tmp_path / filename
    atomic_torch_save(wrap(trained.state_dict()), path)
    model = create_model("resnet20", weights=str(path))
    assert_same_weights(model, trained)


def test_round_trip_safetensors(tmp_path, trained):
    path = tmp_path / "w.safetensors"
    atomic_save_safetensors(trained.state_dict(), path)
    model = create_model("resnet20")
    report = load_weights(model, path)
    assert_same_weights(model, trained)
    assert isinstance(report, LoadReport) and report.reinitialized == ()
    assert report.loaded == len(trained.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), trained(x))


def test_missing_num_batches_tracked_is_accepted(tmp_path, trained):
    # torchvision's original ImageNet checkpoints predate num_batches_tracked
    sd = {k: v for k, v in trained.state_dict().items() if not k.endswith("num_batches_tracked")}
    atomic_torch_save(sd, tmp_path / "old.pth")
    model = create_model("resnet20", weights=str(tmp_path / "old.pth"))
    torch.testing.assert_close(model.layer3[2].conv2.weight, trained.layer3[2].conv2.weight)


def test_fine_tuning_keeps_backbone_and_reinitialises_head(tmp_path, trained, caplog):
    path = tmp_path / "w.pth"
    atomic_torch_save(trained.state_dict(), path)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="reslab.models.weights"):
        model = create_model("resnet20", num_classes=3, weights=str(path))
    assert model.fc.weight.shape == (3, 64)
    for k, v in trained.state_dict().items():
        if not k.startswith("fc."):
            torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    # the head is freshly initialised (nn.Linear's default: uniform within 1/sqrt(fan_in)), not zeros
    assert 0 < model.fc.weight.abs().max() <= 1 / 64**0.5
    (message,) = [r.getMessage() for r in caplog.records]
    assert "'fc'" in message and "10-class" in message and "3 classes" in message
    report = load_weights(create_model("resnet20", num_classes=3), path)
    assert report.reinitialized == ("fc",)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "w.pth"
    with pytest.raises(ReslabError, match="does not exist") as err:
        create_model("resnet20", weights=str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(tmp_path, trained, suffix):
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        atomic_torch_save(trained.state_dict(), path)
    else:
        atomic_save_safetensors(trained.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    model = create_model("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ReslabError) as err:
        load_weights(model, path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    for k, v in model.state_dict().items():  # the model is untouched
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(ReslabError, match="not a weights file that loads safely") as err:
        create_model("resnet20", weights=str(path))
    assert str(path) in str(err.value)


def test_a_pickle_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    atomic_torch_save([1, 2, 3], path)
    with pytest.raises(ReslabError, match="holds no state dict"):
        create_model("resnet20", weights=str(path))


def test_another_architectures_checkpoint(tmp_path, trained):
    path = tmp_path / "resnet20.pth"
    atomic_torch_save(trained.state_dict(), path)
    model = create_model("resnet32")
    before = model.layer1[0].conv1.weight.clone()
    with pytest.raises(ReslabError) as err:
        load_weights(model, path, entry=model_entry("resnet32"))
    message = str(err.value)
    assert str(path) in message and "resnet32" in message
    assert "missing keys (layer1.3.conv1.weight" in message  # the first key resnet20 lacks
    assert torch.equal(model.layer1[0].conv1.weight, before)  # nothing half-loaded


def test_shape_mismatch_outside_the_head(tmp_path, trained):
    path = tmp_path / "gray.pth"
    state = dict(trained.state_dict(), **{"conv1.weight": torch.zeros(16, 1, 3, 3)})  # a one-channel stem
    atomic_torch_save(state, path)
    with pytest.raises(ReslabError, match=r"1 mismatched shape \(conv1.weight \(16, 1, 3, 3\) in file vs \(16, 3, 3, 3\) in model\)"):
        create_model("resnet20", weights=str(path))


def test_named_tags(trained):
    entry = ModelEntry(name="resnet20", builder=None, family="cifar_resnet", pretrained={"toy": trained.state_dict})
    model = create_model("resnet20")
    load_weights(model, "toy", entry=entry)
    assert_same_weights(model, trained)
    with pytest.raises(ReslabError, match=r"no pretrained weights named 'imagenet' \(its tags: toy\)"):
        load_weights(model, "imagenet", entry=entry)
    with pytest.raises(ReslabError, match=r"\(reslab ships none for it\); pass the path .* or 'none' for random initialisation"):
        create_model("resnet50", weights="imagenet")


@pytest.mark.parametrize("spelling", ["none", "None", "random"])
def test_none_and_random_mean_random_initialisation(spelling):
    torch.manual_seed(0)
    expected = create_model("resnet20")
    torch.manual_seed(0)
    assert_same_weights(create_model("resnet20", weights=spelling), expected)


def test_a_whole_pickled_module_is_refused_safely(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # a full module: loading it would need unsafe unpickling
    with pytest.raises(ReslabError, match="re-save only the weights") as err:
        create_model("resnet20", weights=str(path))
    assert str(path) in str(err.value)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ReslabError, match="is a folder"):
        create_model("resnet20", weights=str(tmp_path))
