"""Convolution vs attention: how accuracy grows with the training set, at the same compute.

A convolution's weights are learned constants applied to a 3x3 neighbourhood: locality and
translation equivariance are built in. Attention's weights are computed from the input and reach
the whole image from the first block: nothing is assumed, so it must be learned from data. The
claim (Dosovitskiy et al. 2020, sec. 4.3; Lee et al. 2021 for small datasets): with little data
the CNN wins clearly, and the gap narrows as data grows.

The two networks cost the same per image, so the same number of steps on the same batches is the
same compute budget:
- CIFAR ResNet-20 (option A): 0.27M parameters, 40.6 MMACs at 32x32;
- a ViT of 4 blocks of width 128 (4 heads, MLP 256, 4x4 patches: 64 tokens + the class token):
  0.55M parameters, 38.8 MMACs, attention's Q K^T and weights x V included (`reslab profile`).
Each trains with its own literature recipe: SGD with Nesterov momentum for the ResNet (the paper's,
with cosine decay); AdamW, weight decay 0.05, gradient clipping and stochastic depth for the ViT
(DeiT; Lee et al. 2021; Hassani et al. 2021). Both get the same warm-up + cosine schedule, label
smoothing 0.1, crop + flip augmentation and mixed precision. The subsets are seeded
(`data.limit_per_class`) and every network of a size sees the same images; the test set is
CIFAR-10's 10,000 test images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .common import ExperimentSetup, Preset, RunResult, by_net, fmt_mean_std, mean_std, train_net, write_results

# torchvision's names and constructor arguments (vit_tiny_patch4_32's options)
VIT_OPTIONS = {"hidden_dim": 128, "num_heads": 4, "mlp_dim": 256, "num_layers": 4, "stochastic_depth": 0.1}
# each network's own config keys by section (applied over the preset's)
NETS = {
    "resnet20": {
        "model": {"name": "resnet20", "options": {"shortcut": "A"}},
        # the paper's SGD at batch 128, Nesterov momentum, no decay on BN and biases
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "no_decay_norm_bias": True},
        "train": {"channels_last": True},  # faster convolutions; the same arithmetic
    },
    "vit": {
        "model": {"name": "vit_tiny_patch4_32", "options": dict(VIT_OPTIONS)},
        # AdamW at batch 128 (Lee et al. 2021); no decay on norms, biases, position embeddings, class token
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "no_decay_norm_bias": True},
        "train": {"grad_clip": 1.0},
    },
}
LABELS = {"resnet20": "ResNet-20 (conv)", "vit": "ViT 4x128, patch 4 (attention)"}


def _common(steps: int, warmup: int) -> tuple[str, ...]:
    return (
        "data.augment=cifar_paper",
        "data.image_size=32",
        "data.val_fraction=0",
        "data.eval_split=test",
        "train.epochs=0",
        f"train.steps={steps}",
        "train.batch_size=128",
        "train.label_smoothing=0.1",
        "train.amp=auto",
        "train.eval_every=0",  # one evaluation, at the end
        "schedule.name=cosine",
        "schedule.unit=step",
        f"schedule.warmup={warmup}",
        "schedule.warmup_start=0.01",
    )


@dataclass(frozen=True)
class Budget:
    """A preset of this experiment: training images per class, and the steps every run gets."""

    preset: Preset
    per_class: tuple[int, ...]
    steps: int


# quick: three subset sizes, 200 steps of 128 images per run (26k images seen: 5 epochs of
# 500/class, 1 epoch of 2,500/class). Sized for the Intel CI machine's 10 minutes: the six runs
# take under 4 minutes on 2 quiet Zen 5 cores, which train ResNet-20 ~2.4x faster than it (the ViT
# trains at ~490 img/s there, ResNet-20 at ~1,300: small matmuls and elementwise ops).
QUICK = Budget(
    Preset(name="quick", recipe=None, overrides=_common(steps=200, warmup=20),
           description="CIFAR-10 subsets of 50, 500 and 2,500 images per class, 200 steps of 128 for every run: CPU minutes"),
    per_class=(50, 500, 2500),
    steps=200,
)
# full: five sizes up to all of CIFAR-10, 39k steps (100 epochs of the full set) per run, three seeds
FULL = Budget(
    Preset(name="full", recipe=None, overrides=_common(steps=39_000, warmup=1950),
           description="CIFAR-10 subsets of 100 to 5,000 images per class, 39,000 steps of 128 (100 epochs of the full set) per run: GPU hours"),
    per_class=(100, 250, 500, 1000, 2500, 5000),
    steps=39_000,
)
BUDGETS = {"quick": QUICK, "full": FULL}


@dataclass(frozen=True)
class Point:
    """Final test accuracies (percent) over seeds of one network at one subset size."""

    net: str
    per_class: int
    test: tuple[float, ...]
    train: tuple[float, ...]


def _accuracy(errors: Sequence[float | None]) -> tuple[float, ...]:
    return tuple(100.0 - e for e in errors if e is not None)


def run_name(net: str, per_class: int) -> str:
    return f"{net}-n{per_class}"


def run_conv_vs_attention(setup: ExperimentSetup, budget: Budget = QUICK, per_class: Sequence[int] | None = None) -> dict:
    """Train both networks on every subset size for every seed; write the plot and results; return the summary."""
    import dataclasses

    setup = dataclasses.replace(setup, preset=budget.preset)
    sizes = tuple(per_class or budget.per_class)
    results = []
    for seed in setup.seeds:
        for n in sizes:
            for net, changes in NETS.items():
                results.append(train_net(setup, run_name(net, n), {**changes, "data": {"limit_per_class": n}}, seed))
    return summarise(setup, results, sizes, budget.steps)


def points(results: Sequence[RunResult], sizes: Sequence[int]) -> list[Point]:
    grouped = by_net(results)
    found = []
    for n in sizes:
        for net in NETS:
            runs = grouped.get(run_name(net, n), [])
            if runs:
                found.append(Point(net, n, _accuracy([r.final_test_error for r in runs]),
                                   _accuracy([r.final_train_error for r in runs])))
    return found


def verdict(found: Sequence[Point]) -> list[str]:
    """Sentences from the measured accuracies: the CNN's lead at each size, and whether it shrinks with data."""
    by = {(p.net, p.per_class): p for p in found}
    sizes = sorted({p.per_class for p in found if ("resnet20", p.per_class) in by and ("vit", p.per_class) in by})
    if not sizes:
        return ["Both networks are needed at one subset size at least to compare them."]
    gaps = {}
    sentences = []
    for n in sizes:
        conv, attn = by[("resnet20", n)], by[("vit", n)]
        (cm, cs), (am, as_) = mean_std(conv.test), mean_std(attn.test)
        gaps[n] = (cm - am, math.hypot(cs, as_), len(conv.test) >= 2 and len(attn.test) >= 2)
        sentences.append(f"{n:,} images per class: ResNet-20 {fmt_mean_std(conv.test)}%, ViT {fmt_mean_std(attn.test)}% "
                         f"test accuracy ({cm - am:+.2f} points for the convolution; training accuracy "
                         f"{mean_std(conv.train)[0]:.1f}% vs {mean_std(attn.train)[0]:.1f}%).")
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        (g_small, n_small, measured_small), (g_large, n_large, measured_large) = gaps[small], gaps[large]
        noise = math.hypot(n_small, n_large)
        measured = measured_small and measured_large
        hedge = "" if measured else " (one seed: seed noise unmeasured, run --seeds 0,1,2 to confirm)"
        gain = {net: mean_std(by[(net, large)].test)[0] - mean_std(by[(net, small)].test)[0] for net in NETS}
        trend = (f"ResNet-20's margin over the ViT goes from {g_small:+.2f} points at {small:,} images per class to "
                 f"{g_large:+.2f} at {large:,} (the ViT gains {gain['vit']:.1f} points from the extra data, "
                 f"ResNet-20 {gain['resnet20']:.1f})")
        if measured and abs(g_small - g_large) <= noise:
            sentences.append(f"{trend}: the same within seed noise (±{noise:.2f}); no data-hungriness is resolved at this budget.")
        elif g_large < g_small and g_small > 0:
            turn = f", and turns into a lead for the ViT" if g_large < 0 else ""
            sentences.append(f"{trend}{turn}. Attention must learn from data the locality a convolution assumes: "
                             f"it is the more data-hungry of the two{hedge}.")
        elif g_large < g_small:
            sentences.append(f"{trend}: the ViT gains more from data, but it is ahead already on the smallest subset, "
                             f"which is not the expected picture: a budget this short may be too few steps for the "
                             f"ResNet's recipe{hedge}.")
        elif g_small < 0:
            sentences.append(f"{trend}: the ViT is ahead and ResNet-20 gains more from data, the opposite of the "
                             f"expected picture; a budget this short may be too few steps for the ResNet's recipe{hedge}.")
        else:
            sentences.append(f"{trend}: the margin does not shrink here{hedge}; at this budget the ViT is short of data "
                             "at every size, and the full preset trains up to 5,000 images per class for 100 epochs.")
    return sentences


