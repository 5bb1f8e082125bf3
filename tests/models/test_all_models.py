"""One sweep over every registered model: forward, backward, and the feature API contract.

Inputs are small (batch 2; 32x32 for CIFAR nets, 64x64 for ImageNet nets; ViTs are built for that
size, their position embeddings being sized by `image_size`; Inception v3 gets 299x299, the least
its training-mode auxiliary head takes) so the whole zoo, resnet1202 and preact_resnet1001
included, runs in about a minute on two cores. Models of more than HUGE parameters (ViT-H/14) run
on the meta device: shapes and a gradient reaching every parameter, not values (their values are
checked against torchvision's in test_conformance.py), so that 5 GB of weights and gradients are
not allocated in a unit test.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from reslab.errors import ReslabError
from reslab.models import create_model, list_models, model_entry
from reslab.models.features import feature_maps, feature_modules

ALL_MODELS = list_models()
HUGE = 400_000_000  # parameters
SIZES = {"inception_v3": 299, "vit_h_14": 56}  # inputs other than 32 (CIFAR nets) or 64 (ImageNet nets)


def input_side(name: str) -> int:
    return SIZES.get(name, 32 if model_entry(name).input_size[1] <= 32 else 64)


def small_input(name: str, device: str = "cpu") -> torch.Tensor:
    channels = model_entry(name).input_size[0]
    size = input_side(name)
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    return x.to(device)


def build(name: str) -> torch.nn.Module:
    options = {}
    if "image_size" in inspect.signature(model_entry(name).builder).parameters:
        options["image_size"] = input_side(name)
    with torch.device("meta"):
        size = sum(p.numel() for p in create_model(name, **options).parameters())
    if size > HUGE:
        with torch.device("meta"):
            return create_model(name, **options)
    torch.manual_seed(0)
    return create_model(name, **options)


def is_meta(model: torch.nn.Module) -> bool:
    return next(model.parameters()).is_meta


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    if not a.is_meta:
        torch.testing.assert_close(a, b)


@pytest.fixture(scope="module", params=ALL_MODELS)
def built(request):
    """(name, model): each model built once for the tests below, then freed."""
    return request.param, build(request.param)


def test_forward_backward(built):
    name, model = built
    model.train()
    meta = is_meta(model)
    x = small_input(name, "meta" if meta else "cpu")
    out = model(x)
    # GoogLeNet returns (logits, aux2, aux1), Inception v3 (logits, aux) in training mode; every output joins the loss
    outputs = list(out) if isinstance(out, tuple) else [out]
    for o in outputs:
        assert o.shape == (2, model_entry(name).num_classes)
        assert meta or torch.isfinite(o).all()
    weights = torch.randn(outputs[0].shape, generator=torch.Generator().manual_seed(1)).to(x.device)
    loss = sum((o * weights).sum() for o in outputs)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"
    bad = [n for n, p in model.named_parameters() if not meta and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad[:5]}"
    model.zero_grad(set_to_none=True)


def test_feature_api_contract(built):
    name, model = built
    model.eval()
    x = small_input(name, "meta" if is_meta(model) else "cpu")
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        # CNNs give feature maps (B, C, H, W); transformers tokens (B, 1 + patches, D)
        assert feats.shape[0] == 2
        if hasattr(model, "patch_grid"):
            h, w = model.patch_grid
            assert feats.shape == (2, 1 + h * w, model.hidden_dim)
        else:
            assert feats.ndim == 4
        assert_close(model.forward_head(feats), logits)
        embedding = model.forward_head(feats, pre_logits=True)
        assert embedding.shape == (2, model.num_features)
        classifier = model.get_classifier()
        assert isinstance(classifier, torch.nn.Linear)
        assert classifier.in_features == model.num_features
        assert_close(classifier(embedding), logits)

        maps = feature_maps(model, x)
    assert list(maps) == list(model.feature_names) and len(maps) >= 3
    assert all(m.ndim in (3, 4) and m.shape[0] == 2 for m in maps.values())
    # the deepest named stage is the trunk's output: what forward_head pools
    assert_close(maps[model.feature_names[-1]], feats)
    # hooks are removed afterwards
    assert all(not m._forward_hooks for m in feature_modules(model).values())


def test_feature_maps_equal_the_stages_run_by_hand():
    torch.manual_seed(0)
    model = create_model("resnet18").eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        maps = feature_maps(model, x)
        stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        torch.testing.assert_close(maps["stem"], stem)
        expected = stem
        for name in ["layer1", "layer2", "layer3", "layer4"]:
            expected = getattr(model, name)(expected)
            torch.testing.assert_close(maps[name], expected)
    assert [tuple(m.shape[1:]) for m in maps.values()] == [(64, 24, 24), (64, 24, 24), (128, 12, 12), (256, 6, 6), (512, 3, 3)]


def test_feature_maps_of_a_subset_and_unknown_names():
    model = create_model("resnet20").eval()
    with torch.no_grad():
        maps = feature_maps(model, torch.randn(1, 3, 32, 32), ["stem", "layer2"])
    assert list(maps) == ["stem", "layer2"] and maps["stem"].shape == (1, 16, 32, 32)
    with pytest.raises(ReslabError, match="no feature map named 'layer4'.*stem, layer1, layer2, layer3"):
        feature_maps(model, torch.randn(1, 3, 32, 32), ["layer4"])
    assert not model.relu._forward_hooks  # nothing left behind by the failed call


def test_reset_classifier_gives_a_new_head_and_keeps_the_trunk(built):
    name, model = built
    model.eval()
    x = small_input(name, "meta" if is_meta(model) else "cpu")
    old = model.get_classifier()
    with torch.no_grad():
        feats = model.forward_features(x)
        embedding = model.forward_head(feats, pre_logits=True)
        new = model.reset_classifier(7)
        assert model.get_classifier() is new and new is not old and new.weight.device == old.weight.device
        assert (new.in_features, new.out_features) == (old.in_features, 7)
        assert model(x).shape == (2, 7)
        after = model.forward_head(feats, pre_logits=True)
        if not after.is_meta:  # (eval-mode activations of a random preact_resnet1001 overflow: NaN equals NaN here)
            torch.testing.assert_close(after, embedding, equal_nan=True)
    # the state dict keeps its torchvision names: only the head's shapes changed
    with torch.device("meta"):
        fresh = create_model(name, num_classes=7)
    assert model.state_dict().keys() == fresh.state_dict().keys()
    model.reset_classifier(model_entry(name).num_classes)  # the module-scoped fixture is shared


def test_builders_of_one_family_share_one_signature():
    import inspect

    from reslab.models import cifar_resnet, resnet

    from reslab.models import vit

    for module, family, options in ((resnet, "resnet", ["variant", "shortcut", "zero_init_residual"]),
                                    (cifar_resnet, "cifar_resnet", ["shortcut", "zero_init_residual", "shortcut_pad"]),
                                    (vit, "vit", ["image_size", "dropout", "attention_dropout", "representation_size",
                                                  "stochastic_depth", "pool"])):
        signatures = {inspect.signature(getattr(module, n)) for n in list_models(family)}
        assert len(signatures) == 1, signatures
        assert list(signatures.pop().parameters) == ["num_classes", *options]
    assert resnet.resnet50.__name__ == "resnet50" and "25.6M" in resnet.resnet50.__doc__
    assert model_entry("resnext50_32x4d").builder().layer1[0].conv2.groups == 32
