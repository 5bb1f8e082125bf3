"""profile_model against the published figures, the conv/linear formulas, FlopCounterMode and real runs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reslab import ReslabError, create_model
from reslab.analysis import parse_input_size, profile_model
from reslab.analysis.zoo import profile_by_name

# (model, options, parameters, GMACs at 3x224x224): torchvision's model cards and the papers
PUBLISHED_IMAGENET = [
    ("resnet18", {}, 11_689_512, 1.814),
    ("resnet50", {}, 25_557_032, 4.089),
    ("resnet50", {"variant": "v1"}, 25_557_032, 3.86),  # the paper's 3.8 x 10^9
    ("resnet101", {}, 44_549_160, 7.80),
    ("vgg16", {}, 138_357_544, 15.47),
    ("googlenet", {"aux_logits": False}, 6_624_904, 1.50),
]


def three_sig(x: float) -> float:
    return float(f"{x:.3g}")


@pytest.mark.parametrize("name,options,params,gmacs", PUBLISHED_IMAGENET, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_published_imagenet_figures(name, options, params, gmacs):
    p = profile_by_name(name, **options)
    assert p.params == params
    assert p.params_total == params
    assert three_sig(p.macs / 1e9) == three_sig(gmacs)
    assert p.flops == 2 * p.macs


def test_googlenet_aux_heads_are_excluded_from_inference_params():
    # the train-only auxiliary classifiers exist but the eval forward never touches them
    p = profile_by_name("googlenet")
    assert p.params == 6_624_904
    assert p.params_total > p.params


# the paper's Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M
@pytest.mark.parametrize(
    "name,millions", [("resnet20", "0.27"), ("resnet32", "0.46"), ("resnet44", "0.66"), ("resnet56", "0.85"), ("resnet110", "1.7"), ("resnet1202", "19.4")]
)
def test_cifar_resnet_parameters_match_the_paper(name, millions):
    p = profile_by_name(name)
    assert p.input_size == (3, 32, 32)
    decimals = len(millions.split(".")[1])
    assert f"{p.params / 1e6:.{decimals}f}" == millions


@pytest.mark.parametrize("name,depth", [("resnet50", 50), ("resnet18", 18), ("vgg16", 16), ("googlenet", 22), ("plain34", 34), ("resnet56", 56)])
def test_depth_counts_weighted_layers_on_the_longest_path(name, depth):
    assert profile_by_name(name).output_depth == depth


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "mobilenet_v2", "efficientnet_lite0", "alexnet", "resnext50_32x4d"])
def test_flop_counter_mode_agrees_with_two_macs(name):
    p = profile_by_name(name, cross_check=True)
    assert p.flop_counter_flops == 2 * p.macs


def conv_macs(conv: nn.Conv2d, out_shape) -> int:
    b, c_out, h, w = out_shape
    return b * h * w * c_out * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_every_conv_and_linear_row_matches_the_formula(name):
    with torch.device("meta"):
        model = create_model(name)
    p = profile_model(model, (3, 160, 128), batch=2)
    modules = dict(model.named_modules())
    checked = 0
    for row in p.layers:
        m = modules.get(row.name)
        if isinstance(m, nn.Conv2d):
            assert row.macs == conv_macs(m, row.output_shape)
            assert row.params == m.out_channels * (m.in_channels // m.groups * math.prod(m.kernel_size) + (m.bias is not None))
            checked += 1
        elif isinstance(m, nn.Linear):
            assert row.macs == 2 * m.in_features * m.out_features  # batch 2
            assert row.params == m.out_features * (m.in_features + (m.bias is not None))
            checked += 1
        assert row.flops == 2 * row.macs or row.macs == 0
    assert checked == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in modules.values())


class TinyResidual(nn.Module):
    """conv-bn-relu, then a residual block with a functional addition, pool, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu(self.bn(self.stem(x)))
        x = x + self.block(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def test_rows_of_a_hand_built_net():
    p = profile_model(TinyResidual(), (3, 16, 16), batch=1)
    rows = {r.name: r for r in p.layers}
    assert list(rows) == ["stem", "bn", "relu", "block.0", "block.1", "add", "pool", "fc"]
    assert rows["stem"].macs == 8 * 8 * 8 * 3 * 9 and rows["stem"].output_shape == (1, 8, 8, 8)
    assert rows["bn"].flops == 2 * 8 * 8 * 8 and rows["bn"].params == 16
    assert rows["relu"].activation_bytes == 0  # in place
    assert rows["block.1"].activation_bytes == 8 * 8 * 8 * 4
    assert rows["add"].type == "add" and rows["add"].flops == 8 * 8 * 8
    assert rows["fc"].macs == 40 and rows["fc"].receptive_field is None
    assert p.params == sum(q.numel() for q in TinyResidual().parameters())
    assert p.macs == 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 * 8 * 9 + 40
    assert p.output_depth == 3


def test_meta_and_real_runs_agree_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = TinyResidual().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta = profile_model(model, (3, 20, 20), batch=3)
    real = profile_model(model, (3, 20, 20), batch=3, device=None)
    assert [r.as_dict() for r in meta.layers] == [r.as_dict() for r in real.layers]
    assert model.training  # restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # no running-stat updates, weights untouched


def test_too_small_input_names_the_minimum():
    # VGG-16 halves the grid five times with 2x2 pools: the smallest input is 32x32
    with pytest.raises(ReslabError, match=r"smallest square input it accepts is 3x32x32"):
        profile_by_name("vgg16", (3, 16, 16))
    assert profile_by_name("vgg16", (3, 32, 32)).layer("features.30").output_shape == (1, 512, 1, 1)


@pytest.mark.parametrize("text", ["3x22", "abc", "0x224x224", "3x-4x4", "3x224x224x2", ""])
def test_bad_input_sizes_raise_one_clear_error(text):
    with pytest.raises(ReslabError, match="input size"):
        parse_input_size(text)


def test_input_size_forms():
    assert parse_input_size("3x224x224") == (3, 224, 224)
    assert parse_input_size("1 x 28 x 28") == (1, 28, 28)
    assert parse_input_size("96", channels=1) == (1, 96, 96)


@pytest.mark.parametrize("name,options,size", [("resnet20", {}, (3, 32, 32)), ("googlenet", {"init_weights": False}, (3, 40, 36))])
def test_meta_shortcuts_match_a_real_cpu_run(name, options, size):
    # the meta fast paths (conv, batch norm, pointwise shapes) against PyTorch's real CPU kernels
    model = create_model(name, **options)
    meta = profile_model(model, size)
    real = profile_model(model, size, device=None)
    assert [r.as_dict() for r in meta.layers] == [r.as_dict() for r in real.layers]


def test_activation_memory_follows_the_model_dtype():
    full = profile_model(TinyResidual(), (3, 16, 16), batch=2)
    half = profile_model(TinyResidual().half(), (3, 16, 16), batch=2)
    assert half.activation_bytes * 2 == full.activation_bytes > 0
    assert half.macs == full.macs
