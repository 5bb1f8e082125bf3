"""Looking at finished runs: `reslab report` (one run, an HTML page) and `reslab compare-runs` (several)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ReslabError
from .app import TRAINING, app
from .options import Device, RunPath


class EmbeddingMap(StrEnum):  # reslab.report.embedding_map.METHODS
    pca = "pca"
    tsne = "tsne"


@app.command(rich_help_panel=TRAINING)
def report(
    run: RunPath,
    data: Annotated[Optional[Path], typer.Option(help="The run's data, when its config's path is not valid here.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The HTML page to write (default RUN/report.html).")] = None,
    embedding: Annotated[EmbeddingMap, typer.Option(help="2-D map of embeddings.")] = EmbeddingMap.pca,
    max_images: Annotated[int, typer.Option(min=1, help="Validation images to analyse.")] = 2000,
    device: Device = "auto",
) -> None:
    """A self-contained HTML report: curves, confusion, per-class accuracy, samples, Grad-CAM, embeddings."""
    from ..console import say
    from ..devices import resolve_device
    from ..report.html import report_run

    if not run.exists():
        raise ReslabError(f"{run} does not exist; give a run folder written by `reslab train`")
    path = report_run(run, data=str(data) if data else None, out=out, device=str(resolve_device(device)),
                      embedding=embedding.value, max_images=max_images)  # fmt: skip
    say(f"wrote {path}", markup=False)


@app.command("compare-runs", rich_help_panel=TRAINING)
def compare_runs(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to overlay.")],
    out: Annotated[Path, typer.Option(help="Folder for curves.png, summary.md and summary.html.")] = Path("compare"),
) -> None:
    """Overlay the loss, error and learning-rate curves of several training runs, with a table of key numbers.

    (How similar two images are is `reslab compare-images`.)
    """
    from ..console import say, wrote
    from ..report.compare import compare_runs as compare

    paths = compare(runs, out)
    say(paths["markdown"].read_text(), markup=False)
    wrote(*paths.values())