def plot_accuracy_vs_data(found: Sequence[Point], path: Path, steps: int) -> Path:
    """Test accuracy against training images per class (log scale), mean ± std over seeds, and the gap."""
    from ..plots import pyplot, save_figure

    plt = pyplot()
    fig, (ax, gap_ax) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    colours = {"resnet20": "tab:blue", "vit": "tab:orange"}
    series = {}
    for net in NETS:
        pts = sorted((p for p in found if p.net == net), key=lambda p: p.per_class)
        if not pts:
            continue
        x = [p.per_class for p in pts]
        m = [mean_std(p.test)[0] for p in pts]
        s = [mean_std(p.test)[1] for p in pts]
        series[net] = dict(zip(x, m))
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, lw=2, color=colours[net], label=LABELS[net])
        ax.plot(x, [mean_std(p.train)[0] for p in pts], ls="--", lw=1, color=colours[net], alpha=0.7)
    sizes = sorted({p.per_class for p in found})
    ax.set_xscale("log")
    ax.set_xticks(sizes, labels=[f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel("CIFAR-10 accuracy (%)")
    ax.set_title("test (bold) and training (dashed) accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    shared = sorted(set(series.get("resnet20", {})) & set(series.get("vit", {})))
    if shared:
        gaps = [series["resnet20"][n] - series["vit"][n] for n in shared]
        positions = list(range(len(shared)))
        gap_ax.bar(positions, gaps, color=["tab:blue" if g >= 0 else "tab:orange" for g in gaps])
        gap_ax.set_xticks(positions, labels=[f"{n:,}" for n in shared])
        gap_ax.axhline(0, color="black", lw=0.8)
        for i, g in zip(positions, gaps):
            gap_ax.annotate(f"{g:+.1f}", (i, g), ha="center", va="bottom" if g >= 0 else "top", fontsize=8)
    gap_ax.set_xlabel("training images per class")
    gap_ax.set_ylabel("ResNet-20 minus ViT (points)")
    gap_ax.set_title("the convolution's margin (blue: conv ahead)")
    gap_ax.grid(axis="y", alpha=0.3)
    seeds = max((len(p.test) for p in found), default=1)
    fig.suptitle(f"convolution vs attention at the same compute ({steps:,} steps of 128 images per run, "
                 f"{seeds} seed{'s' * (seeds > 1)})")
    fig.tight_layout()
    return save_figure(fig, path)


def summarise(setup: ExperimentSetup, results: Sequence[RunResult], sizes: Sequence[int], steps: int) -> dict:
    from ..analysis.zoo import profile_by_name

    out = Path(setup.out)
    found = points(results, sizes)
    sentences = verdict(found)
    steps = int(results[0].config["train"]["steps"]) if results else steps  # what the runs did (--set may change it)
    plot = plot_accuracy_vs_data(found, out / "conv_vs_attention.png", steps)
    costs = {net: profile_by_name(c["model"]["name"], **c["model"]["options"]) for net, c in NETS.items()}
    cost_rows = ["| network | parameters | MMACs per 32x32 image | training MMACs per run (x3 for backward) |", "|---|---|---|---|"]
    for net, p in costs.items():
        cost_rows.append(f"| {LABELS[net]} | {p.params:,} | {p.macs / 1e6:.1f} | {3 * p.macs * steps * 128 / 1e6:,.0f} |")
    table = ["| images per class | network | test accuracy (%) | training accuracy (%) | seeds |", "|---|---|---|---|---|"]
    for p in found:
        table.append(f"| {p.per_class:,} | {LABELS[p.net]} | {fmt_mean_std(p.test)} | {fmt_mean_std(p.train)} | {len(p.test)} |")
    markdown = ("# Convolution vs attention: accuracy against training images, same compute\n\n"
                "![conv vs attention](conv_vs_attention.png)\n\n" + "\n".join(cost_rows) + "\n\n" + "\n".join(table)
                + "\n\n" + "\n\n".join(sentences)
                + "\n\nAccuracies are the last step's (mean ± sample std over seeds), on CIFAR-10's test set; training "
                "accuracy is the running accuracy of the last epoch, on augmented images.")
    summary = {
        "verdict": sentences,
        "steps": steps,
        "costs": {net: {"params": p.params, "macs": p.macs} for net, p in costs.items()},
        "points": [{"net": p.net, "per_class": p.per_class, "test_accuracy": list(p.test), "train_accuracy": list(p.train),
                    "test_accuracy_mean_std": mean_std(p.test)} for p in found],
        "plot": str(plot),
    }
    write_results(out, "conv-vs-attention", setup, results, summary, markdown)
    return summary
