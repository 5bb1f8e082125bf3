"""`reslab experiment ...`: the paper's experiments, quick on a CPU (`--quick`) or its full recipe."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from ..errors import ReslabError
from .app import experiment_app

log = logging.getLogger(__name__)

DATA_HELP = "CIFAR-10: a folder with train/<class>/*.jpg and test/<class>/ (or cifar-10-batches-py)."
QUICK_HELP = "CPU minutes: a CIFAR-10 subset, a few epochs (trends, not the paper's numbers). Without it: the paper's full recipe."
SEEDS_HELP = "Seeds, comma-separated; every network is trained once per seed (mean ± std over seeds)."
SET_HELP = "Override any training config key for every run, e.g. --set train.epochs=10 (repeatable)."


def _setup(data: Path | None, out: Path, quick: bool, seeds: str, overrides: list[str] | None, device: str, need_data: bool = True):
    from ..experiments.common import FULL, QUICK, ExperimentSetup, parse_seeds

    if need_data:
        if data is None:
            raise ReslabError("--data is required: the CIFAR-10 folder (train/ and test/) or cifar-10-batches-py directory")
        if not data.exists():
            raise ReslabError(f"--data {data} does not exist; give the CIFAR-10 folder or cifar-10-batches-py directory")
    if not quick and device in ("auto", "cpu"):
        import torch

        if not torch.cuda.is_available():
            log.warning("the full preset is the paper's recipe (64k iterations per network): GPU hours; add --quick on a CPU")
    return ExperimentSetup(data=str(data) if data else "", out=out, preset=QUICK if quick else FULL,
                           seeds=parse_seeds(seeds), extra=tuple(overrides or ()), device=device)


def _print_lines(lines: list[str]) -> None:
    from rich.console import Console

    console = Console()
    for line in lines:
        console.print(line)


def _print_results_table(out: Path) -> None:
    # results.md opens with the table; the provenance after it ("Preset ...") stays in the file
    _print_lines([(out / "results.md").read_text().split("\n\nPreset")[0]])


def _done(console_paths: list[Path]) -> None:
    from rich.console import Console

    console = Console()
    for p in console_paths:
        console.print(f"wrote {p}")


@experiment_app.command("degradation")
def degradation(
    data: Path = typer.Option(None, help=DATA_HELP),
    out: Path = typer.Option(Path("experiments/degradation"), help="Results folder (runs go to OUT/runs)."),
    quick: bool = typer.Option(False, "--quick", help=QUICK_HELP),
    seeds: str = typer.Option("0", help=SEEDS_HELP),
    depths: str = typer.Option("20,56", help="Depths of the plain and residual CIFAR nets (of 20, 32, 44, 56, 110)."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 ..."),
) -> None:
    """Plain vs residual nets at two or more depths: the paper's Figures 4 and 6 and its verdict."""
    from ..experiments.common import parse_depths
    from ..experiments.degradation import PLAIN_DEPTHS, run_degradation

    setup = _setup(data, out, quick, seeds, set_, device)
    summary = run_degradation(setup, parse_depths(depths, PLAIN_DEPTHS))
    _print_lines(summary["verdict"])
    _done([out / "degradation.png", out / "results.md", out / "results.json"])


@experiment_app.command("cifar-depths")
def cifar_depths(
    data: Path = typer.Option(None, help=DATA_HELP),
    out: Path = typer.Option(Path("experiments/cifar_depths"), help="Results folder (runs go to OUT/runs)."),
    quick: bool = typer.Option(False, "--quick", help=QUICK_HELP),
    seeds: str = typer.Option("0", help=SEEDS_HELP),
    depths: str = typer.Option("20,32,44,56,110", help="ResNet depths (of 20, 32, 44, 56, 110, 1202)."),
    with_1202: bool = typer.Option(False, "--with-1202", help="Also train ResNet-1202 (19.4M parameters)."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 ..."),
) -> None:
    """ResNet-20 to 110 (1202) on CIFAR-10 beside the paper's Table 6 errors and parameter counts."""
    from ..experiments.common import parse_depths
    from ..experiments.depths import PAPER_TABLE6, run_cifar_depths

    setup = _setup(data, out, quick, seeds, set_, device)
    chosen = parse_depths(depths, tuple(PAPER_TABLE6))
    if with_1202 and 1202 not in chosen:
        chosen = (*chosen, 1202)
    run_cifar_depths(setup, chosen)
    _print_results_table(out)
    _done([out / "cifar_depths.png", out / "results.md", out / "results.json"])


@experiment_app.command("layer-responses")
def layer_responses(
    runs: list[Path] = typer.Argument(None, help="Trained runs to measure; without them, plain and residual nets are trained first."),
    data: Path = typer.Option(None, help=DATA_HELP + " Replaces the runs' own data path when given."),
    out: Path = typer.Option(Path("experiments/layer_responses"), help="Results folder (runs trained here go to OUT/runs)."),
    quick: bool = typer.Option(False, "--quick", help=QUICK_HELP),
    seeds: str = typer.Option("0", help="Seed of the nets trained here (the first one is used)."),
    depths: str = typer.Option("20,56", help="Depths of the plain and residual nets trained here."),
    max_images: int = typer.Option(1000, help="Evaluation images the statistics are taken over."),
    runs_dir: Path = typer.Option(None, help="Train or reuse the nets here, e.g. a degradation experiment's OUT/runs (default OUT/runs)."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda ..."),
) -> None:
    """Std of every 3x3 layer's response (after BN, before addition), plain vs residual: Figure 7."""
    from ..experiments.common import parse_depths
    from ..experiments.degradation import PLAIN_DEPTHS
    from ..experiments.layer_responses import run_layer_responses

    for run in runs or ():
        if not run.exists():
            raise ReslabError(f"run {run} does not exist; give run folders written by `reslab train` or an experiment")
    setup = _setup(data, out, quick, seeds, set_, device, need_data=not runs)
    if runs_dir is not None:
        import dataclasses

        setup = dataclasses.replace(setup, runs_dir=runs_dir)
    summary = run_layer_responses(setup, parse_depths(depths, PLAIN_DEPTHS), runs=list(runs or ()), max_images=max_images)
    _print_lines(summary["verdict"])
    _done([out / "layer_responses.png", out / "results.md", out / "results.json"])


@experiment_app.command("shortcuts")
def shortcuts(
    data: Path = typer.Option(None, help=DATA_HELP),
    out: Path = typer.Option(Path("experiments/shortcuts"), help="Results folder (runs go to OUT/runs)."),
    quick: bool = typer.Option(False, "--quick", help=QUICK_HELP),
    seeds: str = typer.Option("0", help=SEEDS_HELP),
    model: str = typer.Option("resnet20", help="The network whose shortcuts change (a CIFAR or ImageNet ResNet)."),
    options: str = typer.Option("A,B,C", help="Shortcut options to compare."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda ..."),
) -> None:
    """Shortcut options A (zero-padding), B (projection where the shape changes), C (all projections): Table 3."""
    from ..experiments.shortcuts import OPTIONS, run_shortcuts

    chosen = tuple(o.strip().upper() for o in options.split(",") if o.strip())
    if not chosen or any(o not in OPTIONS for o in chosen):
        raise ReslabError(f"--options {options} must be letters of A, B, C separated by commas")
    setup = _setup(data, out, quick, seeds, set_, device)
    run_shortcuts(setup, model, chosen)
    _print_results_table(out)
    _done([out / "shortcuts.png", out / "results.md", out / "results.json"])
