"""`reslab demo`: the main job end to end on data that needs no download."""

from __future__ import annotations

import importlib
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import MORE, app


class Stage(StrEnum):  # each is a module in reslab.demos with `run(out: Path, console: Console) -> None`
    zoo = "zoo"
    train = "train"
    search = "search"
    experiments = "experiments"


@app.command(rich_help_panel=MORE)
def demo(
    out: Annotated[Path, typer.Option(help="Folder for runs, indexes, plots and reports.")] = Path("demo-output"),
    stage: Annotated[Optional[list[Stage]], typer.Option(help="Run only these stages (repeatable).")] = None,
) -> None:
    """Run the demo: the zoo, training plain vs residual nets, similarity search, the paper's experiments."""
    from ..console import stdout

    console = stdout()
    start = time.perf_counter()
    for name in stage or list(Stage):
        module = importlib.import_module(f"reslab.demos.{name.value}")
        console.rule(f"[bold]demo: {name.value}")
        t0 = time.perf_counter()
        module.run(out / name.value, console)
        console.print(f"[dim]{name.value} took {time.perf_counter() - t0:.0f} s[/]")
    console.rule(f"demo finished in {time.perf_counter() - start:.0f} s; outputs in {out}/")
