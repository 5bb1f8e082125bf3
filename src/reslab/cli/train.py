"""`reslab train`, `reslab eval` and `reslab bench train`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ReslabError
from .app import app, bench_app


@app.command()
def train(
    recipe: Optional[str] = typer.Argument(
        None, help="A recipe: a TOML file or a shipped name (cifar_quick, cifar_resnet_paper, imagenet_resnet_paper). "
        "Optional with --resume (the run's own config.toml)."
    ),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (data.path): image folder, CIFAR batches, IDX dir, CSV."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key: --set optim.lr=0.05 --set model.name=resnet56."),
    name: Optional[str] = typer.Option(None, "--name", help="Run directory name under run.dir (default: <model>-<date>-<time>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a run: its directory or a .pt checkpoint."),
) -> None:
    """Train a model; writes runs/<name>/ (config, metrics, checkpoints, model.safetensors)."""
    from ..train import fit, load_config

    overrides = list(set_)
    if recipe is None:
        if resume is None:
            raise ReslabError("give a recipe (e.g. `reslab train cifar_quick --data PATH`) or --resume RUN")
        run_dir = resume if resume.is_dir() else resume.parent.parent
        recipe = str(run_dir / "config.toml")
        if not Path(recipe).is_file():
            raise ReslabError(f"{run_dir} has no config.toml; give the recipe the run was started with")
    if data is not None:
        overrides.append(f"data.path={_toml_string(data)}")
    if name is not None:
        overrides.append(f"run.name={_toml_string(name)}")
    cfg = load_config(recipe, overrides)
    if not cfg.data.path:
        raise ReslabError("no dataset given; pass --data PATH (an image folder, CIFAR batches, an IDX dir or a CSV)")
    history = fit(cfg, resume=resume)
    if history.run_dir is not None:
        best = f"; best {cfg.train.early_stop_metric} {history.best_metric:.2f}" if history.best_metric is not None else ""
        typer.echo(f"run written to {history.run_dir}{best}")


@app.command("eval")
def eval_(
    run: Path = typer.Argument(..., help="A run directory, a .pt checkpoint or a model.safetensors."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default: the run's data.path)."),
    split: str = typer.Option("auto", "--split", help="Split to evaluate: auto, val, test or holdout."),
    ten_crop: bool = typer.Option(False, "--ten-crop", help="Average the softmax over 10 crops (corners, centre, mirrors)."),
    flip: bool = typer.Option(False, "--flip", help="Average the softmax over the image and its mirror."),
    which: str = typer.Option("last", "--which", help="For a run directory: last, best or best_ema weights."),
    batch_size: int = typer.Option(256, "--batch", help="Evaluation batch size."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: RUN/eval)."),
) -> None:
    """Evaluate a trained model: top-1/top-5, loss, per-class accuracy, confusion matrix (CSV and PNG)."""
    from ..train.eval_run import run_eval

    if ten_crop and flip:
        raise ReslabError("choose one of --ten-crop and --flip")
    result = run_eval(run, data=data, split=split, tta="ten_crop" if ten_crop else "flip" if flip else "",
                      which=which, batch_size=batch_size, out=out)
    typer.echo(
        f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  loss {result['loss']:.4f}  "
        f"({result['count']} images); written to {result['out_dir']}"
    )


@bench_app.command("train")
def bench_train(
    model: str = typer.Argument("resnet20", help="Model name (CIFAR ResNet-20 and ResNet-50 are the headline cases)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Batch size (default 128 at CIFAR size, 32 at 224 px)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Timed steps per contender after 3 warm-up steps (default 30, or 4 at 224 px)."),
    image_size: int = typer.Option(0, "--image-size", help="Input size (default: the model's own, 32 for CIFAR nets)."),
    data: Optional[str] = typer.Option(None, "--data", help="An image folder to train on (default: generated JPEGs)."),
    accuracy_steps: int = typer.Option(0, "--accuracy-steps", help="Also train fp32 and bf16 this many steps and compare loss curves."),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="Folder for bench_train_<model>.json."),
) -> None:
    """Training images/s of the engine (in-memory data, bf16, channels_last) against a textbook fp32 loop."""
    from ..train.bench import run_bench

    run_bench(model, batch=batch, steps=steps, image_size=image_size, data=data, accuracy_steps=accuracy_steps, out=out)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
