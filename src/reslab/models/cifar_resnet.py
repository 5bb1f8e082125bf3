"""CIFAR ResNets of the paper's section 4.2 (6n+2 layers) and their plain twins.

A 3x3 conv with 16 filters, then three stages of n basic blocks on 32x32, 16x16 and 8x8 maps
with 16, 32 and 64 filters, global average pooling and a 10-way FC layer. Shortcuts are option A
(zero-padded identity) as in the paper, so resnetN has exactly plainN's parameters:
resnet20/32/44/56/110/1202 have 0.27M/0.46M/0.66M/0.85M/1.7M/19.4M.

Public checkpoints: the most used PyTorch CIFAR ResNets (akamaster/pytorch_resnet_cifar10, whose
resnet20-1202 files are `{"state_dict": {"module.conv1.weight", ..., "module.linear.weight"}}`)
pad option A's new channels on both sides. `weights=PATH` recognises that layout, renames its keys
(`linear` -> `fc`, `shortcut` -> `downsample`) and sets shortcut_pad="both", with a one-line notice.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

from ..errors import ReslabError
from .head import ClassifierHead
from .registry import CIFAR_MEAN, CIFAR_STD, register_builder
from .resnet import BasicBlock, ZeroPadShortcut, check_options, check_shortcut_pad, init_resnet_weights, make_stage

log = logging.getLogger(__name__)

CIFAR_ENTRY = {"input_size": (3, 32, 32), "num_classes": 10, "mean": CIFAR_MEAN, "std": CIFAR_STD, "resize": 32}


def blocks_per_stage(depth: int) -> int:
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has 6n+2 layers, not {depth}")
    return (depth - 2) // 6


class CifarResNet(ClassifierHead, nn.Module):
    """conv3x3(16) -> 3 stages of n basic blocks (16, 32, 64 channels) -> global pool -> FC."""

    feature_names = ["stem", "layer1", "layer2", "layer3"]
    # the stem's output is that of its ReLU, used only there (every block owns its own ReLU)
    feature_aliases = {"stem": "relu"}

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        shortcut: str | None = "A",
        zero_init_residual: bool = False,
        shortcut_pad: str = "after",
    ):
        super().__init__()
        check_options("v1.5", shortcut)
        check_shortcut_pad(shortcut_pad)
        n = blocks_per_stage(depth)
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_stage(BasicBlock, 16, 16, n, 1, shortcut, shortcut_pad)
        self.layer2 = make_stage(BasicBlock, 16, 32, n, 2, shortcut, shortcut_pad)
        self.layer3 = make_stage(BasicBlock, 32, 64, n, 2, shortcut, shortcut_pad)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        self.num_features = 64
        init_resnet_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, 16, 32, 32)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.layer1(x)  # (B, 16, 32, 32)
        x = self.layer2(x)  # (B, 32, 16, 16)
        x = self.layer3(x)  # (B, 64, 8, 8)
        return x


    @property
    def shortcut_pad(self) -> str | None:
        """Option A's placement of zero channels ("after" or "both"); None without option-A shortcuts."""
        pads = {m.pad for m in self.modules() if isinstance(m, ZeroPadShortcut)}
        return pads.pop() if len(pads) == 1 else None

    def set_shortcut_pad(self, shortcut_pad: str) -> None:
        check_shortcut_pad(shortcut_pad)
        for m in self.modules():
            if isinstance(m, ZeroPadShortcut):
                m.pad = shortcut_pad

    def adapt_checkpoint(self, state: dict, source: str):
        """Read akamaster/pytorch_resnet_cifar10's layout (weights.py's hook); other layouts pass through."""
        if not is_akamaster_layout(state):
            return state, None
        if not any(isinstance(m, BasicBlock) and m.residual for m in self.modules()):
            raise ReslabError(
                f"{source} is a residual net's checkpoint (akamaster/pytorch_resnet_cifar10); load it into the "
                f"resnet of the same depth, not into a plain net"
            )
        renamed = {akamaster_key(k): v for k, v in state.items()}
        option_a = self.shortcut_pad is not None

        def finish() -> None:
            if option_a:
                self.set_shortcut_pad("both")
            log.warning(
                "%s is an akamaster/pytorch_resnet_cifar10 checkpoint: renamed linear.* to fc.*%s; "
                "it was trained on images normalised with ImageNet's mean and std",
                source,
                " and set shortcut_pad='both' (its option-A shortcuts pad zero channels on both sides)" if option_a else "",
            )

        return renamed, finish


def is_akamaster_layout(state: dict) -> bool:
    """akamaster/pytorch_resnet_cifar10: a `linear` head, no `fc`, the paper's 16-filter first conv."""
    conv1 = state.get("conv1.weight")
    return (
        "linear.weight" in state
        and "fc.weight" not in state
        and conv1 is not None
        and tuple(conv1.shape) == (16, 3, 3, 3)
    )


def akamaster_key(key: str) -> str:
    """akamaster's names -> this zoo's: `linear` is `fc`, an option-B `shortcut` is `downsample`."""
    if key.startswith("linear."):
        return "fc." + key[len("linear.") :]
    return key.replace(".shortcut.", ".downsample.")


# One signature each for the residual nets and their plain twins, written once.


def _cifar_resnet(depth: int, doc: str) -> Callable[..., CifarResNet]:
    def builder(
        num_classes: int = 10, shortcut: str = "A", zero_init_residual: bool = False, shortcut_pad: str = "after"
    ) -> CifarResNet:
        return CifarResNet(depth, num_classes, shortcut, zero_init_residual, shortcut_pad)

    return register_builder(f"resnet{depth}", builder, doc, "cifar_resnet", **CIFAR_ENTRY)


def _cifar_plain(depth: int, doc: str) -> Callable[..., CifarResNet]:
    def builder(num_classes: int = 10) -> CifarResNet:
        return CifarResNet(depth, num_classes, shortcut=None)

    return register_builder(f"plain{depth}", builder, doc, "cifar_plain", **CIFAR_ENTRY)


resnet20 = _cifar_resnet(20, "ResNet-20 for CIFAR (n=3): 0.27M parameters, 8.75% error in the paper.")
resnet32 = _cifar_resnet(32, "ResNet-32 for CIFAR (n=5): 0.46M parameters, 7.51% error in the paper.")
resnet44 = _cifar_resnet(44, "ResNet-44 for CIFAR (n=7): 0.66M parameters, 7.17% error in the paper.")
resnet56 = _cifar_resnet(56, "ResNet-56 for CIFAR (n=9): 0.85M parameters, 6.97% error in the paper.")
resnet110 = _cifar_resnet(110, "ResNet-110 for CIFAR (n=18): 1.7M parameters, 6.43% error in the paper (best of 5 runs).")
resnet1202 = _cifar_resnet(1202, "ResNet-1202 for CIFAR (n=200): 19.4M parameters, 7.93% error in the paper (overfits).")

plain20 = _cifar_plain(20, "Plain-20 for CIFAR: resnet20 without shortcuts.")
plain32 = _cifar_plain(32, "Plain-32 for CIFAR: resnet32 without shortcuts.")
plain44 = _cifar_plain(44, "Plain-44 for CIFAR: resnet44 without shortcuts.")
plain56 = _cifar_plain(56, "Plain-56 for CIFAR: resnet56 without shortcuts; higher training error than plain-20 (Fig. 6).")
plain110 = _cifar_plain(110, "Plain-110 for CIFAR: resnet110 without shortcuts; fails to converge well in the paper (>60% error).")
