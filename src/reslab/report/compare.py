"""`reslab compare-runs`: several runs' curves overlaid in one PNG, with a table of key numbers."""

from __future__ import annotations

import html
from pathlib import Path

from ..errors import ReslabError
from ..fileio import atomic_write_text
from .html import read_config, read_metrics, run_summary


def _label(run_dir: Path, taken: set[str]) -> str:
    # the folder name, widened with its parent when two runs share a name
    label = run_dir.name
    if label in taken:
        label = f"{run_dir.parent.name}/{run_dir.name}"
    taken.add(label)
    return label


def compare_runs(run_dirs: list[str | Path], out: str | Path, metrics=("loss", "error", "lr")) -> dict[str, Path]:
    """Write out/curves.png, out/summary.md and out/summary.html; return their paths."""
    from .. import plots

    if not run_dirs:
        raise ReslabError("give at least one run folder to compare")
    out = Path(out)
    runs, table, taken = [], [], set()
    for run_dir in map(Path, run_dirs):
        rows = read_metrics(run_dir)
        label = _label(run_dir, taken)
        runs.append((label, rows))
        s = run_summary(rows)
        model = read_config(run_dir).get("model", {})
        table.append([
            label,
            str(model.get("name", "n/a")) if isinstance(model, dict) else "n/a",
            str(s.epochs),
            "n/a" if s.best_val_top1 is None else f"{s.best_val_top1:.2f}",
            "n/a" if s.final_val_top1 is None else f"{s.final_val_top1:.2f}",
            "n/a" if s.final_train_loss is None else f"{s.final_train_loss:.4f}",
        ])
    curves = plots.plot_training_curves(runs, out / "curves.png", metrics=metrics, title="runs compared")
    header = ["run", "model", "epochs", "best val top-1 (%)", "final val top-1 (%)", "final train loss"]
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in table)
    atomic_write_text(out / "summary.md", md)
    rows_html = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table)
    head_html = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    atomic_write_text(out / "summary.html", (
        "<!doctype html><html><head><meta charset='utf-8'><title>reslab compare-runs</title></head><body>"
        f"<table border='1' cellpadding='4'><tr>{head_html}</tr>{rows_html}</table>"
        f"<p><img src='curves.png' alt='curves'></p></body></html>"))
    return {"curves": curves, "markdown": out / "summary.md", "html": out / "summary.html"}
