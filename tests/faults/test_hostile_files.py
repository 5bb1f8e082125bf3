"""A zoo of hostile files (see zoo.py) through verify-data, train, embed, predict and the web upload:
each bad file is named in the outcome with its reason, every good one is used, nothing crashes
(no traceback, no HTTP 500), and a folder link loop is walked once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.cli_tools import run_cli
from reslab.console import printable

from .zoo import restore_permissions, write_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    made = write_zoo(tmp_path_factory.mktemp("zoo"))
    yield made
    restore_permissions(made)


def cli(capsys, *args) -> tuple[int, str, str]:
    code, out, err = run_cli(capsys, *args)
    assert "Traceback" not in out + err
    return code, out, err


def _names(paths) -> set[str]:
    return {Path(p).name for p in paths}


def test_verify_data_names_every_bad_file_once(zoo, capsys):
    code, out, _ = cli(capsys, "data", "verify", zoo.root, "--json", "--workers", "0")
    report = json.loads(out)
    assert code == 1 and report["total"] == len(zoo.files)  # the folder link loop is walked once
    assert _names(b["path"] for b in report["bad"]) == _names(zoo.bad)
    assert all(b["reason"] for b in report["bad"])
    code, out, _ = cli(capsys, "data", "verify", zoo.root, "--workers", "2")  # the table, with worker processes
    assert code == 1 and all(printable(p.name) in out for p in zoo.bad)


def test_train_aborts_naming_the_bad_files_or_trains_around_them(zoo, capsys, caplog, tmp_path):
    common = ["train", "cifar_quick", "--data", zoo.root, "--set", "data.image_size=16", "--set", "data.val_fraction=0",
              "--set", "data.eval_split=none", "--set", "train.batch_size=4", "--set", "train.epochs=1",
              "--set", "data.workers=0", "--set", f'run.dir="{tmp_path}"', "--set", "run.progress=false",
              "--set", "run.tensorboard=false"]
    code, _, err = cli(capsys, *common, "--set", "data.in_memory=no")
    assert code == 1 and f"{len(zoo.bad)} of {len(zoo.files)} images" in err
    # the run can be told to carry on: bad files are replaced by good neighbours, each reported once
    with caplog.at_level("WARNING", logger="reslab"):
        code, _, err = cli(capsys, *common, "--set", "data.max_bad_fraction=0.5", "--set", "data.in_memory=auto", "--name", "on")
    assert code == 0, err
    assert all(printable(p.name) in caplog.text for p in zoo.bad)
    assert (tmp_path / "on" / "model.safetensors").is_file()
    # evaluated on the zoo, the bad files are left out of the scores, not counted through stand-ins
    both = tmp_path / "both"
    both.mkdir()
    for split in ("train", "val"):
        (both / split).symlink_to(zoo.root / "train")
    code, out, err = cli(capsys, "eval-classifier", tmp_path / "on", "--data", both, "--split", "val", "--json",
                         "--out", tmp_path / "eval")
    assert code == 0, err
    assert json.loads(out)["count"] == len(zoo.good)


def test_embed_indexes_the_good_files_and_records_the_bad(zoo, capsys, tmp_path):
    code, out, _ = cli(capsys, "embed", zoo.root, "--out", tmp_path / "index", "--method", "hist", "--workers", "0", "--json")
    report = json.loads(out)
    assert code == 0 and report["count"] == len(zoo.good)
    assert _names(b["path"] if isinstance(b, dict) else b[0] for b in report["bad"]) == _names(zoo.bad)
    code, out, _ = cli(capsys, "embed", zoo.root, "--out", tmp_path / "index", "--method", "hist", "--workers", "2", "--json")
    again = json.loads(out)  # nothing redone, nothing crashes with worker processes either
    assert code == 0 and again["embedded"] == 0 and again["count"] == len(zoo.good)


def test_predict_classifies_the_good_files_and_names_the_bad(zoo, capsys, tmp_path):
    from reslab.models import create_model

    weights = tmp_path / "resnet20.pth"
    torch.save(create_model("resnet20").state_dict(), weights)
    code, out, err = cli(capsys, "predict", "resnet20", "--weights", weights, zoo.root, "--json")
    results = json.loads(out)["results"]
    assert code == 1 and f"{len(zoo.bad)} of {len(zoo.files)} images could not be read" in err
    assert _names(r["image"] for r in results if "predictions" in r) == _names(zoo.good)
    assert _names(r["image"] for r in results if "error" in r) == _names(zoo.bad)


@pytest.fixture(scope="module")
def zoo_index(zoo, tmp_path_factory):
    from reslab.search.embed import EmbedOptions, build_index
    from reslab.embeddings import make_embedder

    index = tmp_path_factory.mktemp("zoo-index") / "index"
    build_index(zoo.root, index, make_embedder("hist"), EmbedOptions(workers=0, progress=False))
    return index


@pytest.fixture(scope="module")
def zoo_weights(tmp_path_factory):
    from reslab.models import create_model

    weights = tmp_path_factory.mktemp("weights") / "resnet20.pth"
    torch.save(create_model("resnet20").state_dict(), weights)
    return weights


# the commands that take one image file: each zoo file as that image
ONE_IMAGE_COMMANDS = {
    "search": lambda f, index, weights: ["search", index, f, "-k", "3"],
    "compare-images hist": lambda f, index, weights: ["compare-images", "--method", "hist", f, f],
    "compare-images orb": lambda f, index, weights: ["compare-images", "--method", "orb", f, f],
    "compare-images sift": lambda f, index, weights: ["compare-images", "--method", "sift", f, f],
    "faces": lambda f, index, weights: ["faces", f],
    "predict": lambda f, index, weights: ["predict", "resnet20", "--weights", weights, f],
}


@pytest.mark.parametrize("command", sorted(ONE_IMAGE_COMMANDS))
def test_commands_on_one_image_answer_or_name_the_file(command, zoo, zoo_index, zoo_weights, capsys):
    for path in zoo.files + [zoo.root / "train" / "odd" / "folder.jpg"]:
        code, out, err = cli(capsys, *ONE_IMAGE_COMMANDS[command](path, zoo_index, zoo_weights))
        if path in zoo.good:
            assert code == 0, (command, path, err)
        else:
            assert code == 1, (command, path, out)
            assert printable(path) in err.replace("\n", ""), (command, path, err)  # rich wraps long lines
            assert len(err.strip().splitlines()) <= 4 and "error:" in err, err  # one message


def test_duplicates_lists_the_zoo_index_with_its_odd_names(zoo, zoo_index, capsys):
    code, out, _ = cli(capsys, "duplicates", zoo_index, "--threshold", "0.5", "--json")
    assert code == 0
    listed = [Path(item["path"]).name for group in json.loads(out) for item in group["items"]]
    assert listed and set(listed) <= _names(zoo.good) and len(set(listed)) == len(listed)
    code, out, _ = cli(capsys, "duplicates", zoo_index, "--threshold", "0.5")  # the table: names escaped, one line each
    assert code == 0 and printable(next(p for p in zoo.good if "\n" in p.name).name) in out


def test_web_upload_of_every_zoo_file_is_an_answer_never_a_500(zoo, zoo_index):
    from fastapi.testclient import TestClient

    from reslab.web.app import create_app

    with TestClient(create_app(zoo_index), raise_server_exceptions=False) as client:
        for path in zoo.files:
            try:  # what a client sends: the file's bytes, nothing where it cannot read them
                data = path.read_bytes() if path.is_file() else b""  # not a pipe, a device, a loop
            except OSError:
                data = b""
            name = printable(path.name)
            answer = client.post("/api/search", files={"image": (name, data, "application/octet-stream")}, data={"k": "3"})
            if path in zoo.good:
                assert answer.status_code == 200, (name, answer.text)
                assert len(answer.json()["hits"]) == 3
            else:
                assert answer.status_code == 415, (name, answer.text)
                assert name in answer.json()["detail"] and "object at 0x" not in answer.json()["detail"]


def test_indexed_files_spoiled_on_disk_are_404s_that_name_only_the_file(tmp_path, monkeypatch):
    # after `embed`, files are truncated, emptied, replaced by text, a bomb header, a link loop, a
    # folder, a pipe, an unreadable file, or removed: the web page answers 404 naming the file (never
    # the server's folders) for the image and its thumbnail, and still finds similar images by vector
    import os

    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    from reslab.search.embed import EmbedOptions, build_index
    from reslab.embeddings import make_embedder
    from reslab.web.app import create_app

    from .zoo import _png_header_claiming

    photos = tmp_path / "photos"
    photos.mkdir()
    names = ["truncated.jpg", "empty.jpg", "text.jpg", "bomb.png", "loop.jpg", "folder.jpg", "pipe.jpg", "locked.jpg",
             "gone.jpg", os.fsdecode(b"caf\xe9.jpg"), "fine.jpg"]
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(photos / name, format="JPEG")
    build_index(photos, tmp_path / "index", make_embedder("hist"), EmbedOptions(workers=0, progress=False))
    jpeg = (photos / "truncated.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.jpg").write_bytes(b"<html>403</html>")
    (photos / "bomb.png").write_bytes(_png_header_claiming(100_000, 100_000))
    for name in ("loop.jpg", "folder.jpg", "pipe.jpg", "gone.jpg", os.fsdecode(b"caf\xe9.jpg")):
        (photos / name).unlink()
    (photos / "loop.jpg").symlink_to("loop.jpg")
    (photos / "folder.jpg").mkdir()
    os.mkfifo(photos / "pipe.jpg")
    readable = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: not str(p).endswith("locked.jpg") and readable(p, mode, **kw))

    with TestClient(create_app(tmp_path / "index"), raise_server_exceptions=False) as client:
        items = client.get("/api/items").json()["items"]
        assert len(items) == len(names)
        for item in items:
            fine = item["name"] == "fine.jpg"
            for url in (item["url"], item["url"] + "?size=256"):
                answer = client.get(url)
                if fine or (url == item["url"] and item["name"] in ("truncated.jpg", "empty.jpg", "text.jpg", "bomb.png")):
                    assert answer.status_code == 200, (url, answer.text)  # the file as it is, served as is
                    continue
                assert answer.status_code == 404, (item["name"], url, answer.status_code, answer.text)
                detail = answer.json()["detail"]
                assert printable(item["name"]) in detail and str(tmp_path) not in detail, detail
            assert client.get(f"/api/items/{item['id']}/similar", params={"k": 3}).status_code == 200
