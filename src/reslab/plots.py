"""Shared plots: training curves, confusion matrices, per-class accuracy, image grids.

Every function draws with matplotlib's Agg backend (no display needed), writes a PNG atomically
and returns the path. `figure_png_bytes` gives the encoded PNG for pages that embed images.
Rows of training curves are the dicts of `metrics.jsonl` (accuracies in percent).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .fileio import atomic_write_bytes

# Long names for the metrics a curve panel can show; "error" is 100 - top1.
CURVE_METRICS = ("loss", "error", "top1", "lr", "knn")  # knn: a self-supervised run's kNN monitor (top-1, %)
DPI = 110
MAX_BARS_EACH_END = 20  # per-class bars beyond 40 classes: the 20 worst and the 20 best
MAX_TICK_LABELS = 60  # confusion matrices of more classes drop the tick labels


def pyplot():
    """matplotlib.pyplot on the Agg backend, for custom figures (then `save_figure`)."""
    # Select Agg before pyplot is first imported, so a headless machine never looks for a display.
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def integer_ticks():
    """A tick locator for whole numbers (epochs)."""
    # epochs are whole numbers; no 1.25, 1.5 ticks on short runs
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def figure_png_bytes(fig) -> bytes:
    """Encode `fig` as PNG and close it."""
    plt = pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write `fig` as a PNG at `path` atomically, close it, and return the path."""
    path = Path(path)
    atomic_write_bytes(path, figure_png_bytes(fig))
    return path


def _series(rows: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the rows that carry `key`; x is `epoch` (or the row index)."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        xs.append(row.get("epoch", i + 1))
        ys.append(float(value))
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def plot_training_curves(
    runs: Sequence[tuple[str, Sequence[dict]]],
    path: str | os.PathLike,
    metrics: Sequence[str] = ("loss", "error", "lr"),
    title: str | None = None,
) -> Path:
    """One panel per metric, one colour per run; training thin and dashed, validation bold.

    runs: (label, metrics rows) pairs, rows as in metrics.jsonl. metrics: of "loss", "error"
    (100 - top1, in percent), "top1", "lr".
    """
    unknown = [m for m in metrics if m not in CURVE_METRICS]
    if unknown:
        raise ValueError(f"unknown curve metric(s) {unknown}; choose from {CURVE_METRICS}")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics):
        for i, (label, rows) in enumerate(runs):
            colour = colours[i % len(colours)]
            if metric in ("lr", "knn"):
                x, y = _series(rows, "lr" if metric == "lr" else "knn_top1")
                ax.plot(x, y, color=colour, lw=1.6 if metric == "lr" else 2.0, marker="o" if metric == "knn" and len(x) < 30 else None,
                        label=label)
                continue
            key = "loss" if metric == "loss" else "top1"
            for split, style in (("train", dict(lw=0.9, ls="--", alpha=0.8)), ("val", dict(lw=2.0))):
                x, y = _series(rows, f"{split}_{key}")
                if len(x) == 0:
                    continue
                if metric == "error":
                    y = 100.0 - y
                ax.plot(x, y, color=colour, label=f"{label} ({split})", **style)
        if metric == "loss":
            _log_loss_axis(ax)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(integer_ticks())
        ax.set_ylabel({"loss": "loss", "error": "error (%)", "top1": "top-1 (%)", "lr": "learning rate",
                       "knn": "kNN top-1 (%)"}[metric])  # fmt: skip
        if metric == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _log_loss_axis(ax, decades: float = 3.0) -> None:
    """Losses on a log scale, so that one diverging epoch (a validation loss of 846 among values near
    0.05) leaves every other curve readable; the axis spans at most `decades` above the 90th
    percentile of the values, and a point beyond is drawn as a triangle on the top edge with its value."""
    lines = [line for line in ax.get_lines() if len(line.get_ydata())]
    values = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in lines]) if lines else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) < 2:
        return
    ax.set_yscale("log")
    low, top = float(values.min()) / 1.5, float(np.percentile(values, 90)) * 10**decades
    if values.max() <= top:
        ax.set_ylim(low, float(values.max()) * 1.5)
        return
    ax.set_ylim(low, top)
    for line in lines:
        x, y = np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)
        for xi, yi in zip(x[y > top], y[y > top]):
            ax.plot([xi], [top], marker="^", color=line.get_color(), ms=7, clip_on=False, zorder=5)
            ax.annotate(f"{yi:.3g}", (xi, top), xytext=(0, -11), textcoords="offset points", ha="center",
                        fontsize=7, color=line.get_color())  # fmt: skip
    ax.text(0.99, 0.98, "▲ off the scale", transform=ax.transAxes, ha="right", va="top", fontsize=7, color="0.4")


