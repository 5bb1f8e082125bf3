"""`reslab predict`: top-k classes for images, from a zoo model or a trained run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ReslabError
from .app import MODELS, app
from .options import BatchSize, Device, JsonOutput, Precision, Runtime, Weights


@app.command(rich_help_panel=MODELS)
def predict(
    args: Annotated[list[str], typer.Argument(
        metavar="[MODEL] IMAGES...",
        help="A zoo model name (see `reslab models`), a run folder / checkpoint from `reslab train` or a .onnx from "
        "`reslab export`, then image files or folders; with --run, only the images.")],
    run: Annotated[Optional[Path], typer.Option(
        "--run", help="A run folder (or checkpoint) from `reslab train`: classify with the trained network and its classes.")] = None,
    weights: Weights = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to show per image.")] = 5,
    batch_size: BatchSize = 32,
    device: Device = "auto",
    runtime: Runtime = "auto",
    precision: Precision = None,
    as_json: JsonOutput = False,
) -> None:
    """Classify images: a table of the top-k classes and their probabilities per image.

    A zoo model uses its 'imagenet' weights unless --weights names others.
    """
    import logging

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..console import new_table, print_json, print_table, printable, say, shown, stderr
    from ..devices import resolve_device
    from ..predict import iter_predictions

    if as_json:
        logging.getLogger("reslab").setLevel(logging.WARNING)  # keep stdout pure JSON
    if run is not None:
        if not run.exists():
            raise ReslabError(f"--run {run} does not exist; give a run folder written by `reslab train`")
        model, images = str(run), [Path(a) for a in args]
    else:
        model, images = args[0], [Path(a) for a in args[1:]]
        if not images:
            raise ReslabError(f"no images given after the model '{model}'; e.g. `reslab predict {model} photo.jpg`, or `reslab predict --run RUN photo.jpg`")
    paths = expand_images(images)
    from ..inference import open_session

    loaded = load_predictor(model, weights, resolve_device(device))
    session = open_session(loaded, runtime, precision, batch_size=min(batch_size, len(paths)))
    labels, preprocess, source = loaded.classes, loaded.preprocess, loaded.source

    results: list[list[tuple[str, float]] | None] = []
    bad: list[tuple[str, str]] = []  # a file that cannot be read is reported, and the others go on
    with Progress(
        TextColumn("classifying"), BarColumn(), TextColumn("{task.completed}/{task.total} images"),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
        console=stderr(), transient=True, disable=as_json or len(paths) <= batch_size,
    ) as progress:  # fmt: skip
        task = progress.add_task("predict", total=len(paths), rate="")
        for batch in iter_predictions(session, paths, preprocess, labels, top_k=top_k, batch_size=batch_size, bad_files=bad):
            results.extend(batch)
            elapsed = progress.tasks[0].elapsed or 0.0
            rate = f"{len(results) / elapsed:.1f} images/s" if elapsed > 0 else ""
            progress.update(task, completed=len(results), rate=rate)

    reasons = dict(bad)
    if as_json:
        out = [
            {"image": str(p), "predictions": [{"label": label, "probability": prob} for label, prob in preds]}
            if preds is not None else {"image": str(p), "error": reasons.get(str(p), "cannot be decoded")}
            for p, preds in zip(paths, results)
        ]
        print_json({"model": source, "results": out})
    else:
        say(f"[dim]{shown(source)}[/]")
        for path, preds in zip(paths, results):
            say(printable(path), style="bold", markup=False)  # a long path stays whole
            if preds is None:
                say(f"  [red]skipped[/]: {shown(reasons.get(str(path), 'cannot be decoded'))}")
                continue
            table = new_table("#", "class", "probability", right=("#", "probability"))
            for rank, (label, prob) in enumerate(preds, start=1):
                table.add_row(str(rank), shown(label), f"{prob:.4f}")
            print_table(table)
    if bad:
        listed = "; ".join(f"{printable(p)} ({printable(r)})" for p, r in bad[:5]) + ("; ..." if len(bad) > 5 else "")
        if len(paths) == 1:
            raise ReslabError(f"cannot decode image {listed}; fix or remove the file")
        others = "the others were classified" if len(bad) < len(paths) else "nothing was classified"
        raise ReslabError(f"{len(bad)} of {len(paths)} images could not be read and were skipped: {listed}; "
                          f"fix or remove them ({others})")


def expand_images(images: list[Path]) -> list[Path]:
    """Files as given, folders replaced by their image files (sorted); a missing path is an error."""
    from ..imageio import is_image_file

    paths: list[Path] = []
    for p in images:
        if p.is_dir():
            # not only is_file(): a link loop named .jpg is listed, and then reported as unreadable
            found = sorted(f for f in p.rglob("*") if is_image_file(f) and not f.is_dir())
            if not found:
                raise ReslabError(f"folder {p} holds no images (.jpg, .png, .webp, ...); give image files or another folder")
            paths += found
        elif os.path.lexists(p):  # a file; or a link loop, a dangling link, a pipe: reported with its reason below
            paths.append(p)
        else:
            raise ReslabError(f"image {p} does not exist; check the path")
    return paths


def load_predictor(model: str, weights: str | None, device):
    """The network to classify with (`reslab.inference.load`); refuses random weights, which predict nothing."""
    from ..inference import default_weights, load
    from ..inference.runs import is_self_supervised, no_classifier_error
    from ..models import list_models, model_entry

    if weights is None and model in list_models():
        weights = default_weights(model)
        if weights is None:
            raise ReslabError(
                f"model '{model}' has no built-in pretrained weights, and random weights predict nothing; "
                f"pass --weights FILE (e.g. a torchvision checkpoint), or pick a model with them: "
                f"{', '.join(n for n in list_models() if model_entry(n).pretrained) or 'none'}"
            )
    loaded = load(model, weights, device=device)
    if loaded.kind == "run" and is_self_supervised(loaded.config):
        raise no_classifier_error(model, "predict classes")
    if loaded.classes is None:
        raise ReslabError(f"{loaded.source} has no class names to predict; export it again with `reslab export`")
    return loaded
