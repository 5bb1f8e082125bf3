"""`reslab demo`: the main job end to end on data that needs no download."""

from __future__ import annotations

import importlib
import json
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
    """Run the demo: the zoo, training plain vs residual nets, similarity search, the paper's experiments.

    Ends with the time each stage took (also in OUT/timings.json).
    """
    from ..console import new_table, print_table, stdout
    from ..fileio import atomic_write_text
    from ..provenance import record

    console = stdout()
    times: dict[str, float] = {}
    for name in stage or list(Stage):
        module = importlib.import_module(f"reslab.demos.{name.value}")
        console.rule(f"[bold]demo: {name.value}")
        t0 = time.perf_counter()
        module.run(out / name.value, console)
        times[name.value] = time.perf_counter() - t0
        console.print(f"[dim]{name.value} took {times[name.value]:.0f} s[/]")
    total = sum(times.values())
    table = new_table("stage", "seconds", right=("seconds",))
    for name, seconds in times.items():
        table.add_row(name, f"{seconds:.0f}")
    table.add_row("[bold]total", f"[bold]{total:.0f}")
    console.rule()
    print_table(table)
    console.print(f"demo finished in {total:.0f} s ({total / 60:.1f} min); outputs in {out}/", soft_wrap=True)
    atomic_write_text(out / "timings.json", json.dumps({"stages_s": times, "total_s": total, **record()}, indent=2) + "\n")
