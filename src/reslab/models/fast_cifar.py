"""Networks built for time-to-accuracy on CIFAR: airbench94 (Jordan 2024) and a residual variant.

Both follow the DAWNBench ResNet-9 / hlb-CIFAR10 / airbench lineage: few layers, wide, pooling
right after the first conv of each stage, so most convolutions run on small maps.

    whiten (2x2 conv, 24 filters, fixed) -> GELU              # (B, 24, 31, 31)
    layer1: conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU    # (B, w1, 15, 15)
    layer2: the same                                          # (B, w2, 7, 7)
    layer3: the same                                          # (B, w3, 3, 3)
    global max-pool -> x 1/9 -> linear (no bias)              # (B, classes)

- The first layer is a fixed patch-whitening conv: the eigenvectors of the covariance of the
  training set's 2x2 patches, scaled by 1/sqrt(eigenvalue), and their negatives (so that the
  GELU passes both signs). `init_from_data(images)` sets it; only its bias trains.
- BatchNorm has no learnable scale (only a shift), eps 1e-12, and a fast running average
  (PyTorch momentum 0.4, i.e. airbench's 0.6).
- Every 3x3 conv starts as a (partial) identity (`dirac_` on its first in-channels filters): an
  implicit residual at initialisation.
- The classifier sees the pooled features times 1/9 (airbench's output scale, applied before the
  linear layer: the same logits and the same gradients, and `classifier(embedding) == logits`).

`fast_resnet` adds an explicit residual pair of convs to chosen stages (`depths`: 2 = the
airbench group, 3 = a residual pair after the pooled conv, as in the ResNet-9 of DAWNBench).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .head import ClassifierHead
from .registry import CIFAR_MEAN, CIFAR_STD, register_model

CIFAR_ENTRY = {"input_size": (3, 32, 32), "num_classes": 10, "mean": CIFAR_MEAN, "std": CIFAR_STD, "resize": 32}
OUTPUT_SCALE = 1 / 9


class ShiftBatchNorm(nn.BatchNorm2d):
    """BatchNorm with a learnable shift and no learnable scale (the scale is fixed at 1)."""

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12):
        super().__init__(channels, eps=eps, momentum=momentum, affine=False)
        self.bias = nn.Parameter(torch.zeros(channels))  # BatchNorm's forward applies weight=None, bias=this


class IdentityInitConv(nn.Conv2d):
    """3x3 'same' conv without bias whose first in_channels filters start as the identity."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(in_ch, out_ch, kernel_size=3, padding=1, bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            nn.init.dirac_(self.weight[: min(self.in_channels, self.out_channels)])


class Whitening(nn.Module):
    """A fixed k x k patch-whitening conv (weights are a buffer, set from data) with a trainable bias."""

    def __init__(self, in_ch: int = 3, kernel_size: int = 2):
        super().__init__()
        self.out_channels = 2 * in_ch * kernel_size**2
        weight = torch.empty(self.out_channels, in_ch, kernel_size, kernel_size)
        nn.init.kaiming_uniform_(weight, a=5**0.5)  # a placeholder until init_from_data
        self.register_buffer("weight", weight)
        self.bias = nn.Parameter(torch.zeros(self.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Eigenvectors of the patch covariance of normalised `images` (N, C, H, W), scaled to unit variance."""
        c, k = self.weight.shape[1], self.weight.shape[2]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())
        eigenvalues, eigenvectors = eigenvalues.flip(0).float(), eigenvectors.flip(1).float()  # largest first
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).reshape(-1, c, k, k)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))


class ConvGroup(nn.Module):
    """conv -> maxpool -> BN -> GELU -> conv -> BN -> GELU, plus (depth 3) a residual pair of convs."""

    def __init__(self, in_ch: int, out_ch: int, depth: int = 2, bn_momentum: float = 0.4):
        super().__init__()
        if depth not in (2, 3):
            raise ValueError(f"a group has depth 2 or 3, not {depth}")
        self.conv1 = IdentityInitConv(in_ch, out_ch)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = ShiftBatchNorm(out_ch, bn_momentum)
        self.act1 = nn.GELU()
        self.conv2 = IdentityInitConv(out_ch, out_ch)
        self.norm2 = ShiftBatchNorm(out_ch, bn_momentum)
        self.act2 = nn.GELU()
        self.residual = depth == 3
        if self.residual:
            self.conv3 = IdentityInitConv(out_ch, out_ch)
            self.norm3 = ShiftBatchNorm(out_ch, bn_momentum)
            self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.pool(x)
        x = self.norm1(x)
        x = self.act1(x)
        if not self.residual:
            x = self.conv2(x)
            x = self.norm2(x)
            return self.act2(x)
        out = self.act2(self.norm2(self.conv2(x)))
        out = self.act3(self.norm3(self.conv3(out)))
        return x + out


class FastCifarNet(ClassifierHead, nn.Module):
    """Patch whitening, three pooled conv groups, global max-pool, scaled linear classifier."""

    feature_names = ["whiten", "layer1", "layer2", "layer3"]
    feature_aliases = {"whiten": "whiten_act"}

    def __init__(self, num_classes: int = 10, widths=(64, 256, 256), depths=(2, 2, 2), whiten_kernel: int = 2,
                 bn_momentum: float = 0.4):
        super().__init__()
        widths, depths = tuple(int(w) for w in widths), tuple(int(d) for d in depths)
        if len(widths) != 3 or len(depths) != 3 or min(widths) < 1:
            raise ValueError(f"widths and depths need three positive values (one per stage), got {widths} and {depths}")
        self.whiten = Whitening(3, whiten_kernel)
        self.whiten_act = nn.GELU()
        self.layer1 = ConvGroup(self.whiten.out_channels, widths[0], depths[0], bn_momentum)
        self.layer2 = ConvGroup(widths[0], widths[1], depths[1], bn_momentum)
        self.layer3 = ConvGroup(widths[1], widths[2], depths[2], bn_momentum)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        self.num_features = widths[2]

    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the whitening layer from normalised training images (airbench uses 5,000)."""
        self.whiten.init_from_data(images)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.whiten(x)  # (B, 24, 31, 31)
        x = self.whiten_act(x)
        x = self.layer1(x)  # (B, w1, 15, 15)
        x = self.layer2(x)  # (B, w2, 7, 7)
        x = self.layer3(x)  # (B, w3, 3, 3)
        return x

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(x), 1) * OUTPUT_SCALE  # (B, w3): global max, scaled


@register_model("cifar_fast", **CIFAR_ENTRY)
def airbench94(num_classes: int = 10, widths: tuple = (64, 256, 256), bn_momentum: float = 0.4) -> FastCifarNet:
    """airbench94 (Jordan 2024): 94% on CIFAR-10 in 3.8 s on an A100, 0.36 PFLOP; 2.0M parameters."""
    return FastCifarNet(num_classes, widths, (2, 2, 2), 2, bn_momentum)


@register_model("cifar_fast", **CIFAR_ENTRY)
def fast_resnet(num_classes: int = 10, widths: tuple = (64, 256, 256), depths: tuple = (2, 3, 3),
                bn_momentum: float = 0.4) -> FastCifarNet:
    """airbench94's trunk with residual conv pairs (depth 3) in chosen stages: the ResNet-9 idea, whitened."""
    return FastCifarNet(num_classes, widths, depths, 2, bn_momentum)
