"""Demo stage `experiments`: the degradation experiment in miniature, then the HTML report of its best run.

Plain and residual nets of depth 20 and 56 on the demo's digits with the demo's recipe
(`demos/common.py`), one seed; the 20-layer nets come from the `train` stage when it ran first.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .common import demo_setup, use_free_cores


def run(out: Path, console: Console) -> None:
    from ..experiments.degradation import run_degradation
    from ..report.html import report_run

    out = Path(out)
    use_free_cores(console)
    setup = demo_setup(out.parent)
    console.print("plain20, plain56, resnet20, resnet56 on digits (the paper's Figure 4 in miniature)")
    summary = run_degradation(setup, depths=(20, 56))
    for sentence in summary["verdict"]:
        console.print(f"  {sentence}")
    best = min(summary["errors"], key=lambda e: e["test_error_mean_std"][0])
    report = report_run(setup.runs_folder / f"{best['net']}-s0", out=out / f"report-{best['net']}.html")
    console.print(f"degradation plot: {setup.out / 'degradation.png'}")
    console.print(f"results:          {setup.out / 'results.md'}")
    console.print(f"report of the best run ({best['net']}, test error {best['test_error_mean_std'][0]:.2f}%): {report}")
