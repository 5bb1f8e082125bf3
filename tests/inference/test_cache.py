"""The export cache: one export per key, atomic entries, damaged entries detected and rebuilt."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from reslab.inference import cache
from reslab.inference import export as export_module
from reslab.inference.export import cached_onnx, cached_openvino_ir
from reslab.inference.pooling import EmbeddingHead
from reslab.inference.runtimes import RuntimeChoice, build_session, unavailable_reason


@pytest.fixture
def exports(monkeypatch, tmp_path):
    """A fresh cache; counts the ONNX exports."""
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))
    calls = []
    real = export_module.onnx_bytes
    monkeypatch.setattr(export_module, "onnx_bytes", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_exported_once_per_key(resnet20, exports):
    first = cached_onnx(resnet20)
    assert cached_onnx(resnet20) == first and len(exports) == 1
    assert cached_onnx(resnet20, EmbeddingHead("layer2")) != first and len(exports) == 2  # another graph, another entry
    manifest = json.loads((first.parent / cache.MANIFEST).read_text())
    assert manifest["key"]["weights_sha256"] == resnet20.weights_sha256 and manifest["key"]["torch"]
    assert manifest["files"]["model.onnx"]["sha256"] == cache.file_sha256(first)
    assert not [p for p in first.parent.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["flip bytes", "truncate", "drop manifest"])
def test_a_damaged_entry_is_rebuilt_not_trusted(resnet20, exports, damage, caplog):
    path = cached_onnx(resnet20)
    data = bytearray(path.read_bytes())
    if damage == "flip bytes":  # same size: only the hash can tell
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 3]))
    else:
        (path.parent / cache.MANIFEST).unlink()
    with caplog.at_level(logging.WARNING, logger="reslab.inference.cache"):
        again = cached_onnx(resnet20)
    assert again == path and len(exports) == 2 and "rebuilding" in caplog.text
    assert cache.entry_problem(path.parent, json.loads((path.parent / cache.MANIFEST).read_text())["key"]) is None
    session = build_session(resnet20, RuntimeChoice("onnxruntime", "fp32"))
    assert session.run(np.zeros((1, 3, 32, 32), np.float32))[1].shape == (1, 10)


def test_an_entry_that_hashes_right_but_does_not_load_is_rebuilt_once(resnet20, exports):
    path = cached_onnx(resnet20)
    path.write_bytes(b"not an onnx model")
    manifest = json.loads((path.parent / cache.MANIFEST).read_text())
    manifest["files"]["model.onnx"] = {"size": path.stat().st_size, "sha256": cache.file_sha256(path)}
    (path.parent / cache.MANIFEST).write_text(json.dumps(manifest))  # as if the export itself had been bad
    session = build_session(resnet20, RuntimeChoice("onnxruntime", "fp32"))
    assert session.run(np.zeros((2, 3, 32, 32), np.float32))[0].shape == (2, 64) and len(exports) == 2


def test_an_interrupted_build_leaves_nothing_behind(resnet20, monkeypatch, tmp_path):
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "cache"))

    def killed(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "onnx_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        cached_onnx(resnet20)
    assert list((tmp_path / "cache" / "inference" / "onnx").iterdir()) == []


def test_openvino_ir_keeps_fp32_weights_and_is_cached(resnet20, exports):
    if unavailable_reason("openvino"):
        pytest.skip(unavailable_reason("openvino"))
    xml = cached_openvino_ir(resnet20)
    assert cached_openvino_ir(resnet20) == xml and len(exports) == 1
    weights_bytes = sum(p.numel() * 4 for p in resnet20.network.parameters())
    assert (xml.parent / "model.bin").stat().st_size >= 0.9 * weights_bytes  # not compressed to fp16
