"""A self-supervised run from the command line, then everywhere a run works: embed --run, search,
eval-retrieval, viz, report, eval-ssl; and one clear line where it cannot (predict, eval-classifier)."""

from __future__ import annotations

import json

import pytest

from ..search.test_cli_search import run_cli
from .test_train import colour_images


@pytest.mark.slow
def test_ssl_run_from_the_cli_works_where_a_run_works(tmp_path, capsys):
    photos = colour_images(tmp_path / "photos", 8, flat=True)
    labelled = tmp_path / "labelled"
    colour_images(labelled / "train", 6)
    colour_images(labelled / "test", 3, seed=1)
    code, out, err = run_cli(capsys, "train", "ssl_simclr", "--data", photos, "--name", "ssl", "--set", f'run.dir="{tmp_path / "runs"}"',
                             "--set", "run.progress=false", "--set", "run.tensorboard=false", "--set", "data.image_size=8",
                             "--set", "data.workers=0", "--set", "train.batch_size=6", "--set", "train.epochs=2",
                             "--set", "train.amp=off", "--set", f'ssl.knn_data="{labelled}"', "--set", "ssl.knn_k=5")  # fmt: skip
    assert code == 0, err
    run = tmp_path / "runs" / "ssl"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("knn_top1" in r for r in rows)

    index = tmp_path / "index"
    code, out, err = run_cli(capsys, "embed", labelled / "test", "--run", run, "--out", index, "--workers", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["count"] == 9
    query = sorted((labelled / "test" / "red").iterdir())[0]
    code, out, err = run_cli(capsys, "search", index, query, "-k", "3", "--json")
    assert code == 0, err
    assert len(json.loads(out)["hits"]) == 3
    code, out, err = run_cli(capsys, "eval-retrieval", index, "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["queries"] == 9 and 0 <= row["mAP"] <= 1

    code, out, err = run_cli(capsys, "viz", "features", run, query, "--out", tmp_path / "maps.png")
    assert code == 0, err
    assert (tmp_path / "maps.png").stat().st_size > 1000
    code, out, err = run_cli(capsys, "report", run, "--out", tmp_path / "report.html")
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    assert "best kNN top-1" in page and "<h2>Features</h2>" in page and "data:image/png;base64" in page
    assert "Confusion matrix" not in page  # no classifier, no confusion

    code, out, err = run_cli(capsys, "eval-ssl", run, "--data", labelled, "-k", "5", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert 0 <= result["knn_top1"] <= 100 and 0 <= result["probe_top1"] <= 100 and result["count"] == 9
    assert (run / "eval-ssl" / "metrics.json").is_file()
    for bad in (photos, tmp_path / "absent"):  # unlabelled, missing: one line naming --data
        code, out, err = run_cli(capsys, "eval-ssl", run, "--data", bad)
        assert code != 0 and "--data" in err and "labelled" in err and "Traceback" not in err

    for args in (("predict", run, query), ("eval-classifier", run)):
        code, out, err = run_cli(capsys, *args)
        assert code != 0 and "self-supervised backbone without a classifier" in err and "Traceback" not in err
