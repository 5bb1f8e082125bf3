"""`reslab report`, `reslab compare-runs`, `reslab viz features|filters`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ReslabError
from .app import app, viz_app


@app.command()
def report(
    run: Path = typer.Argument(..., help="A run folder (or its checkpoint / model.safetensors)."),
    data: Path = typer.Option(None, help="The run's data, when its config's path is not valid here."),
    out: Path = typer.Option(None, help="The HTML page to write (default RUN/report.html)."),
    embedding: str = typer.Option("pca", help="2-D map of embeddings: pca or tsne."),
    max_images: int = typer.Option(2000, help="Validation images to analyse."),
    device: str = typer.Option("cpu", help="cpu, cuda ..."),
) -> None:
    """A self-contained HTML report: curves, confusion, per-class accuracy, samples, Grad-CAM, embeddings."""
    from rich.console import Console

    from ..report.embedding_map import METHODS
    from ..report.html import report_run

    if embedding not in METHODS:
        raise ReslabError(f"--embedding {embedding} is unknown; use one of {', '.join(METHODS)}")
    if not run.exists():
        raise ReslabError(f"{run} does not exist; give a run folder written by `reslab train`")
    path = report_run(run, data=str(data) if data else None, out=out, device=device, embedding=embedding, max_images=max_images)
    Console().print(f"wrote {path}")


@app.command("compare-runs")
def compare_runs_command(
    runs: list[Path] = typer.Argument(..., help="Run folders to overlay."),
    out: Path = typer.Option(Path("compare"), help="Folder for curves.png, summary.md and summary.html."),
) -> None:
    """Overlay the loss, error and learning-rate curves of several runs, with a table of key numbers."""
    from rich.console import Console

    from ..report.compare import compare_runs

    paths = compare_runs(runs, out)
    console = Console()
    console.print(paths["markdown"].read_text())
    for p in paths.values():
        console.print(f"wrote {p}")


@viz_app.command("features")
def viz_features(
    model: str = typer.Argument(..., help="A model name (`reslab models`) or a run folder / checkpoint."),
    image: Path = typer.Argument(..., help="The image to look at."),
    layer: str = typer.Option("layer1", help="The stage whose feature maps to draw (the model's feature_names)."),
    weights: str = typer.Option(None, help="Weights for a model name: a file or a tag such as imagenet."),
    top: int = typer.Option(16, help="How many of the most active channels to draw."),
    out: Path = typer.Option(None, help="PNG to write (default features-<layer>.png)."),
) -> None:
    """Draw the most active feature maps of one image at one stage."""
    from rich.console import Console

    from ..imageio import load_image
    from ..viz import plot_feature_maps, resolve_model

    net, preprocess, _ = resolve_model(model, weights)
    img = load_image(image, mode="RGB", min_size=preprocess.resize)
    x = preprocess(img)
    from ..report.evaluation import display_image

    path = plot_feature_maps(net, x, layer, out or Path(f"features-{layer}.png"),
                             image=display_image(x, preprocess.mean, preprocess.std), top=top)
    Console().print(f"wrote {path}")


@viz_app.command("filters")
def viz_filters(
    model: str = typer.Argument(..., help="A model name (`reslab models`) or a run folder / checkpoint."),
    weights: str = typer.Option(None, help="Weights for a model name: a file or a tag such as imagenet."),
    out: Path = typer.Option(Path("filters.png"), help="PNG to write."),
) -> None:
    """Draw the first convolution's filters."""
    from rich.console import Console

    from ..viz import plot_first_layer_filters, resolve_model

    net, _, _ = resolve_model(model, weights)
    Console().print(f"wrote {plot_first_layer_filters(net, out)}")
