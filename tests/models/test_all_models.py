"""One sweep over every registered model: forward, backward, and the feature API contract.

Inputs are small (batch 2; 32x32 for CIFAR nets, 64x64 for ImageNet nets) so the whole zoo,
resnet1202 and preact_resnet1001 included, runs in well under a minute on two cores.
"""

from __future__ import annotations

import pytest
import torch

from reslab.errors import ReslabError
from reslab.models import create_model, list_models, model_entry
from reslab.models.features import feature_maps, feature_modules

ALL_MODELS = list_models()


def small_input(name: str) -> torch.Tensor:
    channels, height, _ = model_entry(name).input_size
    size = 32 if height <= 32 else 64
    return torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", params=ALL_MODELS)
def built(request):
    """(name, model): each model built once for the tests below, then freed."""
    torch.manual_seed(0)
    return request.param, create_model(request.param)


def test_forward_backward(built):
    name, model = built
    model.train()
    x = small_input(name)
    out = model(x)
    # GoogLeNet returns (logits, aux2, aux1) in training mode; every output joins the loss
    outputs = list(out) if isinstance(out, tuple) else [out]
    for o in outputs:
        assert o.shape == (2, model_entry(name).num_classes)
        assert torch.isfinite(o).all()
    weights = torch.randn(outputs[0].shape, generator=torch.Generator().manual_seed(1))
    loss = sum((o * weights).sum() for o in outputs)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad[:5]}"
    model.zero_grad(set_to_none=True)


def test_feature_api_contract(built):
    name, model = built
    model.eval()
    x = small_input(name)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        assert feats.ndim == 4 and feats.shape[0] == 2
        torch.testing.assert_close(model.forward_head(feats), logits)
        embedding = model.forward_head(feats, pre_logits=True)
        assert embedding.shape == (2, model.num_features)
        classifier = model.get_classifier()
        assert isinstance(classifier, torch.nn.Linear)
        assert classifier.in_features == model.num_features
        torch.testing.assert_close(classifier(embedding), logits)

        maps = feature_maps(model, x)
    assert list(maps) == list(model.feature_names) and len(maps) >= 3
    assert all(m.ndim == 4 and m.shape[0] == 2 for m in maps.values())
    # the deepest named stage is the trunk's output: what forward_head pools
    torch.testing.assert_close(maps[model.feature_names[-1]], feats)
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
