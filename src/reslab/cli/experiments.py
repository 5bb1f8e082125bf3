"""`reslab experiment ...`: the paper's experiments, quick on a CPU (`--quick`) or its full recipe."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ReslabError
from .app import experiment_app
from .options import Device, Overrides, comma_choices

log = logging.getLogger(__name__)

DATA_HELP = "CIFAR-10: a folder with train/<class>/*.jpg and test/<class>/ (or cifar-10-batches-py)."
QUICK_HELP = "CPU minutes: a CIFAR-10 subset, a few epochs (trends, not the paper's numbers). Without it: the paper's full recipe."
SEEDS_HELP = "Seeds, comma-separated; every network is trained once per seed (mean ± std over seeds)."
OUT_HELP = "Results folder (runs go to OUT/runs)."

Data = Annotated[Optional[Path], typer.Option(help=DATA_HELP)]
Quick = Annotated[bool, typer.Option("--quick", help=QUICK_HELP)]
Seeds = Annotated[str, typer.Option(help=SEEDS_HELP)]
Out = Annotated[Path, typer.Option(help=OUT_HELP)]


class PresetName(StrEnum):  # reslab.experiments.common.PRESETS
    quick = "quick"
    cpu = "cpu"
    gpu10 = "gpu10"
    full = "full"


PRESET_HELP = ("quick (CPU minutes, trends), cpu (about an hour on 2 cores: the ordering), gpu10 (all of it in about "
               "10 minutes on one GPU) or full (the paper's recipe). Default: full, or quick with --quick.")
Preset = Annotated[Optional[PresetName], typer.Option(help=PRESET_HELP)]


def _preset(quick: bool, preset: str | None):
    """--preset NAME, or --quick (= quick), else the full preset; a clear error when they disagree."""
    from ..experiments.common import FULL, PRESETS, QUICK

    if preset is None:
        return QUICK if quick else FULL
    if quick and preset != "quick":
        raise ReslabError(f"--quick and --preset {preset} disagree; give one of them")
    return PRESETS[preset]


def _setup(data: Path | None, out: Path, quick: bool, seeds: str, overrides: list[str] | None, device: str, need_data: bool = True,
           full_cost: str = "the paper's recipe (64k iterations per network)", preset: str | None = None):  # fmt: skip
    from ..devices import resolve_device
    from ..experiments.common import ExperimentSetup, parse_seeds

    if need_data:
        if data is None:
            raise ReslabError("--data is required: the CIFAR-10 folder (train/ and test/) or cifar-10-batches-py directory")
        if not data.exists():
            raise ReslabError(f"--data {data} does not exist; give the CIFAR-10 folder or cifar-10-batches-py directory")
    chosen = _preset(quick, preset)
    if need_data and chosen.name in ("full", "gpu10") and resolve_device(device).type == "cpu":  # runs given: nothing trains
        cost = full_cost if chosen.name == "full" else "designed for a GPU"
        log.warning("the %s preset is %s: GPU hours on a CPU; add --quick (or --preset cpu) on a CPU", chosen.name, cost)
    return ExperimentSetup(data=str(data) if data else "", out=out, preset=chosen,
                           seeds=parse_seeds(seeds), extra=tuple(overrides or ()), device=device)  # fmt: skip


def _report(out: Path, figure: str, verdict: list[str] | None = None) -> None:
    """The verdict lines (or, without them, the results table), then the files written."""
    from ..console import say, wrote

    if verdict is not None:
        for line in verdict:
            say(line)
    else:  # results.md opens with the table; the provenance after it ("Preset ...") stays in the file
        say((out / "results.md").read_text().split("\n\nPreset")[0], markup=False)
    wrote(out / figure, out / "results.md", out / "results.json")


@experiment_app.command("degradation")
def degradation(
    data: Data = None,
    out: Out = Path("experiments/degradation"),
    quick: Quick = False,
    seeds: Seeds = "0",
    depths: Annotated[str, typer.Option(help="Depths of the plain and residual CIFAR nets (of 20, 32, 44, 56, 110).")] = "20,56",
    set_: Overrides = None,
    device: Device = "auto",
    preset: Preset = None,
) -> None:
    """Plain vs residual nets at two or more depths: the paper's Figures 4 and 6 and its verdict."""
    from ..experiments.common import parse_depths
    from ..experiments.degradation import PLAIN_DEPTHS, run_degradation

    setup = _setup(data, out, quick, seeds, set_, device, preset=preset)
    summary = run_degradation(setup, parse_depths(depths, PLAIN_DEPTHS))
    _report(out, "degradation.png", summary["verdict"])


