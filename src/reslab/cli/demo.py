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

    Ends with the time each stage took and the CPU time the demo's own process spent on it (also in
    OUT/timings.json): training runs on one thread where another job holds a core, so a CPU time
    far below the wall time means the cores were shared.
    """
    from ..console import new_table, print_table, stdout
    from ..fileio import atomic_write_text
    from ..provenance import record

    console = stdout()
    times: dict[str, float] = {}
    cpu_times: dict[str, float] = {}  # this process's CPU seconds (decode workers not counted): the cost where a core is free
    for name in stage or list(Stage):
        module = importlib.import_module(f"reslab.demos.{name.value}")
        console.rule(f"[bold]demo: {name.value}")
        t0, c0 = time.perf_counter(), time.process_time()
        module.run(out / name.value, console)
        times[name.value], cpu_times[name.value] = time.perf_counter() - t0, time.process_time() - c0
        console.print(f"[dim]{name.value} took {times[name.value]:.0f} s ({cpu_times[name.value]:.0f} CPU-seconds)[/]")
    total, total_cpu = sum(times.values()), sum(cpu_times.values())
    table = new_table("stage", "seconds", "CPU-seconds", right=("seconds", "CPU-seconds"))
    for name, seconds in times.items():
        table.add_row(name, f"{seconds:.0f}", f"{cpu_times[name]:.0f}")
    table.add_row("[bold]total", f"[bold]{total:.0f}", f"[bold]{total_cpu:.0f}")
    console.rule()
    print_table(table)
    console.print(f"demo finished in {total:.0f} s ({total / 60:.1f} min); outputs in {out}/", soft_wrap=True)
    atomic_write_text(out / "timings.json", json.dumps(
        {"stages_s": times, "total_s": total, "stages_cpu_s": cpu_times, "total_cpu_s": total_cpu, **record()}, indent=2) + "\n")
