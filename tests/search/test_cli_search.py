"""The search commands end to end through the CLI entry point: results, JSON, one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.cli_tools import run_cli

pytestmark = pytest.mark.data


def test_embed_search_duplicates_eval_from_the_cli(hymenoptera_root, tmp_path, capsys, photo_copier):
    photos = photo_copier(hymenoptera_root, tmp_path / "photos", 5, split="val")
    index = tmp_path / "index"
    code, out, err = run_cli(capsys, "embed", photos, "--out", index, "--workers", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["count"] == 10

    original = sorted((photos / "bees").iterdir())[2]
    query = tmp_path / "query.jpg"
    query.write_bytes(original.read_bytes())  # an image from outside the index
    code, out, _ = run_cli(capsys, "search", index, query, "-k", "3", "--json")
    hits = json.loads(out)["hits"]
    # the default DBA + QE score in the index's space: an identical image scores just below 1
    assert code == 0 and hits[0]["path"] == str(original) and hits[0]["score"] == pytest.approx(1.0, abs=0.01)
    for q in (f"id:{hits[0]['id']}", original):  # an indexed item, by id or by path: itself excluded
        code, out, _ = run_cli(capsys, "search", index, q, "-k", "3", "--json")
        found = json.loads(out)["hits"]
        assert code == 0 and len(found) == 3 and all(h["id"] != hits[0]["id"] for h in found)

    code, out, _ = run_cli(capsys, "eval-retrieval", index, "--cutoffs", "1,3", "--json", "--plot", tmp_path / "p.png")
    row = json.loads(out.split("wrote")[0])[0]
    assert code == 0 and 0 <= row["P@1"] <= 1 and row["queries"] == 10 and (tmp_path / "p.png").stat().st_size > 0

    code, out, _ = run_cli(capsys, "duplicates", index, "--threshold", "0.999", "--json")
    assert code == 0 and json.loads(out) == []  # ten distinct photos


@pytest.mark.parametrize(
    "args, words",
    [
        (["search", "{index}", "id:1", "--model", "resnet50"], ["efficientnet_lite0", "resnet50"]),
        (["search", "{index}", "id:1", "--method", "hog"], ["cnn", "hog"]),
        (["embed", "{photos}", "--out", "{index}", "--model", "resnet18"], ["efficientnet_lite0", "resnet18"]),
        (["search", "{index}", "id:999", "-k", "3"], ["999"]),
        (["search", "{index}", f"id:{2**64}", "-k", "3"], [str(2**64)]),  # beyond SQLite's integers
        (["search", "{index}", "nowhere.jpg"], ["nowhere.jpg"]),
        (["search", "{photos}", "id:1"], ["not a reslab index"]),
    ],
)
def test_mistakes_end_in_one_clear_line(hymenoptera_root, tmp_path_factory, capsys, photo_copier, args, words):
    base = tmp_path_factory.getbasetemp() / "cli-index"
    photos, index = base / "photos", base / "index"
    if not (index / "faiss.index").exists():
        photo_copier(hymenoptera_root, photos, 2, split="val")
        assert run_cli(capsys, "embed", photos, "--out", index, "--workers", "0")[0] == 0
    code, out, err = run_cli(capsys, *[a.format(index=index, photos=photos) for a in args])
    assert code == 1
    line = err.strip()
    assert line.startswith("error:") and "Traceback" not in err
    for w in words:
        assert w in line
