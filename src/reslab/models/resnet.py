"""ImageNet ResNets (He et al. 2015) and their plain twins, torchvision-compatible.

State-dict names, shapes and order are torchvision's (conv1, bn1, layer1.0.conv1, ...,
layer2.0.downsample.0/1, fc), so its checkpoints load with strict=True. Options reproduce the
paper's ablations:

- variant "v1.5" (default, torchvision): the stride of a bottleneck sits in its 3x3 conv;
  "v1" (the paper): in its first 1x1 conv, which discards 3/4 of the input before any 3x3 sees it.
- shortcut "A": parameter-free identity (strided subsampling, zero-padded extra channels);
  "B" (default): a 1x1 projection + BN only where the shape changes; "C": a projection on every block.
- plain18..plain152: the same stacks without any shortcut (the paper's "plain" baselines).

The building blocks and `make_stage` are shared with the CIFAR ResNets (`cifar_resnet.py`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ReslabError
from .head import ClassifierHead
from .registry import register_builder

SHORTCUTS = ("A", "B", "C")
VARIANTS = ("v1", "v1.5")


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


SHORTCUT_PADS = ("after", "both")


def check_shortcut_pad(shortcut_pad: str) -> None:
    if shortcut_pad not in SHORTCUT_PADS:
        raise ReslabError(
            f"unknown shortcut_pad {shortcut_pad!r}; use 'after' (zero channels after the identity's) or 'both' "
            "(half before, half after, as akamaster/pytorch_resnet_cifar10)"
        )


class ZeroPadShortcut(nn.Module):
    """Option A: identity with strided subsampling and zero-padded extra channels; no parameters.

    pad: where the zero channels go. "after" the identity's channels (this zoo's default), or
    "both": half before and half after, as akamaster/pytorch_resnet_cifar10 does. The two are
    equally good to train, but a checkpoint only works with the placement it was trained with.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, pad: str = "after"):
        super().__init__()
        check_shortcut_pad(pad)
        self.extra_channels = out_ch - in_ch
        self.stride = stride
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        front = self.extra_channels // 2 if self.pad == "both" else 0
        # pad (W left, W right, H top, H bottom, C front, C back): new channels are zeros
        return F.pad(x, (0, 0, 0, 0, front, self.extra_channels - front))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}, stride={self.stride}, pad={self.pad!r}"


def make_shortcut(
    in_ch: int, out_ch: int, stride: int, shortcut: str, with_norm: bool = True, shortcut_pad: str = "after"
) -> nn.Module | None:
    """The shortcut of one block: None means the identity.

    with_norm=False (pre-activation nets, whose input is already normalised) drops the BN of projections.
    shortcut_pad: option A's placement of the zero channels (see ZeroPadShortcut).
    """
    reshapes = stride != 1 or in_ch != out_ch
    if shortcut == "A":
        return ZeroPadShortcut(in_ch, out_ch, stride, shortcut_pad) if reshapes else None
    if shortcut == "B" and not reshapes:
        return None
    if shortcut in ("B", "C"):
        if not with_norm:
            return conv1x1(in_ch, out_ch, stride)
        return nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
    raise ReslabError(f"unknown shortcut option {shortcut!r}; use one of {', '.join(SHORTCUTS)}")


class BasicBlock(nn.Module):
    """Two 3x3 convs; out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    expansion = 1
    shortcut_norm = True

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ReslabError(
                "basic-block ResNets (resnet18/34) take no groups or width options; use a bottleneck model"
            )
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (grouped for ResNeXt) -> 1x1 expand (x4), plus the shortcut."""

    expansion = 4
    shortcut_norm = True

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        # v1 (paper) strides the first 1x1; v1.5 (torchvision) the 3x3, about +0.5% top-1 on ImageNet
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_ch, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        return self.relu(out)


