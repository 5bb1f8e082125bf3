"""`reslab.predict` and `reslab predict`: probabilities against hand computations, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.labels import imagenet_classes
from reslab.models import create_model
from reslab.predict import predict
from reslab.preprocess import EvalPreprocess


class MeanColourNet(nn.Module):
    """Logits = W @ (mean R, G, B) + b: simple enough to compute by hand."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0], [1.0, 1.0, 1.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, 0.5, 0.0, 0.0]))

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


IDENTITY = EvalPreprocess(crop=8, resize=8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
LABELS = ["red", "green", "blue", "grey"]


def solid(rgb) -> Image.Image:
    return Image.new("RGB", (8, 8), tuple(rgb))


def hand_softmax(rgb) -> np.ndarray:
    m = np.asarray(rgb, dtype=np.float64) / 255.0
    logits = np.array([4 * m[0], 4 * m[1] + 0.5, 4 * m[2], m.sum()])
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_probabilities_and_order_match_a_hand_computation(tmp_path):
    colours = [(255, 0, 0), (30, 128, 60), (10, 20, 250), (200, 190, 210), (5, 0, 40)]  # no ties
    path = tmp_path / "blue.png"
    solid(colours[2]).save(path)
    images = [solid(colours[0]), solid(colours[1]), path, solid(colours[3]), solid(colours[4])]
    results = predict(MeanColourNet(), images, IDENTITY, LABELS, top_k=3, batch_size=2)
    assert len(results) == 5
    for rgb, top in zip(colours, results):
        p = hand_softmax(rgb)
        order = np.argsort(-p)[:3]
        assert [label for label, _ in top] == [LABELS[i] for i in order]
        assert [prob for _, prob in top] == pytest.approx(p[order].tolist(), abs=1e-6)


def test_batching_does_not_change_results_and_mode_is_restored():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).train()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)) for _ in range(5)]
    pre = EvalPreprocess.for_model("resnet20")
    labels = [str(i) for i in range(10)]
    one_batch = predict(model, images, pre, labels, top_k=10, batch_size=32)
    assert model.training  # restored after the call
    small_batches = predict(model, images, pre, labels, top_k=10, batch_size=2)
    for a, b in zip(one_batch, small_batches):
        assert [x[0] for x in a] == [x[0] for x in b]
        assert [x[1] for x in a] == pytest.approx([x[1] for x in b], abs=1e-5)
        assert sum(x[1] for x in a) == pytest.approx(1.0, abs=1e-5)  # top-10 of 10 classes: everything


def test_label_count_must_match_the_head():
    with pytest.raises(ReslabError, match="4 outputs but 2 labels"):
        predict(MeanColourNet(), [solid((1, 2, 3))], IDENTITY, ["a", "b"])


def test_imagenet_labels_are_the_standard_1000():
    names = imagenet_classes()
    assert len(names) == 1000 == len(set(names))
    assert names[0] == "tench" and names[285] == "Egyptian cat" and names[967] == "espresso" and names[999] == "toilet tissue"
    names.append("x")
    assert len(imagenet_classes()) == 1000  # callers get a copy


# --- the CLI --------------------------------------------------------------------------------------


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def resnet20_weights(tmp_path):
    torch.manual_seed(1)
    model = create_model("resnet20").eval()
    path = tmp_path / "resnet20.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_cli_json_equals_the_python_api(tmp_path, capsys, resnet20_weights):
    model, weights = resnet20_weights
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(paths[-1])
    # the API's module runs on PyTorch fp32; the CLI's default (--runtime auto) may pick a runtime that
    # matches fp32 only within reslab.inference.auto.PARITY, so the CLI is pinned to the same runtime here
    args = ["predict", "resnet20", "--weights", str(weights), *map(str, paths), "--top-k", "3", "--json", "--runtime", "torch"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    got = json.loads(out)["results"]
    expected = predict(model, paths, EvalPreprocess.for_model("resnet20"), [str(i) for i in range(10)], top_k=3)
    assert [r["image"] for r in got] == list(map(str, paths))
    for row, exp in zip(got, expected):
        assert [p["label"] for p in row["predictions"]] == [label for label, _ in exp]
        assert [p["probability"] for p in row["predictions"]] == pytest.approx([p for _, p in exp], abs=1e-6)


def test_cli_table_for_a_trained_run(tmp_path, capsys):
    from reslab.train.runs import export_safetensors

    torch.manual_seed(2)
    model = create_model("resnet20", num_classes=3)
    config = {"model": {"name": "resnet20", "num_classes": 3, "options": {}}, "data": {"image_size": 32}}
    pre = EvalPreprocess(crop=32, resize=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    run = tmp_path / "run"
    run.mkdir()
    export_safetensors(run / "model.safetensors", model, config, ["ant", "bee", "cicada"], pre)
    image = tmp_path / "photo.jpg"
    solid((90, 60, 30)).resize((50, 40)).save(image)
    code, out, err = run_cli(["predict", str(run), str(image), "--top-k", "2"], capsys)
    assert code == 0, err
    assert "photo.jpg" in out and sum(name in out for name in ("ant", "bee", "cicada")) == 2


def test_cli_bad_image_is_one_clear_error(tmp_path, capsys, resnet20_weights):
    _, weights = resnet20_weights
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    code, out, err = run_cli(["predict", "resnet20", "--weights", str(weights), str(bad)], capsys)
    assert code == 1
    assert str(bad) in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_cli_unknown_model_and_missing_weights(tmp_path, capsys):
    image = tmp_path / "a.png"
    solid((1, 2, 3)).save(image)
    code, _, err = run_cli(["predict", "efficientnet_lite", str(image)], capsys)
    assert code == 1 and "did you mean" in err and "efficientnet_lite0" in err
    code, _, err = run_cli(["predict", "vgg11", str(image)], capsys)
    assert code == 1 and "--weights" in err
    code, _, err = run_cli(["predict", "resnet20", "--weights", "x.pth", str(tmp_path / "nope.png")], capsys)
    assert code == 1 and "nope.png" in err


def test_cli_folder_with_a_bad_file_classifies_the_others(tmp_path, capsys, resnet20_weights):
    # issue 12, defect 7: predict on a folder stopped at the first bad file
    _, weights = resnet20_weights
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        solid((200, 10, 10)).resize((40, 40)).save(folder / name)
    (folder / "b.jpg").write_bytes(b"<html>not found</html>")
    code, out, err = run_cli(["predict", "resnet20", "--weights", str(weights), str(folder), "--json"], capsys)
    assert code == 1 and "Traceback" not in err
    results = {Path(r["image"]).name: r for r in json.loads(out)["results"]}
    assert len(results["a.png"]["predictions"]) == len(results["c.png"]["predictions"]) == 5
    assert results["b.jpg"]["error"] and "b.jpg" in err and "1 of 3 images" in err
    code, out, err = run_cli(["predict", "resnet20", "--weights", str(weights), str(folder)], capsys)
    assert code == 1 and out.count("probability") == 2 and "skipped" in out
