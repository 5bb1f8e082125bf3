"""A rich progress bar that shows images/s and the ETA, for decoding and verification."""

from __future__ import annotations

import os

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} img/s", style="cyan")


def image_progress(transient: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn(),
        transient=transient,
    )  # fmt: skip


def resolve_workers(workers: int) -> int:
    """-1 = one per core this process may use, at most 8 (beyond that decoding rarely scales)."""
    if workers >= 0:
        return workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))
