"""AlexNet, torchvision's single-tower variant (64-192-384-256-256 channels, adaptive 6x6 pool).

Krizhevsky et al. 2012, as rewritten in "One weird trick..." (Krizhevsky 2014); state-dict names
and shapes are torchvision's, so its ImageNet checkpoint loads with strict=True.
"""

from __future__ import annotations

import torch
from torch import nn

from .head import ClassifierHead
from .registry import register_model


class AlexNet(ClassifierHead, nn.Module):
    classifier_path = "classifier.6"

    # pooled stages plus conv3/conv4: one named map per conv layer, the last is forward_features
    feature_names = ["features.2", "features.5", "features.7", "features.9", "features.12"]

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        # the embedding is fc7 (the 4096-d input of the last layer), the classic AlexNet descriptor
        self.num_features = 4096

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 256, 6, 6) at 224

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier[:-1](x)  # (B, 9216) -> fc6, fc7 -> (B, 4096)


@register_model("alexnet")
def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet (torchvision variant): 5 conv + 3 FC layers, 61.1M parameters."""
    return AlexNet(num_classes=num_classes, dropout=dropout)
