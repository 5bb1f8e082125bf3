"""`reslab verify-data`, `reslab data ...` and `reslab bench data`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, bench_app

data_app = typer.Typer(help="Datasets: ready-made folders and checks.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.command("verify-data")
def verify_data_cmd(
    path: Path = typer.Argument(..., help="Image folder, CIFAR python-batch folder, MNIST IDX folder or CSV list."),
    format: str = typer.Option("auto", help="auto | folder | cifar | mnist | csv"),
    workers: int = typer.Option(-1, help="Decoding processes; -1 = one per core."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (counts and every bad file)."),
) -> None:
    """Decode every image; list each bad file with the reason; count per split and class. Exit 1 if any is bad."""
    from rich.console import Console
    from rich.table import Table

    from ..data.verify import verify_data

    report = verify_data(path, format, workers, progress=not as_json)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        console = Console()
        console.print(f"{report.format} dataset {report.root}", highlight=False, soft_wrap=True)
        table = Table()
        table.add_column("class")
        splits = list(report.counts)
        for s in splits:
            table.add_column(s, justify="right")
        for c in report.classes:
            table.add_row(c, *(str(report.counts[s][c]) for s in splits))
        table.add_row("[bold]total", *(f"[bold]{sum(report.counts[s].values())}" for s in splits))
        console.print(table)
        for b in report.bad:
            console.print(f"[red]bad[/] {b['path']}: {b['reason']}", highlight=False, soft_wrap=True)
        if report.bad:
            console.print(f"[bold red]{len(report.bad)} bad file(s)[/] of {report.total}; fix or remove them")
        else:
            console.print(f"[green]all {report.total} images decode[/]")
    if report.bad:
        raise typer.Exit(1)


@data_app.command("digits")
def digits_cmd(
    out: Path = typer.Argument(..., help="Folder to write train/<digit>/*.png and val/<digit>/*.png into."),
    size: int = typer.Option(32, help="Side of the written images, pixels."),
    val_fraction: float = typer.Option(0.2, help="Fraction of each class held out as val/."),
    seed: int = typer.Option(0, help="Seed of the train/val split."),
) -> None:
    """Write scikit-learn's 1,797 handwritten digits as an image folder (no download)."""
    from ..data.digits import write_digits_folder

    root = write_digits_folder(out, size=size, val_fraction=val_fraction, seed=seed)
    n_train = sum(1 for _ in (root / "train").rglob("*.png"))
    n_val = sum(1 for _ in (root / "val").rglob("*.png"))
    typer.echo(f"wrote {n_train} train and {n_val} val digits ({size}x{size} PNG) under {root}")


@bench_app.command("data")
def bench_data_cmd(
    data: Path = typer.Option(None, help="A folder of ~224-pixel-or-larger JPEG photos (train/<class>/*.jpg), e.g. the extracted hymenoptera set."),
    cifar: Path = typer.Option(None, help="CIFAR data for the in-memory comparison (default: generated 32x32 images)."),
    workers: int = typer.Option(-1, help="Decode worker processes; -1 = one per core."),
    seconds: float = typer.Option(10.0, help="Seconds to measure each configuration."),
    out: Path = typer.Option(Path("benchmarks/results/bench_data.json"), help="Where the JSON results go."),
) -> None:
    """Decode+augmentation images/s vs ResNet-18 training images/s; batched vs per-image CIFAR augmentation."""
    from rich.console import Console

    from ..data.bench import run_bench_data

    run_bench_data(data=data, cifar=cifar, workers=workers, seconds=seconds, out=out, console=Console())


@data_app.command("preview")
def preview_cmd(
    path: Path = typer.Argument(..., help="The dataset (any format reslab reads)."),
    out: Path = typer.Option(Path("augmentation.png"), help="PNG to write."),
    augment: str = typer.Option("cifar_paper", help="imagenet_paper | rrc | cifar_paper | none"),
    image_size: int = typer.Option(32, help="Training crop, pixels."),
    eval_resize: int = typer.Option(0, help="Shorter side before the eval centre crop; 0 = image size."),
    color_jitter: float = typer.Option(0.0, help="Brightness/contrast/saturation strength."),
    pca_lighting: float = typer.Option(0.0, help="AlexNet PCA lighting std (0.1 in the paper)."),
    samples: int = typer.Option(6, help="Training images (rows)."),
    draws: int = typer.Option(5, help="Augmented draws per image (columns after the eval view)."),
    seed: int = typer.Option(0),
) -> None:
    """Draw training images as evaluated and as augmented, to check a recipe by eye."""
    from ..data import DataConfig
    from ..data.preview import save_augmentation_preview

    cfg = DataConfig(path=str(path), augment=augment, image_size=image_size, eval_resize=eval_resize,
                     color_jitter=color_jitter, pca_lighting=pca_lighting, eval_split="none")  # fmt: skip
    typer.echo(f"wrote {save_augmentation_preview(cfg, out, samples, draws, seed)}")
