"""Weight compatibility with torchvision, against the fixtures in ../shared/conformance.

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

from reslab.models import create_model

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = Path(os.environ.get("RESLAB_SHARED", REPO.parent / "shared")) / "conformance"
FIXTURES = sorted(p.stem for p in CONFORMANCE.glob("*.json")) or ["(no fixtures)"]


def det_weights_module(conformance_dir: Path):
    spec = importlib.util.spec_from_file_location("det_weights", conformance_dir / "det_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def det_weights(conformance_dir):
    return det_weights_module(conformance_dir)


@pytest.mark.parametrize("name", FIXTURES)
def test_matches_torchvision(name, conformance_dir, det_weights):
    fixture = json.loads((conformance_dir / f"{name}.json").read_text())
    # torchvision's keyword arguments are our builder options of the same names (googlenet: aux_logits, ...)
    # built on the meta device, then given storage: skips the random init that det weights replace
    with torch.device("meta"):
        model = create_model(fixture["name"], **fixture["torchvision_kwargs"])
    model = model.to_empty(device="cpu").eval()

    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    theirs = [(k, list(s)) for k, s in fixture["state_dict"]]
    assert ours == theirs, "state-dict keys, shapes or order differ from torchvision's"
    assert sum(p.numel() for p in model.parameters()) == fixture["num_params"] == fixture["published_num_params"]

    model.load_state_dict(det_weights.det_state_dict(fixture["state_dict"]), strict=True)
    x = det_weights.det_input(fixture["input"]["shape"], seed=fixture["input"]["seed"])
    with torch.no_grad():
        logits = model(x)
    expected = torch.tensor(fixture["logits"])
    assert logits.shape == expected.shape
    error = (logits - expected).abs().max().item()
    assert error <= 1e-4 * expected.abs().max().item(), f"logits differ from torchvision's by {error:.3g}"
