"""Metric writers (metrics.jsonl, metrics.csv, TensorBoard) and the console progress bar."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

from ..fileio import atomic_write_text

log = logging.getLogger(__name__)

# The column order of metrics.csv; extra keys (ema_val_*, ...) follow in first-seen order.
COLUMNS = ["epoch", "step", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "images_per_s", "wall_time"]


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the full history (atomic; a resumed run rewrites the same rows)."""
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(_clean(r)) + "\n" for r in rows))
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in columns})
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _clean(row: dict) -> dict:
    # JSON has no NaN/inf: write them as null
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


class TensorBoard:
    """A SummaryWriter that is a no-op when disabled (other ranks, or run.tensorboard = false)."""

    def __init__(self, log_dir: Path | None):
        self.writer = None
        if log_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(log_dir))
            except ImportError:  # tensorboard is a dependency, but a stripped install still trains
                log.warning("tensorboard is not installed; no TensorBoard events will be written")

    def scalars(self, values: dict, step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and k not in ("epoch", "step") and math.isfinite(v):
                self.writer.add_scalar(f"{prefix}{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress:
    """A rich progress bar over training steps with loss, images/s and ETA; silent when disabled."""

    def __init__(self, enabled: bool, total_steps: int, start_step: int):
        self.bar = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        from ..console import stderr

        console = stderr()
        if not console.is_terminal:
            return
        self.bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  {task.fields[speed]} img/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.bar.add_task("train", total=total_steps, completed=start_step, loss="-", speed="-")
        self.bar.start()

    def update(self, step: int, epoch: int, loss: float, images_per_s: float) -> None:
        if self.bar is not None:
            self.bar.update(
                self.task, completed=step, description=f"epoch {epoch}", loss=f"{loss:.3f}", speed=f"{images_per_s:.0f}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
