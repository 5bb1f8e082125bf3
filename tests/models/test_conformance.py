"""Weight compatibility with torchvision, against fixtures made with torchvision's own constructors.

Two sets: ../shared/conformance (ResNets, VGG, AlexNet, GoogLeNet) and tests/models/fixtures (ViTs,
Inception v3; regenerate them with fixtures/make_fixtures.py in a throwaway torchvision venv).
Each fixture holds torchvision's state-dict keys and shapes (in order), its parameter count, and
its eval-mode logits for deterministic weights (`det_weights.py`) on a deterministic input. A zoo
model that matches all of them loads torchvision's published checkpoints and predicts the same.
A fixture whose model is not in the zoo fails here: it is a missing model, not a skipped check.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from reslab.analysis import profile_by_name
from reslab.fileio import atomic_torch_save
from reslab.models import create_model

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = Path(os.environ.get("RESLAB_SHARED", REPO.parent / "shared")) / "conformance"
LOCAL = Path(__file__).resolve().parent / "fixtures"
SPECIAL = {"vit_b_32_384"}  # a fixture of its own shape, checked by its own test below
BIG = {"vit_l_16", "vit_h_14"}  # 60-170 GMACs on a CPU core: slow
FIXTURES = [p for p in sorted(CONFORMANCE.glob("*.json")) + sorted(LOCAL.glob("*.json")) if p.stem not in SPECIAL]
PARAMS = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in BIG else []) for p in FIXTURES]


def det_weights_module(conformance_dir: Path):
    spec = importlib.util.spec_from_file_location("det_weights", conformance_dir / "det_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def det_weights(conformance_dir):
    return det_weights_module(conformance_dir)


def build_with_det_weights(fixture: dict, det_weights, **extra) -> torch.nn.Module:
    # torchvision's keyword arguments are our builder options of the same names (googlenet: aux_logits, ...);
    # built on the meta device, then given the det weights as storage: no random init, no second copy
    with torch.device("meta"):
        model = create_model(fixture["name"], **fixture["torchvision_kwargs"], **extra)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    theirs = [(k, list(s)) for k, s in fixture["state_dict"]]
    assert ours == theirs, "state-dict keys, shapes or order differ from torchvision's"
    assert sum(p.numel() for p in model.parameters()) == fixture["num_params"]
    model.load_state_dict(det_weights.det_state_dict(fixture["state_dict"]), strict=True, assign=True)
    return model.eval()


def assert_logits(logits: torch.Tensor, expected: list, tolerance: float = 1e-4) -> None:
    expected = torch.tensor(expected)
    assert logits.shape == expected.shape
    error = (logits - expected).abs().max().item()
    assert error <= tolerance * expected.abs().max().item(), f"logits differ from torchvision's by {error:.3g}"


@pytest.mark.parametrize("path", PARAMS)
def test_matches_torchvision(path, conformance_dir, det_weights):
    fixture = json.loads(path.read_text())
    model = build_with_det_weights(fixture, det_weights)
    assert fixture["num_params"] == fixture["published_num_params"]
    x = det_weights.det_input(fixture["input"]["shape"], seed=fixture["input"]["seed"])
    with torch.no_grad():
        assert_logits(model(x), fixture["logits"])
    if "aux_logits_train" in fixture:
        # Inception's train-only auxiliary head (batch-norm on the statistics of 2 images, which
        # amplify float rounding: a looser tolerance)
        model.train()
        with torch.no_grad():
            out = model(x)
        assert_logits(out.aux_logits, fixture["aux_logits_train"], tolerance=1e-3)


@pytest.mark.parametrize("path", [p for p in sorted(LOCAL.glob("*.json")) if p.stem not in SPECIAL], ids=lambda p: p.stem)
def test_published_gmacs(path):
    """The profiler's MACs (attention's Q K^T and weights x V included) reproduce torchvision's published GFLOPS."""
    fixture = json.loads(path.read_text())
    options = {k: v for k, v in fixture["torchvision_kwargs"].items() if k != "init_weights"}
    profile = profile_by_name(fixture["name"], tuple(fixture["input"]["shape"][1:]), **options)
    assert round(profile.macs / 1e9, 3) == fixture["published_gmacs"]
    assert profile.params_total == fixture["published_num_params"]


def test_vit_checkpoint_for_another_image_size(tmp_path, conformance_dir, det_weights):
    """A 224-px ViT-B/32 checkpoint loaded into image_size=384: position embeddings interpolated
    as torchvision's `interpolate_embeddings` does, the same logits as torchvision's model."""
    fixture = json.loads((LOCAL / "vit_b_32_384.json").read_text())
    path = tmp_path / "vit_b_32-224.pth"
    atomic_torch_save(det_weights.det_state_dict(fixture["checkpoint_state_dict"]), path)
    model = create_model("vit_b_32", image_size=384, weights=str(path)).eval()
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == [(k, list(s)) for k, s in fixture["state_dict"]]
    x = det_weights.det_input(fixture["input"]["shape"], seed=fixture["input"]["seed"])
    with torch.no_grad():
        assert_logits(model(x), fixture["logits"])
