"""ONNX export: ONNX Runtime outputs match PyTorch, for logits, embeddings and the `embed --onnx` path."""

from pathlib import Path

import numpy as np
import pytest
import torch

from reslab.search.embedders import CnnEmbedder
from reslab.search.onnx_export import export_model, ort_session


@pytest.mark.parametrize("embedding", [pytest.param(False, marks=pytest.mark.slow), True])
def test_export_matches_pytorch_with_dynamic_batch(tmp_path, embedding):
    path, diff = export_model("resnet18", tmp_path / "m.onnx", weights=None, embedding=embedding)
    assert diff < 1e-4
    session = ort_session(path)
    for batch in (1, 5):  # the batch axis is dynamic
        out = session.run(None, {"images": np.zeros((batch, 3, 224, 224), np.float32)})[0]
        assert out.shape == (batch, 512 if embedding else 1000)


def test_onnx_embedder_matches_torch_embedder(tmp_path, monkeypatch):
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path))
    torch.manual_seed(0)
    emb = CnnEmbedder(model="resnet18", weights=None, device="cpu", onnx=True)
    rng = np.random.default_rng(0)
    batch = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(3)]
    via_onnx = emb.embed(batch)
    assert list(tmp_path.glob("onnx/resnet18-*.onnx"))  # exported once into the cache
    emb.use_onnx = False
    via_torch = emb.embed(batch)
    np.testing.assert_allclose(via_onnx, via_torch, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(via_onnx, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("args", [["--out", "m.onnx", "--embedding-head"], ["--onnx", "m.onnx", "--embedding"]])
def test_export_cli_takes_the_shared_spelling_and_the_old_one(monkeypatch, args):
    from typer.testing import CliRunner

    from reslab.cli import _load_commands, app
    from reslab.search import onnx_export

    calls = []
    monkeypatch.setattr(onnx_export, "export_model", lambda model, out, **kw: calls.append((model, out, kw)) or (out, 0.0))
    _load_commands()
    result = CliRunner().invoke(app, ["export", "resnet20", *args])
    assert result.exit_code == 0, result.output
    assert calls == [("resnet20", Path("m.onnx"), {"weights": "imagenet", "run": None, "embedding": True})]
    missing = CliRunner().invoke(app, ["export", "resnet20"])
    assert missing.exit_code == 2 and "--out" in missing.output
