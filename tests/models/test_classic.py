"""The classic CNNs: architecture facts against torchvision's published numbers and the papers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reslab.models import create_model, model_entry
from reslab.models.features import feature_maps
from reslab.models.googlenet import GoogLeNetOutputs
from reslab.models.mobilenetv2 import make_divisible
from reslab.models.vgg import CONFIGS

# torchvision's weights metadata: (num_params, GMACs; torchvision calls them "GFLOPS")
TORCHVISION = {
    "alexnet": (61_100_840, 0.714),
    "vgg11": (132_863_336, 7.609),
    "vgg11_bn": (132_868_840, 7.609),
    "vgg13": (133_047_848, 11.308),
    "vgg13_bn": (133_053_736, 11.308),
    "vgg16": (138_357_544, 15.470),
    "vgg16_bn": (138_365_992, 15.470),
    "vgg19": (143_667_240, 19.632),
    "vgg19_bn": (143_678_248, 19.632),
    "googlenet": (6_624_904, 1.498),  # the inference model, without the auxiliary heads
    "mobilenet_v2": (3_504_872, 0.301),
}


def build_on_meta(name: str, **options) -> nn.Module:
    # shapes only, no memory and no init cost: VGG-19 builds in milliseconds
    with torch.device("meta"):
        return create_model(name, **options)


def gmacs(model: nn.Module, size: int = 224) -> float:
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, size, size, device="meta"))
    return counter.get_total_flops() / 2e9  # one multiply-accumulate = two flops


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_params_and_macs_match_torchvision(name):
    options = {"aux_logits": False} if name == "googlenet" else {}
    model = build_on_meta(name, **options).eval()
    params, published_gmacs = TORCHVISION[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert gmacs(model) == pytest.approx(published_gmacs, abs=0.0015)


@pytest.mark.parametrize("name,weight_layers", [("vgg11", 11), ("vgg13", 13), ("vgg16", 16), ("vgg19", 19)])
def test_vgg_configs_have_the_papers_depth(name, weight_layers):
    # Table 1 of Simonyan & Zisserman: depth counts conv + FC layers; five max-pools in every config
    assert sum(isinstance(v, int) for v in CONFIGS[name]) + 3 == weight_layers
    assert CONFIGS[name].count("M") == 5
    for bn in (False, True):
        model = build_on_meta(name + ("_bn" if bn else ""))
        convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
        assert len(convs) + 3 == weight_layers
        assert len(norms) == (len(convs) if bn else 0)
        assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
        assert [c.out_channels for c in convs] == [v for v in CONFIGS[name] if v != "M"]


def test_googlenet_aux_heads_only_in_training():
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=7, init_weights=False)
    x = torch.randn(2, 3, 32, 32)  # 1x1 after the last pool: the smallest input the trunk takes
    model.train()
    out = model(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert all(t.shape == (2, 7) for t in out)
    # each aux head reads its own inception output: they must differ from the main logits
    assert not torch.allclose(out.logits, out.aux_logits1) and not torch.allclose(out.aux_logits1, out.aux_logits2)
    # the auxiliary losses reach the trunk through both heads, without touching the main head
    (out.aux_logits1.sum() + out.aux_logits2.sum()).backward()
    assert model.aux1.fc2.weight.grad is not None and model.aux2.fc2.weight.grad is not None
    assert model.inception4a.branch1.conv.weight.grad.abs().sum() > 0
    assert model.fc.weight.grad is None
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 7)

    aux_keys = {k for k in model.state_dict() if k.startswith(("aux1.", "aux2."))}
    assert "aux1.fc2.weight" in aux_keys and "aux2.conv.bn.running_var" in aux_keys
    no_aux = create_model("googlenet", num_classes=7, aux_logits=False, init_weights=False).train()
    assert not any(k.startswith(("aux1.", "aux2.")) for k in no_aux.state_dict())
    assert isinstance(no_aux(x), torch.Tensor)


def test_googlenet_transform_input_is_the_documented_renormalisation():
    torch.manual_seed(0)
    plain = create_model("googlenet", num_classes=5, aux_logits=False, init_weights=False).eval()
    transformed = create_model("googlenet", num_classes=5, aux_logits=False, init_weights=False, transform_input=True).eval()
    transformed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = x * std + mean  # undo ImageNet normalisation by hand, then apply (p - 0.5) / 0.5
    with torch.no_grad():
        torch.testing.assert_close(transformed(x), plain((pixels - 0.5) / 0.5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("width,stem,last", [(1.0, 32, 1280), (0.5, 16, 1280), (0.75, 24, 1280), (1.4, 48, 1792)])
def test_mobilenet_v2_width_multiplier_rounds_channels_to_multiples_of_8(width, stem, last):
    model = build_on_meta("mobilenet_v2", width_mult=width)
    assert model.features[0][0].out_channels == stem
    assert model.features[-1][0].out_channels == last == model.num_features
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


def test_make_divisible_never_rounds_down_more_than_ten_percent():
    assert [make_divisible(v) for v in (32, 16 * 0.35, 24 * 0.35, 100, 1280 * 1.4)] == [32, 8, 8, 104, 1792]
    assert make_divisible(19) == 24  # 16 would be 16% below


def test_mobilenet_v2_residuals_only_where_shapes_match():
    model = build_on_meta("mobilenet_v2")
    blocks = list(model.features)[1:-1]
    # 17 inverted residuals; the first of each stage (and stage 1's single block) has no identity
    assert len(blocks) == 17
    assert sum(b.use_res_connect for b in blocks) == 10


@pytest.mark.parametrize("name", ["alexnet", "googlenet", "mobilenet_v2"])
def test_feature_api(name):
    torch.manual_seed(0)
    options = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = create_model(name, num_classes=10, **options).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        maps = feature_maps(model, x)
        logits = model(x)
        embedding = model.forward_head(feats, pre_logits=True)
        torch.testing.assert_close(model.forward_head(feats), logits)
    assert list(maps) == model.feature_names and len(maps) == 5
    torch.testing.assert_close(maps[model.feature_names[-1]], feats)
    # strides grow shallow to deep
    sides = [m.shape[-1] for m in maps.values()]
    assert sides == sorted(sides, reverse=True)
    assert embedding.shape == (2, model.num_features)
    assert model.get_classifier().out_features == 10
    assert model.get_classifier().in_features == model.num_features


def test_vgg_feature_maps_are_the_five_pooled_stages():
    # shapes only (meta tensors): VGG's 100M-parameter classifier is too slow to initialise in a unit test
    model = build_on_meta("vgg16_bn", num_classes=10).eval()
    x = torch.empty(2, 3, 224, 224, device="meta")
    maps = feature_maps(model, x)
    assert [tuple(m.shape[1:]) for m in maps.values()] == [
        (64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)
    ]
    assert model.forward_features(x).shape == (2, 512, 7, 7)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 4096) == (2, model.num_features)
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("name", ["alexnet", "vgg16_bn", "googlenet", "mobilenet_v2"])
def test_registry_metadata(name):
    entry = model_entry(name)
    assert entry.input_size == (3, 224, 224) and entry.num_classes == 1000
    assert entry.family in {"alexnet", "vgg", "googlenet", "mobilenet"}
    assert entry.mean == (0.485, 0.456, 0.406) and entry.resize == 256 and entry.description
