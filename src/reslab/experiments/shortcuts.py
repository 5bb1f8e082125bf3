"""Identity vs projection shortcuts (the paper's Table 3): options A, B and C on one network.

A: zero-padded identity where the shape changes (no extra parameters); B: projections only
where the shape changes; C: projections everywhere. The paper (ImageNet ResNet-34) finds
B slightly better than A and C marginally better than B, and concludes projections are not
essential for the degradation problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .common import ExperimentSetup, RunResult, by_net, fmt_mean_std, mean_std, train_net, write_results
from .depths import count_params

OPTIONS = ("A", "B", "C")
# Table 3, ResNet-34 on ImageNet, 10-crop top-1 / top-5 validation error (%).
PAPER_TABLE3 = {"A": (25.03, 7.76), "B": (24.52, 7.46), "C": (24.19, 7.40)}


def run_shortcuts(setup: ExperimentSetup, model: str = "resnet20", options: Sequence[str] = OPTIONS) -> dict:
    nets = {f"{model}-{o}": o for o in options}
    results = [train_net(setup, net, {"model": {"name": model, "options": {"shortcut": o}}}, seed)
               for seed in setup.seeds for net, o in nets.items()]
    return summarise_shortcuts(setup, results, model, nets)


def summarise_shortcuts(setup: ExperimentSetup, results: Sequence[RunResult], model: str, nets: dict[str, str]) -> dict:
    from ..models import create_model
    from ..plots import plot_bars_with_errors

    out = Path(setup.out)
    grouped = by_net(results)
    rows = []
    table = ["| shortcut | network | params | train error (%) | test error (%) | paper top-1 err. (ResNet-34, ImageNet) | seeds |",
             "|---|---|---|---|---|---|---|"]
    for net, option in nets.items():
        runs = grouped.get(net, [])
        test = [r.final_test_error for r in runs]
        train = [r.final_train_error for r in runs]
        params = sum(p.numel() for p in create_model(model, shortcut=option).parameters())
        rows.append({"option": option, "net": net, "params": params, "train_error": train, "test_error": test,
                     "test_error_mean_std": mean_std(test), "paper_top1_error": PAPER_TABLE3[option][0]})
        table.append(f"| {option} | {model} | {params:,} | {fmt_mean_std(train)} | {fmt_mean_std(test)} | "
                     f"{PAPER_TABLE3[option][0]} | {len(test)} |")
    plot_bars_with_errors([f"option {r['option']}" for r in rows], [r["test_error_mean_std"][0] for r in rows],
                          [r["test_error_mean_std"][1] for r in rows], out / "shortcuts.png", ylabel="test error (%)",
                          title=f"{model}: shortcut options")
    markdown = (f"# Shortcut options A, B, C on {model} (the paper's Table 3)\n\n![shortcuts](shortcuts.png)\n\n"
                + "\n".join(table)
                + f"\n\nParameters without projections ({model}, option A): {count_params(model):,}. "
                "The paper's column is ResNet-34 on ImageNet: it orders the options, it is not a target for CIFAR numbers.")
    summary = {"model": model, "rows": rows}
    write_results(out, "shortcuts", setup, results, summary, markdown)
    return summary
