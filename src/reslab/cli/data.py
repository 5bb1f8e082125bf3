"""Datasets: `reslab data verify | digits | preview` (`reslab verify-data` is the old name of `data verify`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .app import alias, app, data_app
from .options import JsonOutput, Seed, Workers


class DataFormat(StrEnum):  # reslab.data.config.FORMATS (a test keeps them equal)
    auto = "auto"
    folder = "folder"
    cifar = "cifar"
    mnist = "mnist"
    csv = "csv"


class Augment(StrEnum):  # reslab.data.config.AUGMENTS
    imagenet_paper = "imagenet_paper"
    rrc = "rrc"
    cifar_paper = "cifar_paper"
    none = "none"


DatasetPath = Annotated[
    Path, typer.Argument(help="Image folder, CIFAR python-batch folder, MNIST IDX folder or CSV list.")
]


@data_app.command("verify")
def verify(
    path: DatasetPath,
    format: Annotated[DataFormat, typer.Option(help="The dataset's layout; auto recognises it.")] = DataFormat.auto,
    workers: Workers = -1,
    as_json: JsonOutput = False,
) -> None:
    """Decode every image; list each bad file with the reason; count per split and class. Exit 1 if any is bad."""
    from ..console import new_table, print_json, print_table, say, shown
    from ..data.verify import verify_data

    report = verify_data(path, format.value, workers, progress=not as_json)
    if as_json:
        print_json(report.to_dict())
    else:
        say(f"{report.format} dataset {report.root}", markup=False)
        splits = list(report.counts)
        table = new_table("class", *splits, right=tuple(splits))
        for c in report.classes:
            table.add_row(c, *(str(report.counts[s][c]) for s in splits))
        table.add_row("[bold]total", *(f"[bold]{sum(report.counts[s].values())}" for s in splits))
        print_table(table)
        for b in report.bad:
            say(f"[red]bad[/] {shown(b['path'])}: {shown(b['reason'])}")
        if report.bad:
            say(f"[bold red]{len(report.bad)} bad file(s)[/] of {report.total}; fix or remove them")
        else:
            say(f"[green]all {report.total} images decode[/]")
    if report.bad:
        raise typer.Exit(1)


alias(app, "verify-data", verify, "data verify")


@data_app.command("digits")
def digits(
    out: Annotated[Path, typer.Argument(help="Folder to write train/<digit>/*.png and val/<digit>/*.png into.")],
    size: Annotated[int, typer.Option(min=8, help="Side of the written images, pixels.")] = 32,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="Fraction of each class held out as val/.")] = 0.2,
    seed: Seed = 0,
) -> None:
    """Write scikit-learn's 1,797 handwritten digits as an image folder (no download)."""
    from ..console import say
    from ..data.digits import write_digits_folder

    root = write_digits_folder(out, size=size, val_fraction=val_fraction, seed=seed)
    n_train = sum(1 for _ in (root / "train").rglob("*.png"))
    n_val = sum(1 for _ in (root / "val").rglob("*.png"))
    say(f"wrote {n_train} train and {n_val} val digits ({size}x{size} PNG) under {root}", markup=False)


@data_app.command("preview")
def preview(
    path: DatasetPath,
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("augmentation.png"),
    augment: Annotated[Augment, typer.Option(help="The training augmentation to draw.")] = Augment.cifar_paper,
    image_size: Annotated[int, typer.Option(min=1, help="Training crop, pixels.")] = 32,
    eval_resize: Annotated[int, typer.Option(min=0, help="Shorter side before the eval centre crop; 0 = image size.")] = 0,
    color_jitter: Annotated[float, typer.Option(min=0.0, help="Brightness/contrast/saturation strength.")] = 0.0,
    pca_lighting: Annotated[float, typer.Option(min=0.0, help="AlexNet PCA lighting std (0.1 in the paper).")] = 0.0,
    samples: Annotated[int, typer.Option(min=1, help="Training images (rows).")] = 6,
    draws: Annotated[int, typer.Option(min=1, help="Augmented draws per image (columns after the eval view).")] = 5,
    seed: Seed = 0,
) -> None:
    """Draw training images as evaluated and as augmented, to check a recipe by eye."""
    from ..console import say
    from ..data import DataConfig
    from ..data.preview import save_augmentation_preview

    cfg = DataConfig(path=str(path), augment=augment.value, image_size=image_size, eval_resize=eval_resize,
                     color_jitter=color_jitter, pca_lighting=pca_lighting, eval_split="none")  # fmt: skip
    say(f"wrote {save_augmentation_preview(cfg, out, samples, draws, seed)}", markup=False)
