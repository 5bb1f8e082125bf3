"""Layer-response statistics against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reslab.experiments.layer_responses import layer_response_stds, plot_layer_responses, response_layers


class TinyResidual(nn.Module):
    """stem 3x3 conv+BN, one residual block (two 3x3 conv+BN), a 1x1 projection with its own BN."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(4)
        self.conv1 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.project = nn.Conv2d(4, 6, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(6)  # follows a 1x1 conv: not a response
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        x = torch.relu(self.bn0(self.conv0(x)))
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = torch.relu(out + self.project_bn(self.project(x)))
        return self.fc(out.mean(dim=(2, 3)))


def _model():
    torch.manual_seed(0)
    model = TinyResidual()
    # known, distinct BN affine and running statistics so each layer's std differs
    for i, bn in enumerate([model.bn0, model.bn1, model.bn2, model.project_bn]):
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(0.5, 2.0, bn.num_features) * (i + 1))
            bn.bias.uniform_(-1, 1)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_finds_the_bn_after_each_3x3_conv_in_execution_order():
    names = [n for n, _ in response_layers(_model(), torch.randn(1, 3, 8, 8))]
    assert names == ["bn0", "bn1", "bn2"]


def test_std_matches_torch_std_over_all_images_channels_positions():
    model = _model()
    torch.manual_seed(1)
    data = [torch.randn(5, 3, 8, 8), torch.randn(3, 3, 8, 8)]
    responses = layer_response_stds(model, [(d, torch.zeros(len(d))) for d in data])
    # by hand: BN output in eval mode for all 8 images at once, std over every element
    x = torch.cat(data)
    with torch.no_grad():
        r0 = model.bn0(model.conv0(x))
        r1 = model.bn1(model.conv1(torch.relu(r0)))
        r2 = model.bn2(model.conv2(torch.relu(r1)))
    expected = [torch.std(r.double()).item() for r in (r0, r1, r2)]
    assert [r.index for r in responses] == [1, 2, 3]
    assert [r.std for r in responses] == pytest.approx(expected, rel=1e-9)
    assert len(set(round(e, 6) for e in expected)) == 3


def test_max_images_cuts_the_stream():
    model = _model()
    torch.manual_seed(2)
    data = torch.randn(6, 3, 8, 8)
    limited = layer_response_stds(model, [data[:4], data[4:]], max_images=3)
    with torch.no_grad():
        r0 = model.bn0(model.conv0(data[:3]))
    assert limited[0].std == pytest.approx(torch.std(r0.double()).item(), rel=1e-9)
    assert all(not math.isnan(r.std) for r in limited)


def test_plot(tmp_path):
    model = _model()
    responses = layer_response_stds(model, [torch.randn(4, 3, 8, 8)])
    path = plot_layer_responses({"plain-3": responses, "resnet-3": responses[::-1]}, tmp_path / "f7.png")
    assert path.stat().st_size > 5000
