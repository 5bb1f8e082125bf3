"""MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks, torchvision's layout.

State-dict names and shapes are torchvision's (`features.N.conv.M...`, `classifier.1`), so its
checkpoints load strict=True. `last_index_per_stride` (the named stages of a flat trunk) is shared
with EfficientNet-Lite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .head import ClassifierHead
from .registry import register_model


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below `v`."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_norm_act(in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """conv (no bias, (k-1)/2 padding) -> BN -> ReLU6; keys 0/1/2 as torchvision's Conv2dNormActivation."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    ]
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, + identity when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(in_ch, hidden, kernel_size=1))
        layers += [
            conv_norm_act(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.stride = stride
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


# expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def last_index_per_stride(strides: list[int]) -> list[int]:
    """Indices of the last module at each output stride: the natural named stages of a flat trunk."""
    total, last = 1, {}
    for i, s in enumerate(strides):
        total *= s
        last[total] = i
    return [last[k] for k in sorted(last) if k > 1]


class MobileNetV2(ClassifierHead, nn.Module):
    classifier_path = "classifier.1"

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2, round_nearest: int = 8):
        super().__init__()
        in_ch = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [conv_norm_act(3, in_ch, stride=2)]
        strides = [2]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out_ch = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, expand_ratio=t))
                strides.append(s if i == 0 else 1)
                in_ch = out_ch
        features.append(conv_norm_act(in_ch, self.last_channel, kernel_size=1))
        strides.append(1)
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        self.num_features = self.last_channel
        # strides 2, 4, 8, 16, 32 -> features.1, .3, .6, .13, .18
        self.feature_names = [f"features.{i}" for i in last_index_per_stride(strides)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 1280, 7, 7) at 224

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)  # (B, 1280); functional, as torchvision

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)  # dropout, then the Linear


@register_model("mobilenet")
def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2: inverted residuals, 3.5M parameters and 0.30 GMACs at width 1.0."""
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, dropout=dropout)
