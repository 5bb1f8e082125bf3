"""The demo's experiments stage end to end, on tiny data and one epoch (the glue, not the budget)."""

from __future__ import annotations

import pytest
from rich.console import Console

from reslab.demos import experiments as demo


@pytest.mark.slow
def test_demo_stage_writes_plot_results_and_report(colour_data, tmp_path, monkeypatch):
    monkeypatch.setattr("reslab.data.digits.write_digits_folder", lambda out, size=32: colour_data)
    monkeypatch.setitem(demo.DEMO, "overrides", demo.DEMO["overrides"] + (
        "train.epochs=1", "train.batch_size=16", "data.workers=0", "run.progress=false", "train.device=cpu"))
    console = Console(record=True, width=200)
    demo.run(tmp_path, console)
    text = console.export_text()
    assert (tmp_path / "degradation" / "degradation.png").is_file()
    assert (tmp_path / "degradation" / "results.json").is_file()
    reports = list(tmp_path.glob("report-*.html"))
    assert len(reports) == 1 and "Grad-CAM" in reports[0].read_text()
    assert "report of the best run" in text and str(reports[0]) in text.replace("\n", "")
