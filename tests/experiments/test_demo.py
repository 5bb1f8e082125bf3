"""The demo's training and experiments stages end to end, on tiny data and one epoch (the glue, not the budget)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from reslab.demos import common
from reslab.demos import experiments as experiments_stage
from reslab.demos import train as train_stage


@pytest.mark.slow
def test_demo_stages_share_their_runs_and_write_plots_results_and_report(colour_data, tmp_path, monkeypatch):
    monkeypatch.setattr("reslab.data.digits.write_digits_folder", lambda out, size=32: colour_data)
    monkeypatch.setitem(common.DEMO_PRESET, "overrides", common.DEMO_PRESET["overrides"] + (
        "train.epochs=1", "train.batch_size=16", "data.workers=0", "run.progress=false", "train.device=cpu"))
    console = Console(record=True, width=200)
    train_stage.run(tmp_path / "train", console)
    assert (tmp_path / "train" / "resnet20_vs_plain20.png").is_file()
    assert json.loads((tmp_path / "train" / "eval-resnet20" / "metrics.json").read_text())["count"] > 0
    trained = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/model.safetensors")}
    assert {p.parent.name for p in trained} == {"resnet20-s0", "plain20-s0"}

    experiments_stage.run(tmp_path / "experiments", console)
    out = tmp_path / "experiments"
    assert (out / "degradation" / "degradation.png").is_file() and (out / "degradation" / "results.json").is_file()
    # the 20-layer nets of the train stage are reused, not trained again
    assert {p: p.stat().st_mtime_ns for p in trained} == trained
    assert len(list((tmp_path / "runs").glob("*/model.safetensors"))) == 4
    reports = list(out.glob("report-*.html"))
    assert len(reports) == 1 and "Grad-CAM" in reports[0].read_text()
    text = console.export_text()
    assert "torch threads:" in text and "report of the best run" in text and str(reports[0]) in text.replace("\n", "")


@pytest.mark.parametrize("slower, expected", [("many", 1), ("one", 2)])
def test_the_demo_keeps_the_faster_thread_count_and_stops_a_losing_probe_early(monkeypatch, slower, expected):
    import torch

    # a clock where the slower setting takes ten times as long per step (no real timing)
    now = [0.0]

    def perf_counter():
        many = torch.get_num_threads() > 1
        now[0] += 10.0 if many == (slower == "many") else 1.0
        return now[0]

    monkeypatch.setattr(common.time, "perf_counter", perf_counter)
    monkeypatch.setattr("reslab.provenance.cores", lambda: 2)
    tiny = lambda name: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * common.IMAGE_SIZE**2, 10))  # noqa: E731
    monkeypatch.setattr("reslab.models.create_model", tiny)
    threads_before = torch.get_num_threads()
    console = Console(record=True, width=200)
    try:
        assert common.use_free_cores(console, steps=3) == expected
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(threads_before)
    text = console.export_text()
    assert f"torch threads: {expected}" in text
    assert ("stopped early" in text) == (slower == "many")


def test_demo_command_prints_and_records_each_stage_time(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from reslab.cli import _load_commands, app
    from reslab.demos import search, zoo

    ran = []
    monkeypatch.setattr(zoo, "run", lambda out, console: ran.append(("zoo", out)))
    monkeypatch.setattr(search, "run", lambda out, console: ran.append(("search", out)))
    _load_commands()
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--stage", "zoo", "--stage", "search"],
                                env={"COLUMNS": "80"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ran == [("zoo", tmp_path / "zoo"), ("search", tmp_path / "search")]
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert list(timings["stages_s"]) == list(timings["stages_cpu_s"]) == ["zoo", "search"]
    assert timings["total_s"] == pytest.approx(sum(timings["stages_s"].values()))
    assert timings["total_cpu_s"] == pytest.approx(sum(timings["stages_cpu_s"].values()))
    assert timings["machine"]["cores"] >= 1 and "git_commit" in timings  # with its provenance
    assert "CPU-seconds" in result.output and "demo finished in" in result.output
