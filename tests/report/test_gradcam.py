"""Grad-CAM puts the heat where the evidence for the target class is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.report.gradcam import grad_cam, grad_cam_batch, overlay_heatmap


class ColourDetector(nn.Module):
    """Channel 0 fires on red pixels, channel 1 on green; class k's logit is channel k's mean.

    So the evidence for "red" lies exactly where the image is red: an oracle for Grad-CAM.
    """

    feature_names = ["detect"]

    def __init__(self):
        super().__init__()
        self.detect = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        with torch.no_grad():
            self.detect.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]])[:, :, None, None])

    def forward_features(self, x):
        return torch.relu(self.detect(x))

    def forward_head(self, feats, pre_logits=False):
        pooled = feats.mean(dim=(2, 3))
        return pooled

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _two_patch_image(size=32):
    image = torch.zeros(3, size, size)
    half = size // 2
    image[0, 2 : half - 2, 2 : half - 2] = 1.0  # red, top-left quadrant
    image[1, half + 4 :, half + 4 :] = 0.6  # green, bottom-right quadrant (weaker)
    return image


def _mass_in(cam, rows, cols):
    return cam[rows, cols].sum() / cam.sum()


def test_heat_lies_on_the_target_class_evidence():
    model = ColourDetector()
    image = _two_patch_image()
    red = grad_cam(model, image, target_class=0)
    green = grad_cam(model, image, target_class=1)
    assert red.shape == green.shape == (32, 32)
    assert red.min() >= 0 and red.max() == pytest.approx(1.0)
    assert _mass_in(red, slice(0, 16), slice(0, 16)) > 0.9
    assert _mass_in(green, slice(16, 32), slice(16, 32)) > 0.9
    # the default target is the predicted class: red has the larger mean response
    assert np.allclose(grad_cam(model, image), red)


def test_matches_a_hand_computation_on_a_named_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))
    x = torch.randn(1, 3, 8, 8)
    cam = grad_cam(model, x, target_class=2, layer="3")
    # by hand: activations A of module "3" (the second ReLU), alpha = spatial mean of dy/dA
    a = model[:4](x).detach().requires_grad_(True)
    y = model[4:](a)[0, 2]
    (g,) = torch.autograd.grad(y, a)
    raw = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a.detach()).sum(1))[0]
    expected = (raw / raw.max()).numpy()  # same 8x8 size, so interpolation is the identity
    assert np.allclose(cam, expected, atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_batch_returns_one_map_per_image_and_restores_mode():
    model = ColourDetector().train()
    batch = torch.stack([_two_patch_image(), _two_patch_image().flip(-1)])
    cams, classes = grad_cam_batch(model, batch)
    assert cams.shape == (2, 32, 32) and classes == [0, 0]
    assert model.training
    assert _mass_in(cams[1], slice(0, 16), slice(16, 32)) > 0.9  # flipped: red now top-right


def test_unknown_layer_names_the_choices():
    with pytest.raises(ReslabError, match="detect"):
        grad_cam(ColourDetector(), _two_patch_image(), layer="layer9")


def test_overlay_blends_in_uint8():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    heat = np.zeros((4, 4), dtype=np.float32)
    heat[0, 0] = 1.0
    out = overlay_heatmap(image, heat, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    # jet: hot is red, cold is blue
    assert out[0, 0, 0] > out[3, 3, 0] and out[0, 0, 2] < out[3, 3, 2]