def make_stage(
    block: type[nn.Module],
    in_ch: int,
    planes: int,
    num_blocks: int,
    stride: int = 1,
    shortcut: str | None = "B",
    shortcut_pad: str = "after",
    **block_options,
) -> nn.Sequential:
    """`num_blocks` blocks with `planes * block.expansion` output channels; the first one strides.

    shortcut: "A", "B" or "C" (see the module docstring), or None for a plain stage without any.
    shortcut_pad: where option A puts its zero channels, "after" or "both" (see ZeroPadShortcut).
    block_options: passed to every block (groups, base_width, stride_in_1x1).
    """
    out_ch = planes * block.expansion
    blocks = []
    for i in range(num_blocks):
        block_in, block_stride = (in_ch, stride) if i == 0 else (out_ch, 1)
        downsample = None
        if shortcut is not None:
            downsample = make_shortcut(
                block_in, out_ch, block_stride, shortcut, with_norm=block.shortcut_norm, shortcut_pad=shortcut_pad
            )
        blocks.append(
            block(block_in, planes, block_stride, downsample=downsample, residual=shortcut is not None, **block_options)
        )
    return nn.Sequential(*blocks)


def check_options(variant: str, shortcut: str | None) -> None:
    if variant not in VARIANTS:
        raise ReslabError(
            f"unknown ResNet variant {variant!r}; use 'v1.5' (stride in the 3x3) or 'v1' (stride in the 1x1)"
        )
    if shortcut is not None and shortcut not in SHORTCUTS:
        raise ReslabError(
            f"unknown shortcut option {shortcut!r}; use 'A' (zero-padded identity), 'B' or 'C' (projections)"
        )


