"""Tables, figures and verdicts of the training lessons (`tricks.py` trains the runs).

Final numbers are measured on each dataset's test set with the run's own normalisation; curves
are the runs' per-epoch metrics. A verdict is computed from the numbers, and says "one seed"
when seed noise is unmeasured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .common import RunResult, fmt_mean_std, mean_std


# ----------------------------------------------------------------------------------- evaluation


def evaluate_weights(run_dir: Path, split: str = "test", which: str = "last", device: str = "auto") -> dict:
    """Top-1, ECE and mean confidence of a run's weights on one split of its own dataset."""
    import torch

    from ..data import DataConfig, build_eval_loader
    from ..train.calibration import calibration_bins, expected_calibration_error, softmax_outputs
    from ..inference import load

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    loaded = load(run_dir, device=dev, which=which)
    model, config, pre = loaded.network, loaded.config, loaded.preprocess
    cfg = DataConfig.from_dict({**config["data"], "limit_per_class": config["data"].get("limit_per_class", 0)})
    loader, _ = build_eval_loader(cfg, split, 512, mean=pre.mean[: pre.channels], std=pre.std[: pre.channels], device=dev)
    probs, labels = softmax_outputs(model, loader, dev)
    return {"top1": 100.0 * float((probs.argmax(1) == labels).mean()), "ece": expected_calibration_error(probs, labels),
            "confidence": 100.0 * float(probs.max(1).mean()), "count": int(len(labels)),
            "bins": calibration_bins(probs, labels)}  # fmt: skip


class Evaluations:
    """Each (run, split, weights) evaluated once per summary."""

    def __init__(self, device: str):
        self.device, self.done = device, {}

    def __call__(self, run: RunResult, split: str = "test", which: str = "last") -> dict:
        key = (str(run.run_dir), split, which)
        if key not in self.done:
            self.done[key] = evaluate_weights(run.run_dir, split, which, self.device)
        return self.done[key]

    def mean(self, runs: Sequence[RunResult], metric: str, split: str = "test", which: str = "last") -> list[float]:
        return [self(r, split, which)[metric] for r in runs]


def last(rows: list[dict], key: str):
    for row in reversed(rows):
        if row.get(key) is not None:
            return float(row[key])
    return None


def mean_last(runs: Sequence[RunResult], key: str, error: bool = False) -> list[float]:
    values = [last(r.rows, key) for r in runs]
    return [100.0 - v if error else v for v in values if v is not None]


def curve(runs: Sequence[RunResult], key: str, error: bool = False) -> tuple[list[float], list[float]]:
    """Epochs and the seed-mean of `key` (100 - key when `error`) where every seed has it."""
    per_epoch: dict[float, list[float]] = {}
    for r in runs:
        for row in r.rows:
            if row.get(key) is not None:
                per_epoch.setdefault(float(row["epoch"]), []).append(100.0 - row[key] if error else row[key])
    epochs = sorted(e for e, v in per_epoch.items() if len(v) == len(runs))
    return epochs, [sum(per_epoch[e]) / len(runs) for e in epochs]


def seeds_note(runs: Sequence[RunResult]) -> str:
    return "" if len(runs) > 1 else " (one seed: seed noise unmeasured)"


def differs(a: Sequence[float], b: Sequence[float]) -> bool:
    """True unless both have >= 2 seeds and the means differ by less than their combined spread."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if len(a) < 2 or len(b) < 2:
        return True
    return abs(ma - mb) > math.sqrt(sa**2 + sb**2)


def m(values: Sequence[float]) -> float:
    return mean_std(values)[0]


# ------------------------------------------------------------------------------------- figures


def _axes(n: int, width: float = 5.2):
    from ..plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, n, figsize=(width * n, 3.9), squeeze=False)
    return plt, fig, list(axes[0])


def _finish(ax, xlabel: str, ylabel: str, title: str, log: bool = False) -> None:
    from ..plots import integer_ticks

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(integer_ticks())
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def error_curves(ax, runs_by_label: dict, eval_label: str) -> None:
    """Training error dashed, evaluation error bold, one colour per network."""
    for i, (label, runs) in enumerate(runs_by_label.items()):
        colour = f"C{i}"
        x, y = curve(runs, "train_top1", error=True)
        ax.plot(x, y, color=colour, lw=1.0, ls="--", label=f"{label}: training")
        x, y = curve(runs, "val_top1", error=True)
        ax.plot(x, y, color=colour, lw=2.2, label=f"{label}: {eval_label}")


def save(fig, path: Path, title: str) -> Path:
    from ..plots import save_figure

    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------ summary


def summarise_lessons(out: Path, runs: dict[str, list[RunResult]], preset, lessons: Sequence[str], device: str) -> dict:
    """{"json": numbers and verdicts per lesson, "markdown": results.md's body}."""
    from .tricks_lessons import LESSON_SUMMARIES

    evaluations = Evaluations(device)
    sections, numbers = [], {}
    for lesson in lessons:
        section = LESSON_SUMMARIES[lesson](Path(out), runs, preset, evaluations)
        numbers[lesson] = {"verdict": section["verdict"], "numbers": section["numbers"], "figure": str(section["figure"])}
        sections.append(f"## {section['title']}\n\n![{lesson}]({Path(section['figure']).name})\n\n"
                        + "\n".join(section["table"]) + "\n\n" + " ".join(section["verdict"]))
    markdown = "# Training lessons\n\n" + "\n\n".join(sections)
    return {"json": {"lessons": numbers, "verdict": [s for v in numbers.values() for s in v["verdict"]]}, "markdown": markdown}
