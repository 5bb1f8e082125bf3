"""CIFAR-10 ResNets of depth 20 to 110 (1202 optionally): the paper's Table 6.

Each depth is trained with the same recipe and printed beside the paper's test error and
parameter count. ResNet-110 (and 1202) warm up at lr 0.01 until the training error is below
80%, as the paper does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .common import Changes, ExperimentSetup, RunResult, by_net, fmt_mean_std, mean_std, train_net, write_results

# depth -> (parameters in millions, test error %) from the paper's Table 6 (110: best of 5 runs;
# the paper gives 6.61 ± 0.16 as the mean).
PAPER_TABLE6 = {20: (0.27, 8.75), 32: (0.46, 7.51), 44: (0.66, 7.17), 56: (0.85, 6.97), 110: (1.7, 6.43), 1202: (19.4, 7.93)}
DEFAULT_DEPTHS = (20, 32, 44, 56, 110)


def depth_changes(depth: int) -> Changes:
    changes: Changes = {"model": {"name": f"resnet{depth}"}}
    if depth >= 110:
        # "we use 0.01 to warm up the training until the training error is below 80% (about 400 iterations)"
        changes["schedule"] = {"warmup_until_error": 80.0, "warmup_until_factor": 0.1}
    return changes


def count_params(name: str) -> int:
    from ..models import create_model

    return sum(p.numel() for p in create_model(name).parameters())


def run_cifar_depths(setup: ExperimentSetup, depths: Sequence[int] = DEFAULT_DEPTHS) -> dict:
    results = [train_net(setup, f"resnet{d}", depth_changes(d), seed) for seed in setup.seeds for d in depths]
    return summarise_cifar_depths(setup, results, {f"resnet{d}": d for d in depths})


def summarise_cifar_depths(setup: ExperimentSetup, results: Sequence[RunResult], nets: dict[str, int]) -> dict:
    from ..plots import plot_bars_with_errors, plot_training_curves

    out = Path(setup.out)
    grouped = by_net(results)
    rows, table = [], ["| network | params (M) | paper params (M) | test error (%) | paper test error (%) | seeds |",
                       "|---|---|---|---|---|---|"]
    for net, depth in sorted(nets.items(), key=lambda kv: kv[1]):
        runs = grouped.get(net, [])
        errors = [r.final_test_error for r in runs]
        params = count_params(net)
        paper_params, paper_error = PAPER_TABLE6.get(depth, (None, None))
        rows.append({"net": net, "depth": depth, "params": params, "paper_params_m": paper_params,
                     "test_error": errors, "test_error_mean_std": mean_std(errors), "paper_test_error": paper_error})
        table.append(f"| {net} | {params / 1e6:.2f} | {paper_params if paper_params is not None else 'n/a'} | "
                     f"{fmt_mean_std(errors)} | {paper_error if paper_error is not None else 'n/a'} | {len(errors)} |")
    plot_bars_with_errors([r["net"] for r in rows], [r["test_error_mean_std"][0] for r in rows],
                          [r["test_error_mean_std"][1] for r in rows], out / "cifar_depths.png", ylabel="test error (%)",
                          title="CIFAR-10 test error by depth", reference=[r["paper_test_error"] for r in rows],
                          reference_label="paper (Table 6)")
    plot_training_curves([(net, runs[0].rows) for net, runs in grouped.items()], out / "cifar_depths_curves.png",
                         metrics=("error", "loss"), title="first seed of every depth")
    note = ("" if setup.preset.name == "full" else
            f"\n\nThese runs use the {setup.preset.name} preset ({setup.preset.description}): compare depths with each other, "
            "not with the paper's column, which needs the full preset (`--preset full`, GPU hours).")
    markdown = ("# CIFAR-10 ResNets by depth (the paper's Table 6)\n\n![errors](cifar_depths.png)\n\n"
                + "\n".join(table) + note + "\n\n![curves](cifar_depths_curves.png)")
    summary = {"rows": rows}
    write_results(out, "cifar-depths", setup, results, summary, markdown)
    return summary
