"""Receptive fields: hand recursion, published values, and an empirical gradient check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reslab import create_model
from reslab.analysis import ReceptiveField, profile_model
from reslab.analysis.receptive_field import chain
from reslab.analysis.zoo import profile_by_name


def test_three_stacked_3x3_see_7x7():
    net = nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(3)])
    rf = profile_model(net, (4, 20, 20)).receptive_field
    assert rf.size == (7, 7) and rf.jump == (1, 1)
    assert chain([(3, 1, 1)] * 3).size == (7, 7)


def test_recursion_by_hand():
    # conv 7/2 p3: r=7 j=2; pool 3/2 p1: r=7+2*2=11 j=4; conv 3/1: r=11+2*4=19 j=4; dilated 3 (d=2): r=19+4*4=35
    rf = ReceptiveField.input().through(7, 2, 3).through(3, 2, 1).through(3, 1, 1).through(3, 1, 2, dilation=2)
    assert rf.size == (35, 35) and rf.jump == (4, 4)
    # start: 0 + (3-3)*1 = 0; + (1-1)*2 = 0; + (1-1)*4 = 0; + (2-2)*4 = 0
    assert rf.start == (0, 0)
    assert ReceptiveField.input().through((1, 7), 1, (0, 3)).size == (1, 7)


@pytest.mark.parametrize(
    "name,options,size,jump",
    [
        ("vgg16", {}, 212, 32),  # the classic VGG-16 conv5_3 / pool5 value
        ("alexnet", {}, 195, 32),
        ("resnet50", {}, 427, 32),  # v1.5 with torchvision's padding
        ("resnet50", {"variant": "v1"}, 483, 32),  # Araujo et al. (Distill 2019) for resnet_v1_50
        ("resnet20", {}, 81, 4),  # by hand in test_resnet20_by_hand
    ],
)
def test_published_final_receptive_fields(name, options, size, jump):
    rf = profile_by_name(name, **options).receptive_field
    assert rf.size == (size, size) and rf.jump == (jump, jump)


def test_resnet20_by_hand():
    # stem 3x3 (r=3); stage 1: 6 convs at j=1 (r=15); stage 2: first conv stride 2 at j=1 (r=17, j=2),
    # 5 more at j=2 (r=37); stage 3: stride-2 conv at j=2 (r=41, j=4), 5 more at j=4 (r=81)
    layers = [(3, 1, 1)] * 7 + [(3, 2, 1)] + [(3, 1, 1)] * 5 + [(3, 2, 1)] + [(3, 1, 1)] * 5
    assert chain(layers).size == (81, 81)


def gradient_footprint(model: nn.Module, input_size, out_index) -> tuple[slice, slice]:
    """Rows and columns of the input whose pixels change the chosen output position."""
    x = torch.ones((1, *input_size), requires_grad=True)
    feats = model(x)
    feats[0, :, out_index[0], out_index[1]].sum().backward()
    nonzero = x.grad[0].abs().sum(0).nonzero()
    return (nonzero[:, 0].min().item(), nonzero[:, 0].max().item()), (nonzero[:, 1].min().item(), nonzero[:, 1].max().item())


def make_all_positive(model: nn.Module) -> nn.Module:
    # positive weights on a positive input: no cancellation, every ReLU passes, so the gradient
    # reaches every pixel of the theoretical field (max pools would route it to one pixel: avoided)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(0.01)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()
    return model.eval()


def expected_footprint(rf: ReceptiveField, index) -> tuple[tuple[int, int], ...]:
    return tuple(
        (int(rf.start[a] + index[a] * rf.jump[a] - (rf.size[a] - 1) / 2), int(rf.start[a] + index[a] * rf.jump[a] + (rf.size[a] - 1) / 2))
        for a in range(2)
    )


class BranchyNet(nn.Module):
    """Residual block with a strided projection, a dilated conv and an average pool: branches of different fields."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2)
        self.project = nn.Conv2d(4, 4, 1, stride=2)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = self.conv3(torch.relu(self.conv2(x))) + self.project(x)
        return self.pool(x)


def test_gradient_footprint_of_a_branchy_net():
    model = make_all_positive(BranchyNet())
    rf = profile_model(model, (2, 64, 64)).receptive_field
    # by hand: conv1 r=5 j=2; conv2 r=9; conv3 (k_eff 5) r=17 j=4; projection branch smaller; pool r=25
    assert rf.size == (25, 25) and rf.jump == (4, 4)
    index = (7, 8)
    assert gradient_footprint(model, (2, 64, 64), index) == expected_footprint(rf, index)


def test_gradient_footprint_of_resnet20():
    model = make_all_positive(create_model("resnet20"))
    rf = profile_model(model, (3, 84, 84)).receptive_field
    index = (10, 10)  # a position whose 81-pixel field lies inside the 84x84 input
    footprint = gradient_footprint(model.forward_features, (3, 84, 84), index)
    assert footprint == expected_footprint(rf, index)
    assert footprint[0][1] - footprint[0][0] + 1 == 81
