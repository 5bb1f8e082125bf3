"""CIFAR ResNets (paper section 4.2) and pre-activation ResNets: parameter counts and structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reslab.models import create_model, list_models, model_entry
from reslab.models.cifar_resnet import blocks_per_stage
from reslab.models.preact_resnet import PreActBasicBlock, PreActBottleneck
from reslab.models.resnet import BasicBlock, ZeroPadShortcut


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def hand_count_cifar_resnet(n: int, num_classes: int = 10) -> int:
    """Slow obvious count: conv weights + BN (gamma, beta) + FC, option A (no shortcut parameters)."""
    conv_bn = lambda c_in, c_out: 9 * c_in * c_out + 2 * c_out  # noqa: E731
    total = conv_bn(3, 16)
    for c_in, c_out in [(16, 16), (16, 32), (32, 64)]:
        total += conv_bn(c_in, c_out) + conv_bn(c_out, c_out)  # first block of the stage
        total += (n - 1) * 2 * conv_bn(c_out, c_out)
    return total + 64 * num_classes + num_classes


# Table 6 of He et al. 2015: parameters in millions, as printed
PAPER_PARAMS_M = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7, "resnet1202": 19.4}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_parameter_counts_match_the_paper(name):
    with torch.device("meta"):
        model = create_model(name)
    count = num_params(model)
    digits = 2 if PAPER_PARAMS_M[name] < 1 else 1
    assert round(count / 1e6, digits) == PAPER_PARAMS_M[name]
    depth = int(name.removeprefix("resnet"))
    assert count == hand_count_cifar_resnet(blocks_per_stage(depth))


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_option_a_has_exactly_the_plain_twins_parameters(depth):
    with torch.device("meta"):
        assert num_params(create_model(f"resnet{depth}")) == num_params(create_model(f"plain{depth}"))


def test_depth_is_6n_plus_2():
    model = create_model("resnet20")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 20  # option A adds no conv
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [3, 3, 3]
    with pytest.raises(ValueError):
        blocks_per_stage(21)


def test_shapes_and_option_a_shortcuts():
    model = create_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model.layer1(torch.zeros(2, 16, 32, 32)).shape == (2, 16, 32, 32)
        assert model.forward_features(x).shape == (2, 64, 8, 8)
        assert model(x).shape == (2, 10)
    shortcuts = [n for n, m in model.named_modules() if isinstance(m, ZeroPadShortcut)]
    assert shortcuts == ["layer2.0.downsample", "layer3.0.downsample"]


def test_option_b_and_plain_variants():
    b = create_model("resnet20", shortcut="B")
    # option B: two projections (16->32, 32->64) with BN
    assert num_params(b) - num_params(create_model("resnet20")) == (16 * 32 + 64) + (32 * 64 + 128)
    plain = create_model("plain20")
    assert all(not m.residual and m.downsample is None for m in plain.modules() if isinstance(m, BasicBlock))


def test_cifar_registry_metadata():
    e = model_entry("resnet56")
    assert (e.family, e.input_size, e.num_classes, e.resize) == ("cifar_resnet", (3, 32, 32), 10, 32)
    assert e.mean[0] == pytest.approx(0.4914)
    assert set(list_models("cifar_plain")) == {"plain20", "plain32", "plain44", "plain56", "plain110"}
    assert set(list_models("preact_resnet")) == {"preact_resnet110", "preact_resnet164", "preact_resnet1001"}


def test_preact_parameter_counts():
    with torch.device("meta"):
        counts = {n: create_model(n) for n in ["preact_resnet110", "preact_resnet164", "preact_resnet1001"]}
    # Identity Mappings paper, Tables 2-4: 1.7M, 1.7M, 10.2M
    assert round(num_params(counts["preact_resnet110"]) / 1e6, 1) == 1.7
    assert round(num_params(counts["preact_resnet164"]) / 1e6, 1) == 1.7
    # the paper's 10.2M counts the weight layers; BN adds another 0.15M (10.33M in all)
    m1001 = counts["preact_resnet1001"]
    weights = sum(m.weight.numel() for m in m1001.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert round(weights / 1e6, 1) == 10.2
    assert round(num_params(m1001) / 1e6, 2) == 10.33


def test_preact_structure():
    model = create_model("preact_resnet164")
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [18, 18, 18]
    assert all(isinstance(b, PreActBottleneck) for b in model.layer1)
    assert model.num_features == 256 and model.fc.in_features == 256
    # widths 16-64-128-256 out of the stages
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        out1 = model.layer1(model.conv1(x))
        assert out1.shape == (2, 64, 32, 32)
        assert model.layer2(out1).shape == (2, 128, 16, 16)
    # basic-block preact-110: 18 blocks of two 3x3 convs per stage
    model110 = create_model("preact_resnet110")
    assert all(isinstance(b, PreActBasicBlock) for b in model110.layer3) and len(model110.layer3) == 18


def test_preact_block_adds_its_input_untouched():
    torch.manual_seed(0)
    block = PreActBasicBlock(8, 8).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        branch = block.conv2(torch.relu(block.bn2(block.conv1(torch.relu(block.bn1(x))))))
        torch.testing.assert_close(block(x), x + branch)  # no ReLU after the addition
