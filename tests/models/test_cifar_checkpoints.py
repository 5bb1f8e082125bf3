"""Public CIFAR ResNet checkpoints: akamaster/pytorch_resnet_cifar10's layout loads and predicts the same.

That repository (the most used PyTorch CIFAR ResNets) pads option A's new channels on both sides
(planes // 4 zero channels before and after the identity's), names its head `linear`, and saves
`{"state_dict": DataParallel(model).state_dict(), "best_prec1": ...}`. `AkamasterResNet` below
re-implements its model (resnet.py there), to make such a checkpoint here and compare logits.
"""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError
from reslab.fileio import atomic_torch_save
from reslab.models import create_model
from reslab.models.resnet import ZeroPadShortcut


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class AkamasterBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
                )
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class AkamasterResNet(nn.Module):
    def __init__(self, num_blocks, num_classes=10, option="A"):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], 1, option)
        self.layer2 = self._make_layer(32, num_blocks[1], 2, option)
        self.layer3 = self._make_layer(64, num_blocks[2], 2, option)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes, num_blocks, stride, option):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(AkamasterBlock(self.in_planes, planes, s, option))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def trained_reference(n: int, option: str = "A") -> AkamasterResNet:
    """A reference net whose weights and BN statistics are far from any fresh init."""
    torch.manual_seed(n)
    net = AkamasterResNet([n, n, n], option=option)
    with torch.no_grad():
        for key, t in net.state_dict().items():
            if key.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif t.is_floating_point():
                t.add_(0.1 * torch.randn_like(t))
    return net.eval()


def save_akamaster(net: nn.Module, path) -> None:
    # as their trainer saves it: DataParallel's `module.` prefix, nested under "state_dict"
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    atomic_torch_save({"state_dict": state, "best_prec1": 91.73}, path)


@pytest.mark.parametrize("name, n", [("resnet20", 3), ("resnet32", 5)])
def test_akamaster_checkpoint_gives_the_same_logits(tmp_path, caplog, name, n):
    ref = trained_reference(n)
    path = tmp_path / f"{name}-12fca82f.th"  # their file names
    save_akamaster(ref, path)
    with caplog.at_level(logging.WARNING):
        model = create_model(name, weights=str(path)).eval()
    notices = [r.getMessage() for r in caplog.records if "akamaster" in r.getMessage()]
    assert len(notices) == 1 and "shortcut_pad='both'" in notices[0] and "\n" not in notices[0]
    assert model.shortcut_pad == "both"
    assert all(m.pad == "both" for m in model.modules() if isinstance(m, ZeroPadShortcut))
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-4)
        # the same weights with this zoo's default placement are another network
        after = create_model(name, shortcut_pad="after").eval()
        after.load_state_dict(model.state_dict())
        assert (after(x) - ref(x)).abs().max() > 1e-2


def test_option_b_checkpoint_renames_its_projections(tmp_path):
    ref = trained_reference(3, option="B")
    path = tmp_path / "resnet20_b.pth"
    save_akamaster(ref, path)
    model = create_model("resnet20", shortcut="B", weights=str(path)).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-4)


def test_shortcut_pad_both_matches_padding_by_hand():
    shortcut = ZeroPadShortcut(16, 32, stride=2, pad="both")
    x = torch.randn(2, 16, 8, 8)
    out = shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    after = ZeroPadShortcut(16, 32, stride=2)(x)
    torch.testing.assert_close(after[:, :16], x[:, :, ::2, ::2])


def test_a_checkpoint_of_this_zoo_keeps_its_placement(tmp_path):
    trained = create_model("resnet20").eval()
    path = tmp_path / "ours.pth"
    atomic_torch_save(trained.state_dict(), path)
    model = create_model("resnet20", weights=str(path))
    assert model.shortcut_pad == "after"


def test_mistakes_are_one_clear_error(tmp_path):
    with pytest.raises(ReslabError, match="shortcut_pad 'left'.*'after'.*'both'"):
        create_model("resnet20", shortcut_pad="left")
    path = tmp_path / "r20.th"
    save_akamaster(trained_reference(3), path)
    with pytest.raises(ReslabError, match="resnet of the same depth, not into a plain net"):
        create_model("plain20", weights=str(path))
    with pytest.raises(ReslabError, match="does not fit model 'resnet32'"):
        create_model("resnet32", weights=str(path))
    untouched = create_model("resnet32")
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    from reslab.models.weights import load_weights

    with pytest.raises(ReslabError):
        load_weights(untouched, path)
    assert untouched.shortcut_pad == "after"  # a failed load sets nothing
    assert all(torch.equal(before[k], v) for k, v in untouched.state_dict().items())