@experiment_app.command("cifar-depths")
def cifar_depths(
    data: Data = None,
    out: Out = Path("experiments/cifar_depths"),
    quick: Quick = False,
    seeds: Seeds = "0",
    depths: Annotated[str, typer.Option(help="ResNet depths (of 20, 32, 44, 56, 110, 1202).")] = "20,32,44,56,110",
    with_1202: Annotated[bool, typer.Option("--with-1202", help="Also train ResNet-1202 (19.4M parameters).")] = False,
    set_: Overrides = None,
    device: Device = "auto",
    preset: Preset = None,
) -> None:
    """ResNet-20 to 110 (1202) on CIFAR-10 beside the paper's Table 6 errors and parameter counts."""
    from ..experiments.common import parse_depths
    from ..experiments.depths import PAPER_TABLE6, run_cifar_depths

    setup = _setup(data, out, quick, seeds, set_, device, preset=preset)
    chosen = parse_depths(depths, tuple(PAPER_TABLE6))
    if with_1202 and 1202 not in chosen:
        chosen = (*chosen, 1202)
    run_cifar_depths(setup, chosen)
    _report(out, "cifar_depths.png")


@experiment_app.command("layer-responses")
def layer_responses(
    runs: Annotated[
        Optional[list[Path]], typer.Argument(help="Trained runs to measure; without them, plain and residual nets are trained first.")
    ] = None,
    data: Annotated[Optional[Path], typer.Option(help=DATA_HELP + " Replaces the runs' own data path when given.")] = None,
    out: Annotated[Path, typer.Option(help="Results folder (runs trained here go to OUT/runs).")] = Path("experiments/layer_responses"),
    quick: Quick = False,
    seeds: Annotated[str, typer.Option(help="Seed of the nets trained here (the first one is used).")] = "0",
    depths: Annotated[str, typer.Option(help="Depths of the plain and residual nets trained here.")] = "20,56",
    max_images: Annotated[int, typer.Option(min=1, help="Evaluation images the statistics are taken over.")] = 1000,
    runs_dir: Annotated[
        Optional[Path], typer.Option(help="Train or reuse the nets here, e.g. a degradation experiment's OUT/runs (default OUT/runs).")
    ] = None,
    set_: Overrides = None,
    device: Device = "auto",
) -> None:
    """Std of every 3x3 layer's response (after BN, before addition), plain vs residual: Figure 7."""
    import dataclasses

    from ..experiments.common import parse_depths
    from ..experiments.degradation import PLAIN_DEPTHS
    from ..experiments.layer_responses import run_layer_responses

    for run in runs or ():
        if not run.exists():
            raise ReslabError(f"run {run} does not exist; give run folders written by `reslab train` or an experiment")
    setup = _setup(data, out, quick, seeds, set_, device, need_data=not runs)
    if runs_dir is not None:
        setup = dataclasses.replace(setup, runs_dir=runs_dir)
    summary = run_layer_responses(setup, parse_depths(depths, PLAIN_DEPTHS), runs=list(runs or ()), max_images=max_images)
    _report(out, "layer_responses.png", summary["verdict"])


@experiment_app.command("shortcuts")
def shortcuts(
    data: Data = None,
    out: Out = Path("experiments/shortcuts"),
    quick: Quick = False,
    seeds: Seeds = "0",
    model: Annotated[str, typer.Option(help="The network whose shortcuts change (a CIFAR or ImageNet ResNet).")] = "resnet20",
    options: Annotated[str, typer.Option(help="Shortcut options to compare, comma-separated letters of A, B, C.")] = "A,B,C",
    set_: Overrides = None,
    device: Device = "auto",
) -> None:
    """Shortcut options A (zero-padding), B (projection where the shape changes), C (all projections): Table 3."""
    from ..experiments.shortcuts import OPTIONS, run_shortcuts

    chosen = tuple(comma_choices(options.upper(), "--options", OPTIONS))
    setup = _setup(data, out, quick, seeds, set_, device)
    run_shortcuts(setup, model, chosen)
    _report(out, "shortcuts.png")