def init_resnet_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """torchvision's init: He-normal (fan_out) convs, BN gamma 1 / beta 0, default Linear init.

    zero_init_residual zeroes the last BN gamma of every residual branch, so each block starts as
    the identity (Goyal et al. 2017): about +0.2-0.3% top-1 with large-batch training.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck) and m.residual:
                nn.init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock) and m.residual:
                nn.init.constant_(m.bn2.weight, 0)


class ResNet(ClassifierHead, nn.Module):
    """7x7 stem, max-pool, four stages (strides 1, 2, 2, 2), global average pool, one FC layer."""

    feature_names = ["stem", "layer1", "layer2", "layer3", "layer4"]
    # feature name -> dotted module path (see reslab.models.features); other names are paths already
    feature_aliases = {"stem": "maxpool"}

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        variant: str = "v1.5",
        shortcut: str | None = "B",
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
    ):
        super().__init__()
        check_options(variant, shortcut)
        options = {"groups": groups, "base_width": width_per_group, "stride_in_1x1": variant == "v1"}
        e = block.expansion
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_stage(block, 64, 64, layers[0], 1, shortcut, **options)
        self.layer2 = make_stage(block, 64 * e, 128, layers[1], 2, shortcut, **options)
        self.layer3 = make_stage(block, 128 * e, 256, layers[2], 2, shortcut, **options)
        self.layer4 = make_stage(block, 256 * e, 512, layers[3], 2, shortcut, **options)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * e, num_classes)
        self.num_features = 512 * e
        init_resnet_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, 64, 112, 112) at 224
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)  # (B, 64, 56, 56)
        x = self.layer1(x)  # (B, 64e, 56, 56), e = block.expansion
        x = self.layer2(x)  # (B, 128e, 28, 28)
        x = self.layer3(x)  # (B, 256e, 14, 14)
        x = self.layer4(x)  # (B, 512e, 7, 7)
        return x


# ----------------------------------------------------------------------------- builders
# One signature per kind of net, written once; each builder is a named, documented function in
# this module (`from reslab.models.resnet import resnet50`), registered under its name.


def _resnet(name: str, block: type[BasicBlock | Bottleneck], layers: list[int], doc: str, **widths) -> Callable[..., ResNet]:
    def builder(num_classes: int = 1000, variant: str = "v1.5", shortcut: str = "B", zero_init_residual: bool = False) -> ResNet:
        return ResNet(block, layers, num_classes, variant, shortcut, zero_init_residual, **widths)

    return register_builder(name, builder, doc, "resnet")


def _plain(name: str, block: type[BasicBlock | Bottleneck], layers: list[int], doc: str) -> Callable[..., ResNet]:
    if block is BasicBlock:  # the v1/v1.5 stride placement exists only in bottlenecks

        def builder(num_classes: int = 1000) -> ResNet:
            return ResNet(block, layers, num_classes, shortcut=None)
    else:

        def builder(num_classes: int = 1000, variant: str = "v1.5") -> ResNet:
            return ResNet(block, layers, num_classes, variant, shortcut=None)

    return register_builder(name, builder, doc, "plain")


# ----------------------------------------------------------------------------- residual nets

resnet18 = _resnet("resnet18", BasicBlock, [2, 2, 2, 2], "ResNet-18: basic blocks [2, 2, 2, 2], 11.7M parameters, 1.81 GMACs.")
resnet34 = _resnet("resnet34", BasicBlock, [3, 4, 6, 3], "ResNet-34: basic blocks [3, 4, 6, 3], 21.8M parameters, 3.66 GMACs.")
resnet50 = _resnet("resnet50", Bottleneck, [3, 4, 6, 3], "ResNet-50: bottleneck blocks [3, 4, 6, 3], 25.6M parameters, 4.09 GMACs.")
resnet101 = _resnet("resnet101", Bottleneck, [3, 4, 23, 3], "ResNet-101: bottleneck blocks [3, 4, 23, 3], 44.5M parameters, 7.80 GMACs.")
resnet152 = _resnet("resnet152", Bottleneck, [3, 8, 36, 3], "ResNet-152: bottleneck blocks [3, 8, 36, 3], 60.2M parameters, 11.5 GMACs.")
resnext50_32x4d = _resnet(
    "resnext50_32x4d", Bottleneck, [3, 4, 6, 3],
    "ResNeXt-50 32x4d: 32 groups of width 4 in the 3x3 convs, 25.0M parameters, 4.23 GMACs.", groups=32, width_per_group=4,
)  # fmt: skip
resnext101_32x8d = _resnet(
    "resnext101_32x8d", Bottleneck, [3, 4, 23, 3],
    "ResNeXt-101 32x8d: 32 groups of width 8, 88.8M parameters, 16.4 GMACs.", groups=32, width_per_group=8,
)  # fmt: skip
wide_resnet50_2 = _resnet(
    "wide_resnet50_2", Bottleneck, [3, 4, 6, 3],
    "Wide ResNet-50-2: bottleneck 3x3 convs twice as wide, 68.9M parameters, 11.4 GMACs.", width_per_group=128,
)  # fmt: skip
wide_resnet101_2 = _resnet(
    "wide_resnet101_2", Bottleneck, [3, 4, 23, 3],
    "Wide ResNet-101-2: bottleneck 3x3 convs twice as wide, 126.9M parameters, 22.8 GMACs.", width_per_group=128,
)  # fmt: skip

# ----------------------------------------------------------------------------- plain twins

plain18 = _plain("plain18", BasicBlock, [2, 2, 2, 2], "Plain-18: ResNet-18's stack without shortcuts (the paper's plain baseline).")
plain34 = _plain(
    "plain34", BasicBlock, [3, 4, 6, 3],
    "Plain-34: ResNet-34's stack without shortcuts; trains worse than plain-18 (the degradation problem).",
)  # fmt: skip
plain50 = _plain("plain50", Bottleneck, [3, 4, 6, 3], "Plain-50: ResNet-50's bottleneck stack without shortcuts.")
plain101 = _plain("plain101", Bottleneck, [3, 4, 23, 3], "Plain-101: ResNet-101's bottleneck stack without shortcuts.")
plain152 = _plain("plain152", Bottleneck, [3, 8, 36, 3], "Plain-152: ResNet-152's bottleneck stack without shortcuts.")
