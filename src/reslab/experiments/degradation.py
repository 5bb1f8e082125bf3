"""The degradation problem (the paper's Figures 1, 4 and 6, left vs right).

Plain and residual CIFAR nets at two or more depths, one recipe, one or more seeds. The deeper
plain net trains worse than the shallower one (higher training error, so not overfitting); with
identity shortcuts the deeper net trains better. The verdict sentences below are computed from
the measured numbers and hedged when a difference is within seed noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .common import Changes, ExperimentSetup, RunResult, by_net, fmt_mean_std, mean_curve, mean_std, train_net, write_results

PLAIN_DEPTHS = (20, 32, 44, 56, 110)


@dataclass(frozen=True)
class DepthErrors:
    """Final errors (percent) over seeds of one network."""

    net: str
    depth: int
    train: tuple[float, ...]
    test: tuple[float, ...]


def _compare(deep: DepthErrors, shallow: DepthErrors, which: str) -> tuple[float, float, bool]:
    """(difference deep - shallow in mean `which` error, its noise, whether noise was measured)."""
    d_vals, s_vals = getattr(deep, which), getattr(shallow, which)
    (dm, ds), (sm, ss) = mean_std(d_vals), mean_std(s_vals)
    measured = len(d_vals) >= 2 and len(s_vals) >= 2
    # spread of a difference of two independent runs; seeds estimate it
    return dm - sm, math.sqrt(ds**2 + ss**2), measured


def verdict(plain: Sequence[DepthErrors], residual: Sequence[DepthErrors]) -> list[str]:
    """Sentences saying whether the deeper plain net trains worse, and whether shortcuts remove that.

    plain, residual: errors of each depth (any order). Judged on the final training error (the
    degradation is an optimisation problem), with the test error quoted beside it.
    """
    sentences: list[str] = []
    plain = sorted(plain, key=lambda e: e.depth)
    residual = sorted(residual, key=lambda e: e.depth)
    degraded = None
    plain_gap = None  # deep minus shallow plain training error, when the plain nets degrade
    if len(plain) >= 2:
        shallow, deep = plain[0], plain[-1]
        diff, noise, measured = _compare(deep, shallow, "train")
        nums = (f"final training error {mean_std(deep.train)[0]:.2f}% vs {mean_std(shallow.train)[0]:.2f}%, "
                f"test error {mean_std(deep.test)[0]:.2f}% vs {mean_std(shallow.test)[0]:.2f}%")
        if measured and abs(diff) <= noise:
            degraded = None
            sentences.append(f"The deeper plain net ({deep.net}) and the shallower one ({shallow.net}) train equally well "
                             f"within seed noise ({nums}; difference {diff:+.2f} points, seed spread ±{noise:.2f}): "
                             "no degradation is resolved at this scale.")
        elif diff > 0:
            degraded, plain_gap = True, diff
            hedge = "" if measured else " (one seed, so seed noise is unmeasured: run more seeds to confirm)"
            sentences.append(f"The deeper plain net ({deep.net}) trains worse than the shallower one ({shallow.net}): "
                             f"{nums}. That is the degradation problem{hedge}.")
        else:
            degraded = False
            hedge = "" if measured else " (one seed, so seed noise is unmeasured)"
            sentences.append(f"The deeper plain net ({deep.net}) trains better than the shallower one ({shallow.net}) here "
                             f"({nums}){hedge}: no degradation at this scale; the paper sees it with full training.")
    if len(residual) >= 2:
        shallow, deep = residual[0], residual[-1]
        diff, noise, measured = _compare(deep, shallow, "train")
        nums = (f"final training error {mean_std(deep.train)[0]:.2f}% vs {mean_std(shallow.train)[0]:.2f}%, "
                f"test error {mean_std(deep.test)[0]:.2f}% vs {mean_std(shallow.test)[0]:.2f}%")
        hedge = "" if measured else " (one seed)"
        if measured and abs(diff) <= noise:
            tail = "so the shortcuts remove the degradation" if degraded else "as expected with shortcuts"
            sentences.append(f"The residual nets {deep.net} and {shallow.net} train equally well within seed noise "
                             f"({nums}; difference {diff:+.2f} ± {noise:.2f}), {tail}.")
        elif diff < 0:
            lead = "The residual nets remove it" if degraded else "With shortcuts"
            sentences.append(f"{lead}: the deeper {deep.net} trains better than {shallow.net} ({nums}){hedge}.")
        elif degraded and diff < 0.25 * plain_gap:
            # the deeper residual net still ends a little behind, but the gap the plain nets open is mostly closed
            sentences.append(f"The residual nets remove most of it: the deeper {deep.net} ends {diff:.2f} points behind "
                             f"{shallow.net} ({nums}), against {plain_gap:.2f} points between the plain nets{hedge}.")
        else:
            lead = "The residual nets do not remove it at this scale" if degraded else "With shortcuts too"
            sentences.append(f"{lead}: the deeper {deep.net} still trains worse than {shallow.net} ({nums}){hedge}.")
    # the paper's other claim: at equal depth the residual net trains better than the plain one
    plain_by_depth = {e.depth: e for e in plain}
    for res in residual:
        twin = plain_by_depth.get(res.depth)
        if twin is None:
            continue
        diff, noise, measured = _compare(res, twin, "train")
        if measured and abs(diff) <= noise:
            sentences.append(f"At depth {res.depth}, {res.net} and {twin.net} end within seed noise of each other.")
        else:
            word = "lower" if diff < 0 else "higher"
            sentences.append(f"At depth {res.depth}, {res.net} ends with {abs(diff):.2f} points {word} training error "
                             f"than {twin.net}{'' if measured else ' (one seed)'}.")
    return sentences


def depth_errors(results: Sequence[RunResult], depths: dict[str, int]) -> list[DepthErrors]:
    return [
        DepthErrors(net, depths[net], tuple(r.final_train_error for r in runs), tuple(r.final_test_error for r in runs))
        for net, runs in by_net(results).items()
    ]


def plot_degradation(results: Sequence[RunResult], path: Path, depths: dict[str, int]) -> Path:
    """Figure 4: plain (left) and residual (right); training error thin dashed, test error bold."""
    from ..plots import integer_ticks, pyplot, save_figure

    plt = pyplot()
    grouped = by_net(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ordered_depths = sorted(set(depths.values()))
    for ax, family, title in ((axes[0], "plain", "plain networks"), (axes[1], "resnet", "ResNets")):
        for net, runs in sorted(grouped.items(), key=lambda kv: depths[kv[0]]):
            if not net.startswith(family):
                continue
            colour = colours[ordered_depths.index(depths[net]) % len(colours)]
            x, y = mean_curve(runs, "train_top1")
            ax.plot(x, y, color=colour, lw=1.0, ls="--")
            x, y = mean_curve(runs, "val_top1")
            ax.plot(x, y, color=colour, lw=2.4, label=f"{family}-{depths[net]}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(integer_ticks())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    seeds = max((len(v) for v in grouped.values()), default=1)
    fig.suptitle(f"degradation: dashed = training error, bold = test error (mean of {seeds} seed{'s' * (seeds > 1)})")
    fig.tight_layout()
    return save_figure(fig, path)


def net_changes(net: str) -> Changes:
    """Model keys for a plain or residual CIFAR net; plain nets take no shortcut option."""
    return {"model": {"name": net, "options": {}}} if net.startswith("plain") else {"model": {"name": net}}


def run_degradation(setup: ExperimentSetup, depths: Sequence[int] = (20, 56)) -> dict:
    """Train plain and residual nets at `depths` for every seed; write plots and results; return the summary."""
    nets = {f"plain{d}": d for d in depths} | {f"resnet{d}": d for d in depths}
    results = []
    for seed in setup.seeds:
        for net in nets:
            results.append(train_net(setup, net, net_changes(net), seed))
    return summarise_degradation(setup, results, nets)


def summarise_degradation(setup: ExperimentSetup, results: Sequence[RunResult], nets: dict[str, int]) -> dict:
    out = Path(setup.out)
    errors = depth_errors(results, nets)
    plain = [e for e in errors if e.net.startswith("plain")]
    residual = [e for e in errors if e.net.startswith("resnet")]
    sentences = verdict(plain, residual)
    plot = plot_degradation(results, out / "degradation.png", nets)
    table = ["| network | depth | final training error (%) | final test error (%) | seeds |", "|---|---|---|---|---|"]
    for e in sorted(errors, key=lambda e: (not e.net.startswith("plain"), e.depth)):
        table.append(f"| {e.net} | {e.depth} | {fmt_mean_std(e.train)} | {fmt_mean_std(e.test)} | {len(e.train)} |")
    markdown = ("# Degradation: plain vs residual networks\n\n![degradation](degradation.png)\n\n"
                + "\n".join(table) + "\n\n" + "\n\n".join(sentences)
                + "\n\nErrors are the last epoch's (mean ± sample std over seeds); test error is measured on the run's evaluation split.")
    summary = {
        "verdict": sentences,
        "errors": [{"net": e.net, "depth": e.depth, "train_error": list(e.train), "test_error": list(e.test),
                    "train_error_mean_std": mean_std(e.train), "test_error_mean_std": mean_std(e.test)} for e in errors],
        "plot": str(plot),
    }
    write_results(out, "degradation", setup, results, summary, markdown)
    return summary
