"""`--store milvus:///...` through the CLI and the web app: embed -> search -> duplicates -> eval -> serve -> copy."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from reslab.web.app import create_app

from ..web.conftest import write_photos
from .test_cli_search import run_cli

pytest.importorskip("milvus_lite", reason="the Milvus store tests need milvus-lite (pip install 'reslab[milvus]')")


def rounded(value):
    """JSON with floats to 5 decimals: the two stores compute inner products with different float32 code."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def test_milvus_store_from_the_cli_and_the_web_page(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_photos(photos)  # 4 subjects x (original, mirror, 3/4 crop)
    store = f"milvus://{tmp_path / 'search.db'}"
    index = tmp_path / "photos.index"
    # a bag of visual words: its vocabulary must travel with the index into Milvus and back
    code, out, err = run_cli(capsys, "embed", photos, "--out", index, "--store", store, "--method", "orb", "--param", "vocab_size=16", "--workers", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["count"] == 12
    assert json.loads((index / "manifest.json").read_text())["collection"] == "photos"
    assert not (index / "items.sqlite").exists()  # the items live in Milvus

    code, out, err = run_cli(capsys, "index", "copy", index, tmp_path / "local-copy", "--json")
    assert code == 0, err
    assert json.loads(out)["items"] == 12
    local = tmp_path / "local-copy"

    query = tmp_path / "query.jpg"
    ImageOps.mirror(Image.open(photos / "coffee" / "coffee.jpg")).save(query)
    for where in ([index], ["photos", "--store", store], [local]):  # the folder, the name in its store, the local copy
        code, out, err = run_cli(capsys, "search", *where, query, "-k", "3", "--json")
        assert code == 0, err
        assert json.loads(out)["hits"][0]["path"] == str(photos / "coffee" / "coffee_mirror.jpg")

    def same_from_both(*args):
        command, options = args[: args.index("INDEX")], args[args.index("INDEX") + 1 :]
        (code_m, out_m, err_m), (code_l, out_l, _) = run_cli(capsys, *command, index, *options), run_cli(capsys, *command, local, *options)
        assert code_m == code_l == 0, err_m
        return rounded(json.loads(out_m)), rounded(json.loads(out_l))

    groups, local_groups = same_from_both("duplicates", "INDEX", "--threshold", "0.8", "--json")
    assert groups and groups == local_groups
    scores, local_scores = same_from_both("eval-retrieval", "INDEX", "--cutoffs", "1,3", "--json")
    assert scores[0]["queries"] == 12 and {k: v for k, v in scores[0].items() if k != "index"} == {k: v for k, v in local_scores[0].items() if k != "index"}
    info, local_info = same_from_both("index", "info", "INDEX", "--json")
    assert (info["store"], local_info["store"], info["items"], info["embedder"]) == ("milvus", "local", 12, local_info["embedder"])

    upload = io.BytesIO()
    Image.open(photos / "chelsea" / "chelsea.jpg").save(upload, format="JPEG", quality=80)
    answers = []
    for served in (index, local):  # the page and its API answer the same from both stores
        with TestClient(create_app(served)) as client:
            assert client.get("/api/info").json()["count"] == 12
            items = client.get("/api/items", params={"limit": 100}).json()["items"]
            ids = {it["name"]: it["id"] for it in items}
            similar = client.get(f"/api/items/{ids['rocket.jpg']}/similar", params={"k": 3}).json()
            r = client.post("/api/search", files={"image": ("q.jpg", upload.getvalue(), "image/jpeg")}, data={"k": "3"})
            assert r.status_code == 200 and r.json()["hits"][0]["label"] == "chelsea"
            assert client.get(f"/api/image/{ids['coffee.jpg']}").status_code == 200
            assert client.get("/api/items/999").status_code == 404
            answers.append(rounded((items, similar, r.json())))
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    "args, words",
    [
        (["search", "photos", "id:1", "--store", "milvus://{tmp}/none.db"], ["no Milvus Lite file", "none.db"]),
        (["search", "photos", "id:1", "--store", "milvus://{tmp}/x.sqlite"], ["ends in .db"]),
        (["search", "photos", "id:1", "--store", "milvus://127.0.0.1:9"], ["cannot connect to Milvus", "127.0.0.1:9"]),
        (["index", "copy", "{tmp}/missing", "{tmp}/dst"], ["no index at"]),
    ],
)
def test_store_mistakes_end_in_one_clear_line(tmp_path, capsys, args, words):
    code, out, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in args])
    line = err.strip()
    assert code == 1 and line.startswith("error:") and "Traceback" not in err, err
    for w in words:
        assert w in line


def test_a_local_index_and_a_milvus_store_of_the_same_name_are_not_confused(tmp_path, capsys, monkeypatch):
    photos = tmp_path / "photos"
    write_photos(photos)
    monkeypatch.chdir(tmp_path)
    store = f"milvus://{tmp_path / 'search.db'}"
    assert run_cli(capsys, "embed", photos, "--out", "other", "--store", store, "--method", "hist", "--workers", "0")[0] == 0
    assert run_cli(capsys, "embed", photos, "--out", "local", "--method", "hist", "--workers", "0")[0] == 0
    code, _, err = run_cli(capsys, "search", "local", "id:1", "--store", store)
    assert code == 1 and "local is a local index" in err and "drop --store" in err and "Traceback" not in err
    # an index without a network names that, not 'None'
    code, _, err = run_cli(capsys, "search", "other", "id:1", "--model", "resnet18")
    assert code == 1 and "the index uses no network" in err and "None" not in err
