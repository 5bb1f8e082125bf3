"""A small AlexNet for 28-32 px images: three conv layers and AlexNet's dropout head.

Built for the course's dropout lesson on Fashion-MNIST: two 1024-wide fully connected layers hold
most of its 3.3M parameters, enough to memorise a few thousand training images, and dropout
(Hinton et al. 2012, as in AlexNet's fc6/fc7) is an option of the head. Any input of at least
8x8 works (an adaptive pool feeds the head 4x4 maps).
"""

from __future__ import annotations

import torch
from torch import nn

from .head import ClassifierHead
from .registry import register_model


class MiniAlexNet(ClassifierHead, nn.Module):
    """conv3x3(32)-pool, conv3x3(64)-pool, conv3x3(128) -> 4x4 pool -> fc 1024 -> fc 1024 -> classifier."""

    classifier_path = "classifier.6"
    feature_names = ["features.2", "features.5", "features.7"]

    def __init__(self, num_classes: int = 10, dropout: float = 0.0, width: int = 1024):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(128 * 4 * 4, width),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, num_classes),
        )
        self.num_features = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 128, 7, 7) at 28

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier[:-1](x)  # (B, 2048) -> fc, fc -> (B, width)


@register_model("mini_alexnet", input_size=(3, 28, 28), num_classes=10, resize=28, mean=(0.286,) * 3, std=(0.353,) * 3)
def mini_alexnet(num_classes: int = 10, dropout: float = 0.0, width: int = 1024) -> MiniAlexNet:
    """Small AlexNet for 28-32 px images (3 conv + 2 FC of 1024, dropout option): 3.3M parameters."""
    return MiniAlexNet(num_classes=num_classes, dropout=dropout, width=width)
