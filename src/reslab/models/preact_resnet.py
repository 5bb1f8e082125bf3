"""Pre-activation ResNets for CIFAR (He et al. 2016, "Identity Mappings in Deep Residual Networks").

Each block is BN -> ReLU -> conv (twice, or three times for the bottleneck) and adds its input
untouched: nothing follows the addition, so the signal propagates directly from any block to any
other, which is what lets preact_resnet1001 train. Where a stage changes shape the first block's
pre-activation feeds both paths, and the shortcut is a 1x1 projection without BN (option "B";
"A" is the zero-padded identity). The final BN -> ReLU sits after the last stage.

Parameters: preact_resnet110 1.7M, preact_resnet164 1.7M, preact_resnet1001 10.2M (the paper's table).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ReslabError
from .cifar_resnet import CIFAR_ENTRY
from .head import ClassifierHead
from .registry import register_model
from .resnet import conv1x1, conv3x3, init_resnet_weights, make_stage


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the shortcut."""

    expansion = 1
    shortcut_norm = False  # projections see an already normalised input

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, residual: bool = True
    ):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample
        self.residual = residual  # False: a plain pre-activation stack (make_stage with shortcut=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        # a reshaping shortcut shares the pre-activation; the identity takes x unchanged
        shortcut = self.downsample(out) if self.downsample is not None else x
        out = self.conv1(out)
        out = self.relu(self.bn2(out))
        out = self.conv2(out)
        return out + shortcut if self.residual else out


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (x4 channels), plus the shortcut."""

    expansion = 4
    shortcut_norm = False

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, residual: bool = True
    ):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_ch, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = downsample
        self.residual = residual  # False: a plain pre-activation stack (make_stage with shortcut=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = self.downsample(out) if self.downsample is not None else x
        out = self.conv1(out)
        out = self.relu(self.bn2(out))
        out = self.conv2(out)
        out = self.relu(self.bn3(out))
        out = self.conv3(out)
        return out + shortcut if self.residual else out


class PreActResNet(ClassifierHead, nn.Module):
    """conv3x3(16) -> 3 pre-activation stages -> BN-ReLU -> global pool -> FC."""

    feature_names = ["stem", "layer1", "layer2", "layer3", "final_act"]
    feature_aliases = {"stem": "conv1"}

    def __init__(self, block: type[nn.Module], depth: int, num_classes: int = 10, shortcut: str = "B"):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ReslabError(f"unknown shortcut option {shortcut!r} for a pre-activation ResNet; use 'A' or 'B'")
        layers_per_block = 2 if block is PreActBasicBlock else 3
        n = (depth - 2) // (3 * layers_per_block)
        e = block.expansion
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = make_stage(block, 16, 16, n, 1, shortcut)
        self.layer2 = make_stage(block, 16 * e, 32, n, 2, shortcut)
        self.layer3 = make_stage(block, 32 * e, 64, n, 2, shortcut)
        self.final_act = nn.Sequential(nn.BatchNorm2d(64 * e), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64 * e, num_classes)
        self.num_features = 64 * e
        init_resnet_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, 16, 32, 32)
        x = self.layer1(x)  # (B, 16e, 32, 32), e = block.expansion
        x = self.layer2(x)  # (B, 32e, 16, 16)
        x = self.layer3(x)  # (B, 64e, 8, 8)
        x = self.final_act(x)
        return x



@register_model("preact_resnet", **CIFAR_ENTRY)
def preact_resnet110(num_classes: int = 10, shortcut: str = "B") -> PreActResNet:
    """Pre-activation ResNet-110 for CIFAR (basic blocks, n=18): 1.7M parameters, 6.37% error in the paper."""
    return PreActResNet(PreActBasicBlock, 110, num_classes, shortcut)


@register_model("preact_resnet", **CIFAR_ENTRY)
def preact_resnet164(num_classes: int = 10, shortcut: str = "B") -> PreActResNet:
    """Pre-activation ResNet-164 for CIFAR (bottlenecks, n=18): 1.7M parameters, 5.46% error in the paper."""
    return PreActResNet(PreActBottleneck, 164, num_classes, shortcut)


@register_model("preact_resnet", **CIFAR_ENTRY)
def preact_resnet1001(num_classes: int = 10, shortcut: str = "B") -> PreActResNet:
    """Pre-activation ResNet-1001 for CIFAR (bottlenecks, n=111): 10.2M parameters, 4.92% error in the paper."""
    return PreActResNet(PreActBottleneck, 1001, num_classes, shortcut)
