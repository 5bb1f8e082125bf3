"""Training and its verdict: `reslab train`, `reslab eval-classifier` (`reslab eval` is its old name)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ReslabError
from .app import TRAINING, alias, app
from .options import BatchSize, Device, JsonOutput, Overrides, Precision, RunPath, Runtime, Weights


class EvalSplit(StrEnum):
    auto = "auto"
    val = "val"
    test = "test"
    holdout = "holdout"


class FeatureSplit(StrEnum):  # eval-ssl: which labelled split the kNN vote and the probe classify
    auto = "auto"
    test = "test"
    val = "val"
    none = "none"


class Which(StrEnum):  # the checkpoint of a run folder
    last = "last"
    best = "best"
    best_ema = "best_ema"


@app.command(rich_help_panel=TRAINING)
def train(
    recipe: Annotated[
        Optional[str],
        typer.Argument(help="A recipe: a TOML file or a shipped name (see `reslab train --help` for the list). "
                            "Optional with --resume (the run's own config.toml)."),
    ] = None,
    data: Annotated[
        Optional[str], typer.Option("--data", help="Dataset path (data.path): image folder, CIFAR batches, IDX dir, CSV.")
    ] = None,
    set_: Overrides = None,
    name: Annotated[
        Optional[str], typer.Option("--name", help="Run directory name under run.dir (default: <model>-<date>-<time>).")
    ] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue a run: its directory or a .pt checkpoint.")] = None,
    device: Annotated[
        Optional[str], typer.Option("--device", help="train.device: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N (default: the recipe's).")
    ] = None,
) -> None:
    """Train a model; writes runs/<name>/ (config, metrics, checkpoints, model.safetensors).

    Shipped recipes: finetune (pretrained weights on your photos/<class>/ folder), cifar_quick, cifar_fast,
    cifar_airbench, cifar_resnet_paper, imagenet_resnet_paper, vit_cifar, ssl_simclr, ssl_moco, ssl_byol
    (and any TOML file).
    """
    from ..console import say
    from ..tomlio import toml_value
    from ..train import fit, load_config
    from ..train.runs import run_folder

    overrides = list(set_ or ())
    if recipe is None:
        if resume is None:
            raise ReslabError("give a recipe (e.g. `reslab train cifar_quick --data PATH`) or --resume RUN")
        run_dir = run_folder(resume)
        recipe = str(run_dir / "config.toml")
        if not Path(recipe).is_file():
            raise ReslabError(f"{run_dir} has no config.toml; give the recipe the run was started with")
    for key, value in (("data.path", data), ("run.name", name), ("train.device", device)):
        if value is not None:
            overrides.append(f"{key}={toml_value(value)}")
    cfg = load_config(recipe, overrides)
    if not cfg.data.path:
        raise ReslabError("no dataset given; pass --data PATH (an image folder, CIFAR batches, an IDX dir or a CSV)")
    history = fit(cfg, resume=resume)
    if history.run_dir is not None:
        best = f"; best {cfg.train.early_stop_metric} {history.best_metric:.2f}" if history.best_metric is not None else ""
        say(f"run written to {history.run_dir}{best}", markup=False)


@app.command("eval-classifier", rich_help_panel=TRAINING)
def eval_classifier(
    run: RunPath,
    data: Annotated[Optional[str], typer.Option("--data", help="Dataset path (default: the run's data.path).")] = None,
    split: Annotated[EvalSplit, typer.Option(help="Split to evaluate.")] = EvalSplit.auto,
    ten_crop: Annotated[bool, typer.Option("--ten-crop", help="Average the softmax over 10 crops (corners, centre, mirrors).")] = False,
    flip: Annotated[bool, typer.Option("--flip", help="Average the softmax over the image and its mirror.")] = False,
    which: Annotated[Which, typer.Option(help="For a run folder: which weights.")] = Which.last,
    batch_size: BatchSize = 256,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: RUN/eval).")] = None,
    device: Device = "auto",
    runtime: Runtime = "auto",
    precision: Precision = None,
    as_json: JsonOutput = False,
) -> None:
    """Accuracy of a trained classifier: top-1/top-5, loss, per-class accuracy, confusion matrix (CSV and PNG).

    (Retrieval quality of a search index is `reslab eval-retrieval`.)
    """
    from ..console import print_json, say
    from ..train.eval_run import run_eval

    if ten_crop and flip:
        raise ReslabError("choose one of --ten-crop and --flip")
    result = run_eval(run, data=data, split=split.value, tta="ten_crop" if ten_crop else "flip" if flip else "",
                      which=which.value, batch_size=batch_size, out=out, device=device, runtime=runtime, precision=precision)  # fmt: skip
    if as_json:
        print_json({**result, "out_dir": str(result["out_dir"]), "confusion": result["confusion"].tolist()})
        return
    say(
        f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  loss {result['loss']:.4f}  "
        f"({result['count']} images); written to {result['out_dir']}",
        markup=False,
    )


alias(app, "eval", eval_classifier, "eval-classifier")


@app.command("eval-ssl", rich_help_panel=TRAINING)
def eval_ssl(
    source: Annotated[str, typer.Argument(help="A run folder or checkpoint (self-supervised or not), or a zoo model name.")],
    data: Annotated[str, typer.Option("--data", help="A labelled dataset: class folders (with train/ and test/ or val/), CIFAR batches, IDX.")],
    weights: Weights = None,
    split: Annotated[FeatureSplit, typer.Option(help="Split to classify: auto (test, else val, else leave-one-out on train); none = leave-one-out.")] = FeatureSplit.auto,
    k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Neighbours that vote (the protocol's k).")] = 200,
    temperature: Annotated[float, typer.Option(help="kNN vote weight exp(similarity / T).")] = 0.1,
    limit_per_class: Annotated[int, typer.Option(help="At most this many bank (training) images per class; 0 = all.")] = 0,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Also fit a linear probe (logistic regression) on the frozen features.")] = True,
    batch_size: BatchSize = 256,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for metrics.json (default: RUN/eval-ssl for a run folder).")] = None,
    device: Device = "auto",
    as_json: JsonOutput = False,
) -> None:
    """Frozen-feature quality: weighted kNN accuracy (k=200, T=0.1) and a linear probe on labelled data."""
    from ..console import print_json, say
    from ..ssl.evaluate import evaluate_features

    result = evaluate_features(source, data, weights=weights, split=split.value, k=k, temperature=temperature,
                               limit_per_class=limit_per_class, batch_size=batch_size, probe=probe, device=device, out=out)  # fmt: skip
    if as_json:
        print_json(result)
        return
    probe_text = f"  linear probe top-1 {result['probe_top1']:.2f}%" if "probe_top1" in result else ""
    say(f"kNN (k={k}, T={temperature:g}) top-1 {result['knn_top1']:.2f}%  top-5 {result['knn_top5']:.2f}%{probe_text}  "
        f"({result['count']} images; {result['protocol']}; {result['dim']}-d features of {result['encoder']})", markup=False)
