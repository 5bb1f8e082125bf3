"""VGG-11/13/16/19, with and without BatchNorm (Simonyan & Zisserman 2014), torchvision's layout.

Each network is a config list (channels, "M" for a 2x2 max-pool) turned into layers by one
`make_layers`; state-dict names and shapes are torchvision's, so its checkpoints load strict=True.
"""

from __future__ import annotations

import torch
from torch import nn

from .head import ClassifierHead
from .registry import register_model

# configurations A, B, D, E of the paper's Table 1
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(config: list[int | str], batch_norm: bool = False) -> nn.Sequential:
    """3x3 convs (+BN) + ReLU, with a 2x2 max-pool at each "M"."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_ch, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_ch = v
    return nn.Sequential(*layers)


class VGG(ClassifierHead, nn.Module):
    classifier_path = "classifier.6"

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        self.num_features = 4096  # fc7, the classic VGG descriptor
        # the five pooled stages (strides 2 ... 32); the last one is forward_features' output
        self.feature_names = [f"features.{i}" for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 512, 7, 7) at 224

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier[:-1](x)  # (B, 25088) -> fc6, fc7 -> (B, 4096)


def _vgg(config: str, batch_norm: bool, num_classes: int, dropout: float, init_weights: bool) -> VGG:
    return VGG(make_layers(CONFIGS[config], batch_norm), num_classes=num_classes, dropout=dropout, init_weights=init_weights)


@register_model("vgg")
def vgg11(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-11 (config A): 8 conv + 3 FC layers, 132.9M parameters."""
    return _vgg("vgg11", False, num_classes, dropout, init_weights)


@register_model("vgg")
def vgg11_bn(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-11 with BatchNorm after every conv."""
    return _vgg("vgg11", True, num_classes, dropout, init_weights)


@register_model("vgg")
def vgg13(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-13 (config B): 10 conv + 3 FC layers, 133.0M parameters."""
    return _vgg("vgg13", False, num_classes, dropout, init_weights)


@register_model("vgg")
def vgg13_bn(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-13 with BatchNorm after every conv."""
    return _vgg("vgg13", True, num_classes, dropout, init_weights)


@register_model("vgg")
def vgg16(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-16 (config D): 13 conv + 3 FC layers, 138.4M parameters, 15.5 GMACs."""
    return _vgg("vgg16", False, num_classes, dropout, init_weights)


@register_model("vgg")
def vgg16_bn(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-16 with BatchNorm after every conv."""
    return _vgg("vgg16", True, num_classes, dropout, init_weights)


@register_model("vgg")
def vgg19(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-19 (config E): 16 conv + 3 FC layers, 143.7M parameters."""
    return _vgg("vgg19", False, num_classes, dropout, init_weights)


@register_model("vgg")
def vgg19_bn(num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG-19 with BatchNorm after every conv."""
    return _vgg("vgg19", True, num_classes, dropout, init_weights)
