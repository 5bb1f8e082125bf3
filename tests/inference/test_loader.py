"""`reslab.inference.load` on its three kinds of spec: a zoo name, a trained run, an exported file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reslab.errors import ReslabError
from reslab.inference import load
from reslab.inference.export import export_onnx_file
from reslab.models import create_model
from reslab.preprocess import EvalPreprocess

from .conftest import write_run


def test_zoo_name_with_a_weights_tag_has_imagenet_classes():
    m = load("efficientnet_lite0", "imagenet")
    assert m.kind == "zoo" and m.is_torch and m.name == "efficientnet_lite0"
    assert m.classes[285] == "Egyptian cat" and len(m.classes) == 1000
    assert m.embedding_dim == 1280 and m.preprocess == EvalPreprocess.for_model("efficientnet_lite0")
    assert not m.network.training and m.source == "efficientnet_lite0, weights imagenet"


def test_zoo_name_with_a_weights_file_and_random_weights(resnet20_file):
    m = load("resnet20", str(resnet20_file))
    assert m.classes == [str(i) for i in range(10)] and m.embedding_dim == 64
    expected = create_model("resnet20")
    expected.load_state_dict(torch.load(resnet20_file, weights_only=True))
    assert all(torch.equal(a, b) for a, b in zip(m.network.state_dict().values(), expected.state_dict().values()))
    assert m.weights_sha256 == load("resnet20", str(resnet20_file)).weights_sha256  # the weights, not the object
    random = load("resnet20")
    assert random.classes is None and "random weights" in random.source  # a random head means nothing
    assert random.weights_sha256 != m.weights_sha256


def test_run_folder_checkpoint_and_safetensors(tmp_path):
    run = write_run(tmp_path / "run")
    for spec in (run, run / "model.safetensors"):
        m = load(spec)
        assert m.kind == "run" and m.name == "resnet20" and m.classes == ["ant", "bee", "cicada"]
        assert m.preprocess.crop == 32 and m.preprocess.mean == (0.5, 0.5, 0.5)
        assert m.config["model"]["num_classes"] == 3 and m.embedding_dim == 64
    with pytest.raises(ReslabError, match="carries its own weights"):
        load(run, "imagenet")


def test_exported_file_carries_preprocessing_and_classes(tmp_path):
    run = load(write_run(tmp_path / "run"))
    path, diff = export_onnx_file(run, tmp_path / "run.onnx")
    assert diff < 1e-4
    m = load(path)
    assert m.kind == "exported" and not m.is_torch
    assert (m.name, m.classes, m.preprocess, m.embedding_dim) == ("resnet20", run.classes, run.preprocess, 64)
    with pytest.raises(ReslabError, match="PyTorch network"):
        m.torch_network("drawing feature maps needs")


def test_a_zoo_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    write_run(tmp_path / "resnet20")
    monkeypatch.chdir(tmp_path)
    assert load("resnet20").kind == "zoo"
    assert load("./resnet20").kind == "run"


@pytest.mark.parametrize("spec, message", [
    ("runs/missing-run", "does not exist"),
    ("missing.onnx", "does not exist"),
    ("resnet2O", "unknown model 'resnet2O'; did you mean"),
])
def test_bad_specs_are_one_clear_error(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ReslabError, match=message):
        load(spec)


def test_foreign_and_damaged_onnx_files_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), foreign)
    with pytest.raises(ReslabError, match="not written by `reslab export`"):
        load(foreign)
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ReslabError, match="not a readable ONNX file"):
        load(damaged)


def test_cli_export_then_predict_from_the_file(tmp_path, capsys, resnet20_file):
    from PIL import Image

    from .conftest import run_cli

    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(image)
    assert run_cli(["export", "resnet20", "--weights", str(resnet20_file), "--out", str(tmp_path / "r20.onnx")]) == 0
    assert "max abs diff" in capsys.readouterr().out
    import json

    results = {}
    for spec, runtime in (("resnet20", "torch"), (str(tmp_path / "r20.onnx"), "onnxruntime")):
        weights = ["--weights", str(resnet20_file)] if spec == "resnet20" else []
        assert run_cli(["predict", spec, *weights, str(image), "--runtime", runtime, "--json", "-k", "3"]) == 0
        results[runtime] = json.loads(capsys.readouterr().out)["results"][0]["predictions"]
    assert [p["label"] for p in results["torch"]] == [p["label"] for p in results["onnxruntime"]]
    assert [p["probability"] for p in results["torch"]] == pytest.approx([p["probability"] for p in results["onnxruntime"]], abs=1e-5)


@pytest.mark.parametrize("spelling", [["--onnx", "{out}", "--embedding"], ["--run", "{run}", "--onnx", "{out}", "--embedding-head"]])
def test_export_keeps_its_older_spellings(tmp_path, capsys, run_folder, spelling):
    """`--onnx PATH`, `--run FOLDER` and `--embedding(-head)` predate the shared vocabulary and still work."""
    from .conftest import run_cli

    out = tmp_path / "old.onnx"
    args = [a.format(out=out, run=run_folder) for a in spelling]
    assert run_cli(["export", "resnet20", *args]) == 0, capsys.readouterr()
    assert load(out).classes == (["ant", "bee", "cicada"] if "--run" in args else None)
    assert run_cli(["export", "resnet20"]) == 2 and "--out" in capsys.readouterr().err
