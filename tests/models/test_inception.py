"""Inception v3: the auxiliary head, the input re-normalisation, and the sizes it accepts.

Weight compatibility with torchvision (keys, logits, the aux head's output) is checked in
test_conformance.py; published parameters and GMACs there too.
"""

from __future__ import annotations

import pytest
import torch

from reslab.errors import ReslabError
from reslab.models import create_model, model_entry
from reslab.models.inception import InceptionOutputs
from reslab.train.engine import aux_loss_weight


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("inception_v3", num_classes=7)


def test_aux_head_only_in_training(model):
    x = torch.randn(2, 3, 299, 299)
    model.train()
    out = model(x)
    assert isinstance(out, InceptionOutputs) and out.logits.shape == out.aux_logits.shape == (2, 7)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 7)


def test_without_aux_logits_there_is_no_head():
    model = create_model("inception_v3", aux_logits=False, init_weights=False)
    assert not any(k.startswith("AuxLogits") for k in model.state_dict())
    model.train()
    assert isinstance(model(torch.randn(2, 3, 160, 160)), torch.Tensor)  # no aux head: 299 is not needed


def test_transform_input_is_torchvisions_renormalisation():
    model = create_model("inception_v3", transform_input=True, init_weights=False)
    x = torch.randn(2, 3, 8, 8)
    expected = torch.cat(
        [x[:, i : i + 1] * (s / 0.5) + (m - 0.5) / 0.5 for i, (m, s) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))],
        1,
    )
    torch.testing.assert_close(model._transform_input(x), expected)
    # equivalently: undo ImageNet normalisation, then map [0, 1] to [-1, 1]
    pixels = torch.rand(2, 3, 8, 8)
    mean, std = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    torch.testing.assert_close(model._transform_input((pixels - mean) / std), pixels * 2 - 1)


def test_registry_entry_is_299_pixels():
    entry = model_entry("inception_v3")
    assert entry.input_size == (3, 299, 299) and entry.resize == 342


def test_loss_weight_of_the_aux_head():
    assert aux_loss_weight(-1.0, create_model("inception_v3", init_weights=False)) == 0.4
    assert aux_loss_weight(-1.0, create_model("googlenet", init_weights=False)) == 0.3
    assert aux_loss_weight(0.1, create_model("inception_v3", init_weights=False)) == 0.1


def test_too_small_inputs_name_the_size_and_the_fix(model):
    model.eval()
    with pytest.raises(ReslabError, match="at least 75x75.*resize"):
        model(torch.randn(1, 3, 64, 64))
    model.train()
    with pytest.raises(ReslabError, match="auxiliary classifier.*299x299.*aux_logits=False"):
        model(torch.randn(2, 3, 224, 224))