def plot_confusion_matrix(
    cm: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
    normalize: bool = True,
) -> Path:
    """Heatmap of `cm` (rows = true class, columns = predicted); normalised per row by default."""
    cm = np.asarray(cm, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {len(classes)} classes")
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    plt = pyplot()
    n = len(classes)
    side = min(max(4.0, 0.45 * n + 2.0), 16.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if n <= MAX_TICK_LABELS:
        ax.set_xticks(range(n), labels=list(classes), rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels=list(classes), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:  # numbers stay readable up to about twenty classes
        # white text on the darker half of the colour scale
        threshold = 0.5 * (1.0 if normalize else (shown.max() if shown.size else 0))
        for i in range(n):
            for j in range(n):
                if cm[i, j] == 0:  # an empty cell stays blank: the mistakes stand out
                    continue
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > threshold else "black")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    fig.tight_layout()
    return save_figure(fig, path)


def plot_per_class_accuracy(
    accuracy: Sequence[float],
    classes: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Horizontal bars of per-class accuracy (percent), worst class on top."""
    accuracy = np.asarray(accuracy, dtype=float)
    if len(accuracy) != len(classes):
        raise ValueError(f"{len(accuracy)} accuracies for {len(classes)} classes")
    order = np.argsort(accuracy)
    if len(order) > 2 * MAX_BARS_EACH_END:  # e.g. ImageNet's 1000: the worst and the best classes only
        order = np.concatenate([order[:MAX_BARS_EACH_END], order[-MAX_BARS_EACH_END:]])
        title = (title or "per-class accuracy") + f" ({MAX_BARS_EACH_END} worst and best of {len(accuracy)})"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, max(2.5, 0.28 * len(order) + 1.0)))
    ax.barh(range(len(order)), accuracy[order], color="tab:blue")
    ax.set_yticks(range(len(order)), labels=[classes[i] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)")
    ax.axvline(float(accuracy.mean()), color="tab:red", ls="--", lw=1, label=f"mean {accuracy.mean():.1f}%")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "per-class accuracy")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_image_grid(
    images: Sequence[np.ndarray],
    path: str | os.PathLike,
    captions: Sequence[str] | None = None,
    caption_colours: Sequence[str] | None = None,
    columns: int = 8,
    title: str | None = None,
    cmap: str | None = None,
) -> Path:
    """A grid of images (H, W) or (H, W, 3) arrays in [0, 1] or uint8, with optional captions."""
    n = len(images)
    if n == 0:
        raise ValueError("no images to draw")
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 1.9 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        image = np.asarray(images[k])
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None, interpolation="nearest")
        if captions is not None:
            colour = caption_colours[k] if caption_colours is not None else "black"
            ax.set_title(captions[k], fontsize=7, color=colour)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_bars_with_errors(
    labels: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float] | None,
    path: str | os.PathLike,
    ylabel: str,
    title: str | None = None,
    reference: Sequence[float | None] | None = None,
    reference_label: str = "paper",
) -> Path:
    """Bars of means with std error bars, optionally beside reference values (e.g. the paper's)."""
    plt = pyplot()
    x = np.arange(len(labels))
    width = 0.38 if reference is not None else 0.6
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 1.5), 3.6))
    ax.bar(x - (width / 2 if reference is not None else 0), means, width, yerr=stds, capsize=3, label="measured")
    if reference is not None:
        ref = np.asarray([np.nan if r is None else r for r in reference], dtype=float)
        ax.bar(x + width / 2, ref, width, color="tab:gray", label=reference_label)
        ax.legend(fontsize=8)
    ax.set_xticks(x, labels=list(labels), fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