@experiment_app.command("conv-vs-attention")
def conv_vs_attention(
    data: Data = None,
    out: Out = Path("experiments/conv_vs_attention"),
    quick: Annotated[
        bool, typer.Option("--quick", help="CPU minutes: 50, 500 and 2,500 images per class, 200 steps per run (about 10 minutes on a 2-core CI machine). Without it: "
                                           "100 to 5,000 per class, 39,000 steps per run (GPU hours).")
    ] = False,
    seeds: Seeds = "0",
    per_class: Annotated[
        Optional[str], typer.Option(help="Training images per class to compare, comma-separated (default: the preset's).")
    ] = None,
    set_: Overrides = None,
    device: Device = "auto",
) -> None:
    """ResNet-20 vs a ViT of the same MACs, on growing CIFAR-10 subsets: attention's hunger for data."""
    import dataclasses

    from ..experiments.common import parse_depths
    from ..experiments.conv_attention import FULL, QUICK, run_conv_vs_attention

    budget = QUICK if quick else FULL
    setup = _setup(data, out, quick, seeds, set_, device,
                   full_cost=f"{len(FULL.per_class) * 2} runs of {FULL.steps:,} steps per seed")  # fmt: skip
    setup = dataclasses.replace(setup, preset=budget.preset)
    sizes = None
    if per_class is not None:
        try:
            sizes = parse_depths(per_class)
        except ReslabError:
            raise ReslabError(f"--per-class {per_class} must be positive integers separated by commas, like 50,500,5000") from None
        if any(n > 5000 for n in sizes):
            raise ReslabError(f"--per-class {per_class}: CIFAR-10 has 5,000 training images per class")
    summary = run_conv_vs_attention(setup, budget, sizes)
    _report(out, "conv_vs_attention.png", summary["verdict"])


@experiment_app.command("tricks")
def tricks(
    data: Annotated[Optional[Path], typer.Option(help=DATA_HELP + " For the augmentation, label-smoothing, warm-up and optimiser lessons.")] = None,
    fashion_mnist: Annotated[Optional[Path], typer.Option("--fashion-mnist", help="Fashion-MNIST IDX folder, for the dropout and early-stopping lessons.")] = None,
    out: Out = Path("experiments/tricks"),
    quick: Annotated[bool, typer.Option("--quick", help="CPU minutes (about 10 on a 2-core CI machine): small subsets, few epochs. Without it: a GPU preset.")] = False,
    seeds: Seeds = "0",
    lessons: Annotated[str, typer.Option(help="Lessons to run, comma-separated.")] = "dropout,early_stopping,augmentation,label_smoothing,warmup,optimisers",
    set_: Overrides = None,
    device: Device = "auto",
) -> None:
    """The course's training lessons: dropout, early stopping, augmentation, label smoothing, warm-up, optimisers."""
    from ..console import say, wrote
    from ..experiments.common import parse_seeds
    from ..experiments.tricks import FASHION_LESSONS, FULL_TRICKS, QUICK_TRICKS, parse_lessons, run_tricks

    chosen = parse_lessons(lessons)
    needs_fashion = any(lesson in FASHION_LESSONS for lesson in chosen)
    needs_cifar = any(lesson not in FASHION_LESSONS for lesson in chosen)
    for path, needed, what in ((data, needs_cifar, "--data (CIFAR-10)"), (fashion_mnist, needs_fashion, "--fashion-mnist")):
        if needed and path is None:
            raise ReslabError(f"{what} is required by the lessons {', '.join(chosen)}; give it, or leave those lessons out with --lessons")
        if needed and not path.exists():
            raise ReslabError(f"{what} {path} does not exist; give the dataset folder")
    summary = run_tricks(out, cifar=str(data) if needs_cifar else None, fashion=str(fashion_mnist) if needs_fashion else None,
                         preset=QUICK_TRICKS if quick else FULL_TRICKS, seeds=parse_seeds(seeds), extra=tuple(set_ or ()),
                         device=device, lessons=chosen)  # fmt: skip
    for line in summary["verdict"]:
        say(line)
    wrote(*[Path(v["figure"]) for v in summary["lessons"].values()], out / "results.md", out / "results.json")


@experiment_app.command("gradient-flow")
def gradient_flow(
    data: Data = None,
    out: Out = Path("experiments/gradient_flow"),
    quick: Annotated[bool, typer.Option("--quick", help="CPU minutes: a CIFAR-10 subset at 16x16, 3 epochs. Without it: 10 epochs of the paper's recipe.")] = False,
    seeds: Seeds = "0",
    depth: Annotated[int, typer.Option(help="Depth of the plain and residual CIFAR nets (20, 32, 44, 56, 110).")] = 56,
    set_: Overrides = None,
    device: Device = "auto",
) -> None:
    """Per-layer gradient norms of plain vs residual nets at initialisation and while training, with a verdict."""
    import dataclasses

    from ..experiments.degradation import PLAIN_DEPTHS
    from ..experiments.gradient_flow import FULL_FLOW, QUICK_FLOW, run_gradient_flow

    if depth not in PLAIN_DEPTHS:
        raise ReslabError(f"--depth {depth}: CIFAR plain and residual nets come in depths {', '.join(map(str, PLAIN_DEPTHS))}")
    setup = dataclasses.replace(_setup(data, out, True, seeds, set_, device), preset=QUICK_FLOW if quick else FULL_FLOW)
    summary = run_gradient_flow(setup, depth)
    _report(out, "gradient_flow.png", summary["verdict"])
