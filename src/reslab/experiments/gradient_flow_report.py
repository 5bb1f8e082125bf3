"""The gradient-flow figure, table and verdict from the recorded per-layer gradient norms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def conv_norms(row: dict) -> np.ndarray:
    """The conv layers' gradient norms of a recorded step, input to output (the fc layer left out)."""
    return np.array([n for n, name in zip(row["norms"], row["layers"]) if name != "fc.weight"], dtype=float)


def attenuation(row: dict) -> float:
    """Last conv layer's gradient norm over the first's: > 1 when the first layer gets less gradient."""
    norms = conv_norms(row)
    return float(norms[-1] / max(norms[0], 1e-30))


def pick(rows: list[dict], step: int) -> dict | None:
    return next((r for r in rows if r["step"] == step), None)


def summarise_gradient_flow(out: Path, nets: tuple[str, str], recorded: dict, results) -> dict:
    from ..plots import pyplot, save_figure

    plain, res = nets
    first = {net: recorded[net][0] for net in nets}  # the first seed's recordings draw the figure
    steps_per_epoch = int(results[0].rows[0]["step"]) if results[0].rows else 1
    final_step = min(first[net][-1]["step"] for net in nets)
    moments = [("at initialisation (step 0)", 0), ("end of epoch 1", steps_per_epoch - 1), (f"end (step {final_step + 1})", final_step)]

    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    for ax, (title, step) in zip(axes[:3], moments):
        for i, net in enumerate(nets):
            row = pick(first[net], step)
            if row is None:
                continue
            norms = conv_norms(row)
            ax.plot(np.arange(1, len(norms) + 1), norms, color=f"C{i}", lw=1.6, label=net)
        ax.set_yscale("log")
        ax.set_xlabel("conv layer (input -> output)")
        ax.set_ylabel("gradient norm of the layer's weights")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    for i, net in enumerate(nets):
        steps = [r["step"] + 1 for r in first[net]]
        axes[3].plot(steps, [attenuation(r) for r in first[net]], "o-", color=f"C{i}", label=net)
    axes[3].axhline(1.0, color="0.5", lw=1, ls="--")
    axes[3].set_xscale("log")
    axes[3].set_yscale("log")
    axes[3].set_xlabel("optimizer step")
    axes[3].set_ylabel("last / first conv layer gradient norm")
    axes[3].set_title("how much less gradient the first layer gets", fontsize=10)
    axes[3].grid(alpha=0.3, which="both")
    axes[3].legend(fontsize=8)
    fig.suptitle(f"Gradient flow: {plain} vs {res} (per-layer gradient norms, log scale)", fontsize=11)
    fig.tight_layout()
    figure = save_figure(fig, out / "gradient_flow.png")

    table = ["| network | when | first conv | middle conv | last conv | fc | last / first |", "|---|---|---|---|---|---|---|"]
    numbers = {}
    for net in nets:
        numbers[net] = {}
        for title, step in moments:
            rows = [pick(rs, step) for rs in recorded[net]]
            rows = [r for r in rows if r is not None]
            if not rows:
                continue
            c = np.mean([conv_norms(r) for r in rows], axis=0)
            fc = float(np.mean([r["norms"][-1] for r in rows]))
            ratio = float(np.exp(np.mean([math.log(attenuation(r)) for r in rows])))
            numbers[net][str(step)] = {"first": float(c[0]), "middle": float(c[len(c) // 2]), "last": float(c[-1]), "fc": fc,
                                       "attenuation": ratio, "conv_norms": c.tolist()}  # fmt: skip
            table.append(f"| {net} | {title} | {c[0]:.3g} | {c[len(c) // 2]:.3g} | {c[-1]:.3g} | {fc:.3g} | {ratio:.3g} |")
    verdict = gradient_verdict(numbers, nets, moments, len(results) // 2)
    markdown = ("# Gradient flow: plain vs residual\n\n![gradient flow](gradient_flow.png)\n\n" + "\n".join(table)
                + "\n\n" + " ".join(verdict)
                + "\n\nNorms are of each layer's weight gradient (the batch's mean loss), recorded before the optimizer "
                "step; 'last / first' is the last conv layer's norm over the first's (above 1: the first layer gets less).")  # fmt: skip
    return {"json": {"verdict": verdict, "numbers": numbers, "plot": str(figure)}, "markdown": markdown}


def gradient_verdict(numbers: dict, nets: tuple[str, str], moments, seeds: int) -> list[str]:
    plain, res = nets
    sentences = []
    hedge = "" if seeds > 1 else " (one seed)"
    for title, step in (moments[0], moments[-1]):
        key = str(step)
        if key not in numbers[plain] or key not in numbers[res]:
            continue
        a_p, a_r = numbers[plain][key]["attenuation"], numbers[res][key]["attenuation"]
        if a_p > 2 * a_r:
            judgement = (f"the plain net's first layer gets {a_p / a_r:.1f}x less gradient, relative to its last, than the "
                         "residual net's: the identity shortcuts carry the gradient down to the first layers")
        elif a_r > 2 * a_p:
            judgement = "the residual net's first layer gets relatively less gradient here than the plain net's"
        else:
            judgement = ("the two spread their gradient over depth alike (within a factor of 2): with BatchNorm the plain "
                         "net's gradients do not vanish either, as the ResNet paper observes (section 4.1)")
        sentences.append(f"{title.capitalize()}, the last conv layer's gradient norm is {a_p:.3g}x the first's in {plain} and "
                         f"{a_r:.3g}x in {res}: {judgement}{hedge}.")
    return sentences
