"""`reslab predict`: top-k classes for images, from a zoo model or a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ReslabError
from .app import app


@app.command()
def predict(
    model: str = typer.Argument(..., help="A zoo model name (see `reslab models`), or a run directory / checkpoint from `reslab train`."),
    images: list[Path] = typer.Argument(..., help="Image files, or folders of images."),
    weights: str = typer.Option(None, "--weights", "-w", help="Zoo models: a tag such as 'imagenet' or a .pth/.safetensors file (default: the model's 'imagenet' weights where it has them)."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many classes to show per image."),
    batch_size: int = typer.Option(32, min=1, help="Images per forward pass."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of tables."),
) -> None:
    """Classify images: a table of the top-k classes and their probabilities per image."""
    import json
    import logging

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from ..predict import iter_predictions

    if as_json:
        logging.getLogger("reslab").setLevel(logging.WARNING)  # keep stdout pure JSON
    paths = expand_images(images)
    net, labels, preprocess, source = load_predictor(model, weights, torch.device(device))

    results: list[list[tuple[str, float]]] = []
    console = Console(stderr=True)
    with Progress(
        TextColumn("classifying"), BarColumn(), TextColumn("{task.completed}/{task.total} images"),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
        console=console, transient=True, disable=as_json or len(paths) <= batch_size,
    ) as progress:
        task = progress.add_task("predict", total=len(paths), rate="")
        for batch in iter_predictions(net, paths, preprocess, labels, top_k=top_k, batch_size=batch_size):
            results.extend(batch)
            elapsed = progress.tasks[0].elapsed or 0.0
            rate = f"{len(results) / elapsed:.1f} images/s" if elapsed > 0 else ""
            progress.update(task, completed=len(results), rate=rate)

    if as_json:
        out = [
            {"image": str(p), "predictions": [{"label": label, "probability": prob} for label, prob in preds]}
            for p, preds in zip(paths, results)
        ]
        print(json.dumps({"model": source, "results": out}, indent=2))
        return
    out_console = Console()
    out_console.print(f"[dim]{source}[/]")
    for path, preds in zip(paths, results):
        out_console.print(str(path), style="bold", highlight=False, soft_wrap=True)  # a long path stays whole
        table = Table()
        table.add_column("#", justify="right")
        table.add_column("class")
        table.add_column("probability", justify="right")
        for rank, (label, prob) in enumerate(preds, start=1):
            table.add_row(str(rank), label, f"{prob:.4f}")
        out_console.print(table)


def expand_images(images: list[Path]) -> list[Path]:
    """Files as given, folders replaced by their image files (sorted); a missing path is an error."""
    from ..imageio import is_image_file

    paths: list[Path] = []
    for p in images:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f))
            if not found:
                raise ReslabError(f"folder {p} holds no images ({', '.join(sorted({'.jpg', '.png', '.webp'}))}, ...); give image files or another folder")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise ReslabError(f"image {p} does not exist; check the path")
    return paths


def load_predictor(model: str, weights: str | None, device):
    """(model on device, labels, preprocess, description) for a zoo name or a trained run."""
    from ..labels import imagenet_classes
    from ..models import create_model, list_models, model_entry
    from ..preprocess import EvalPreprocess

    if model not in list_models() and Path(model).exists():
        if weights is not None:
            raise ReslabError(f"--weights applies to zoo models; {model} already holds its weights, drop --weights")
        try:
            from ..train.runs import load_run_model
        except ImportError:
            raise ReslabError(f"predicting with the trained run {model} needs reslab.train.runs, which this install lacks; reinstall reslab") from None
        net, _config, classes, preprocess = load_run_model(model, device=device)
        return net, list(classes), preprocess, f"run {model}"

    entry = model_entry(model)  # unknown names raise with close matches
    if weights is None:
        if "imagenet" not in entry.pretrained:
            raise ReslabError(
                f"model '{model}' has no built-in pretrained weights, and random weights predict nothing; "
                f"pass --weights FILE (e.g. a torchvision checkpoint), or pick a model with them: "
                f"{', '.join(n for n in list_models() if model_entry(n).pretrained) or 'none'}"
            )
        weights = "imagenet"
    net = create_model(model, weights=weights).to(device).eval()
    num_classes = net.get_classifier().out_features
    labels = imagenet_classes() if num_classes == 1000 else [str(i) for i in range(num_classes)]
    return net, labels, EvalPreprocess.for_model(model), f"{model}, weights {weights}"
