"""ImageNet ResNets and plain nets: parameter counts against torchvision, and the paper's options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.models import create_model, model_entry
from reslab.models.resnet import BasicBlock, Bottleneck, ZeroPadShortcut, make_stage


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# torchvision's weights metadata (`num_params`) for each architecture
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_count_matches_torchvision(name):
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = create_model(name)
    assert num_params(model) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_option_a_adds_no_parameters_over_the_plain_twin(depth):
    with torch.device("meta"):
        resnet_a = create_model(f"resnet{depth}", shortcut="A")
        plain = create_model(f"plain{depth}")
    assert num_params(resnet_a) == num_params(plain)


def test_option_b_projects_only_where_the_shape_changes():
    with torch.device("meta"):
        model = create_model("resnet34")
    projected = sorted(n for n, m in model.named_modules() if n.endswith("downsample"))
    # resnet34 changes shape at the first block of layers 2-4 only (layer1 keeps 64 channels)
    assert projected == ["layer2.0.downsample", "layer3.0.downsample", "layer4.0.downsample"]
    # the count difference to plain34 is exactly those three conv1x1 + BN
    expected_extra = sum(c_in * c_out + 2 * c_out for c_in, c_out in [(64, 128), (128, 256), (256, 512)])
    with torch.device("meta"):
        assert num_params(model) - num_params(create_model("plain34")) == expected_extra


def test_option_c_projects_every_block():
    with torch.device("meta"):
        model = create_model("resnet50", shortcut="C")
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    assert all(isinstance(b.downsample, nn.Sequential) and isinstance(b.downsample[0], nn.Conv2d) for b in blocks)


def test_option_a_shortcut_is_strided_identity_with_zero_channels():
    shortcut = ZeroPadShortcut(3, 5, stride=2)
    x = torch.randn(2, 3, 6, 6)
    y = shortcut(x)
    assert y.shape == (2, 5, 3, 3)
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2])  # the slow obvious version
    assert torch.all(y[:, 3:] == 0)


def test_plain_nets_have_no_shortcut():
    torch.manual_seed(0)
    plain = create_model("plain18").eval()
    assert not any(n.endswith("downsample") for n, _ in plain.named_modules())
    assert all(not b.residual for b in plain.modules() if isinstance(b, BasicBlock))
    # same weights in a residual net (its extra projections zeroed) give another output: the shortcuts add
    resnet = create_model("resnet18", shortcut="A").eval()
    resnet.load_state_dict(plain.state_dict(), strict=True)  # option A has the same keys as plain
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(plain(x), resnet(x), atol=1e-3)


def test_residual_block_equals_hand_computation():
    torch.manual_seed(0)
    (block,) = make_stage(BasicBlock, 4, 4, 1, stride=1, shortcut="B")
    block.eval()
    x = torch.randn(2, 4, 5, 5)
    branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(block(x), torch.relu(branch + x))


@pytest.mark.parametrize(
    "variant, strides",
    [("v1.5", ((1, 1), (2, 2), (1, 1))), ("v1", ((2, 2), (1, 1), (1, 1)))],
)
def test_stride_placement_of_v1_and_v1_5(variant, strides):
    with torch.device("meta"):
        model = create_model("resnet50", variant=variant)
    first = model.layer2[0]
    assert (first.conv1.stride, first.conv2.stride, first.conv3.stride) == strides
    # both halve the map: layer2 output at 64x64 input is 8x8
    model = create_model("resnet50", variant=variant).eval()
    with torch.no_grad():
        assert model.layer2(model.layer1(torch.zeros(1, 64, 16, 16))).shape == (1, 512, 8, 8)


def test_zero_init_residual_zeroes_the_last_bn_of_each_branch():
    model = create_model("resnet50", zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert all(torch.all(b.bn3.weight == 0) for b in blocks)
    assert all(torch.all(b.bn2.weight == 1) for b in blocks)
    # every block then starts as the identity plus shortcut: an un-projected block returns relu(x)
    block = model.layer1[1].eval()
    x = torch.randn(1, 256, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))
    basic = create_model("resnet18", zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 0) for b in basic.modules() if isinstance(b, BasicBlock))


def test_kaiming_init_as_torchvision():
    torch.manual_seed(0)
    model = create_model("resnet50")
    w = model.layer3[0].conv2.weight  # 256 -> 256, 3x3: fan_out = 256 * 9
    assert abs(w.std().item() - (2 / (256 * 9)) ** 0.5) < 0.02 * (2 / (256 * 9)) ** 0.5
    assert torch.all(model.bn1.weight == 1) and torch.all(model.bn1.bias == 0)


def test_feature_api_shapes_at_224():
    model = create_model("resnet18").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, 512, 7, 7)
        assert model.forward_head(feats, pre_logits=True).shape == (1, 512)
    assert model.get_classifier() is model.fc


def test_bad_options_are_user_errors():
    with pytest.raises(ReslabError, match="variant"):
        create_model("resnet50", variant="v2")
    with pytest.raises(ReslabError, match="shortcut"):
        create_model("resnet50", shortcut="D")
    with pytest.raises(ReslabError, match="no option 'shortcut'"):
        create_model("plain18", shortcut="A")


def test_registry_metadata():
    e = model_entry("resnet50")
    assert (e.family, e.input_size, e.num_classes, e.resize) == ("resnet", (3, 224, 224), 1000, 256)
    assert model_entry("plain34").family == "plain"
    assert "25.6M" in e.description
