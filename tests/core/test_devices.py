"""The one device policy behind every --device and train.device."""

from __future__ import annotations

import pytest
import torch

from reslab.devices import resolve_device
from reslab.errors import ReslabError


def test_auto_is_cuda_when_there_is_one_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name, words", [("gpu0", "not a device"), ("cuda:x", "not a device"), ("meta", "not supported")])
def test_bad_names_are_one_sentence_naming_the_setting(name, words):
    with pytest.raises(ReslabError, match=f"train.device '{name}'.*{words}"):
        resolve_device(name, setting="train.device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ReslabError, match="--device 'cuda' needs a CUDA GPU but none is available; use auto or cpu"):
        resolve_device("cuda")
