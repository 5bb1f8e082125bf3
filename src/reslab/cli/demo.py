"""`reslab demo`: the main job end to end on data that needs no download."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import typer
from rich.console import Console

from .app import app

# Each stage is a module in reslab.demos with `run(out: Path, console: Console) -> None`.
STAGES = ["zoo", "train", "search", "experiments"]


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), help="Folder for runs, indexes, plots and reports."),
    stage: list[str] = typer.Option(None, help=f"Run only these stages (of: {', '.join(STAGES)})."),
) -> None:
    """Run the demo: the zoo, training plain vs residual nets, similarity search, the paper's experiments."""
    console = Console()
    todo = stage or STAGES
    for name in todo:
        if name not in STAGES:
            raise typer.BadParameter(f"unknown stage '{name}'; stages are {', '.join(STAGES)}")
    start = time.perf_counter()
    for name in todo:
        module = importlib.import_module(f"reslab.demos.{name}")
        console.rule(f"[bold]demo: {name}")
        t0 = time.perf_counter()
        module.run(out / name, console)
        console.print(f"[dim]{name} took {time.perf_counter() - t0:.0f} s[/]")
    console.rule(f"demo finished in {time.perf_counter() - start:.0f} s; outputs in {out}/")
