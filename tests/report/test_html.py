"""The HTML report of a small real run: key numbers from metrics.jsonl and embedded images."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.models import create_model
from reslab.report.compare import compare_runs
from reslab.report.html import read_metrics, report_run, run_summary


def _embedded_pngs(page: str) -> list[Image.Image]:
    images = []
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        im = Image.open(io.BytesIO(base64.b64decode(data)))
        im.load()
        images.append(im)
    return images


def test_report_holds_the_runs_numbers_and_images(tiny_run, tmp_path):
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    out = report_run(tiny_run, out=tmp_path / "report.html")
    page = out.read_text()
    best = max(r["val_top1"] for r in rows)
    assert f"{best:.2f}%" in page
    assert f"{rows[-1]['train_loss']:.4f}" in page
    assert f"<td>epochs</td><td>{rows[-1]['epoch']}</td>" in page
    assert "<td>resnet20</td>" in page
    params = sum(p.numel() for p in create_model("resnet20", num_classes=3).parameters())
    assert f"<td>parameters</td><td>{params:,}</td>" in page
    assert f"{rows[-1]['val_top1']:.2f}%" in page and "code version" in page
    for section in ("Training curves", "Confusion matrix", "Per-class accuracy", "Sample predictions", "Grad-CAM", "Embedding map"):
        assert section in page
    images = _embedded_pngs(page)
    assert len(images) >= 6 and all(im.size[0] > 100 for im in images)
    assert "src=\"http" not in page and "src='http" not in page  # self-contained


def test_report_without_reachable_data_keeps_the_curves(tiny_run, tmp_path):
    # a copy whose config points at data that is not here any more
    copy = tmp_path / "moved"
    shutil.copytree(tiny_run, copy)
    config = (copy / "config.toml").read_text()
    (copy / "config.toml").write_text(re.sub(r'path = ".*"', 'path = "/nowhere/data"', config, count=1))
    page = report_run(copy / "checkpoints" / "last.pt").read_text()  # a checkpoint: carries the original config
    assert "Training curves" in page
    assert len(_embedded_pngs(page)) >= 1


def test_summary_of_rows_and_a_damaged_file(tmp_path):
    rows = [{"epoch": 1, "train_loss": 2.0, "val_top1": 40.0}, {"epoch": 2, "train_loss": 1.5, "val_top1": 55.5},
            {"epoch": 3, "train_loss": 1.2, "val_top1": 52.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = read_metrics(tmp_path)
    assert read == rows
    s = run_summary(read)
    assert (s.best_val_top1, s.best_epoch, s.final_val_top1, s.final_train_loss, s.epochs) == (55.5, 2, 52.0, 1.2, 3)
    (tmp_path / "metrics.jsonl").write_text(json.dumps(rows[0]) + '\n{"epoch": 2, "tr\n')
    with pytest.raises(ReslabError, match="line that is not JSON"):
        read_metrics(tmp_path)


def test_compare_runs_overlays_and_tabulates(tmp_path):
    for name, best in (("a", 61.0), ("b", 70.25)):
        run = tmp_path / name
        run.mkdir()
        rows = [{"epoch": e, "lr": 0.1, "train_loss": 1 / e, "train_top1": 50 + e, "val_loss": 1.2 / e, "val_top1": best - 3 + e}
                for e in range(1, 4)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (run / "config.toml").write_text('[model]\nname = "resnet20"\n')
    paths = compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "cmp")
    md = paths["markdown"].read_text()
    assert "| a | resnet20 | 3 | 61.00 | 61.00 | 0.3333 |" in md
    assert "| b | resnet20 | 3 | 70.25 | 70.25 | 0.3333 |" in md
    with Image.open(paths["curves"]) as im:
        assert im.size[0] > 900


def test_missing_run_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "nope")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    with pytest.raises(ReslabError, match="metrics.jsonl"):
        read_metrics(tmp_path)


def test_report_panels_show_every_class(tiny_run, tmp_path, monkeypatch):
    from reslab import plots

    grids = {}
    real = plots.plot_image_grid

    def spy(images, path, captions=None, caption_colours=None, columns=8, **kw):
        grids[Path(path).stem] = (len(images), captions, columns)
        return real(images, path, captions=captions, caption_colours=caption_colours, columns=columns, **kw)

    monkeypatch.setattr(plots, "plot_image_grid", spy)
    report_run(tiny_run, out=tmp_path / "report.html")
    n, captions, columns = grids["samples"]
    assert columns == 3  # three classes: a column each
    shown, cam_captions, _ = grids["gradcam"]
    classes = {c.removeprefix("true ") for c in cam_captions if c.startswith("true ")}
    assert len(classes) == 3 and shown == 2 * 8  # at least eight images (two tiles each), every class among them
