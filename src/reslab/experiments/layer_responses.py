"""Figure 7 of the paper: the standard deviation of each 3x3 layer's response.

A response is the output of a 3x3 convolution's BatchNorm: after BN, before the ReLU and before
the shortcut addition. The paper's finding: residual functions are generally closer to zero than
the plain net's layers (smaller std), and deeper ResNets have smaller responses still.

Layers are found by running one batch: every BatchNorm2d whose input is exactly the output
tensor of a 3x3 Conv2d is a response, in execution order. This works for any network written
conv -> bn, whatever its module names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn


@dataclass(frozen=True)
class LayerResponse:
    index: int  # 1-based, in execution order
    name: str  # the BatchNorm module's name
    std: float  # over all images, channels and positions


def response_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.BatchNorm2d]]:
    """The (name, BN) pairs that directly follow a 3x3 convolution, in execution order."""
    conv_outputs: set[int] = set()
    keep_alive: list[torch.Tensor] = []  # so no later tensor can reuse a recorded id
    order: list[tuple[str, nn.BatchNorm2d]] = []
    handles = []

    def after_conv(module, inputs, output):
        conv_outputs.add(id(output))
        keep_alive.append(output)

    def before_bn(name):
        def hook(module, inputs):
            if id(inputs[0]) in conv_outputs and all(name != n for n, _ in order):
                order.append((name, module))

        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(before_bn(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return order


class _RunningStd:
    """Exact std of every element seen, in float64 (sum and sum of squares), unbiased like torch.std."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0

    def add(self, t: torch.Tensor) -> None:
        t = t.detach().double()
        self.n += t.numel()
        self.total += t.sum().item()
        self.total_sq += (t * t).sum().item()

    def value(self) -> float:
        if self.n < 2:
            return float("nan")
        mean = self.total / self.n
        return math.sqrt(max(self.total_sq - self.n * mean * mean, 0.0) / (self.n - 1))


def layer_response_stds(
    model: nn.Module,
    batches: Iterable,
    device: str | torch.device = "cpu",
    max_images: int | None = None,
) -> list[LayerResponse]:
    """Std of each 3x3 layer's response (after BN, before addition/ReLU) over the images in `batches`.

    batches: an iterable of image tensors or (images, labels) pairs (a DataLoader works).
    The model runs in eval mode, so BN uses its running statistics, as when the paper measured.
    """
    device = torch.device(device)
    model = model.to(device)
    layers: list[tuple[str, nn.BatchNorm2d]] | None = None
    stats: list[_RunningStd] = []
    handles = []
    seen = 0
    was_training = model.training
    model.eval()
    from ..data.progress import image_progress

    try:
        with torch.no_grad(), image_progress() as progress:
            task = progress.add_task("measuring layer responses", total=max_images)
            for batch in batches:
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                if max_images is not None:
                    images = images[: max_images - seen]
                if len(images) == 0:
                    break
                images = images.to(device, non_blocking=True)
                if layers is None:
                    layers = response_layers(model, images[:1])
                    stats = [_RunningStd() for _ in layers]
                    for (_, bn), stat in zip(layers, stats):
                        handles.append(bn.register_forward_hook(lambda m, i, o, stat=stat: stat.add(o)))
                model(images)
                seen += len(images)
                progress.update(task, advance=len(images))
                if max_images is not None and seen >= max_images:
                    break
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if layers is None:
        raise ValueError("no images to measure layer responses on")
    return [LayerResponse(i + 1, name, stat.value()) for i, ((name, _), stat) in enumerate(zip(layers, stats))]


def plot_layer_responses(curves: dict[str, list[LayerResponse]], path) -> Path:
    """The paper's Figure 7: std by layer index (top) and sorted by magnitude (bottom)."""
    from ..plots import pyplot, save_figure

    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6.5))
    for label, responses in curves.items():
        stds = [r.std for r in responses]
        style = dict(ls="--") if label.startswith("plain") else dict(ls="-")
        top.plot(range(1, len(stds) + 1), stds, marker=".", label=label, **style)
        bottom.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), marker=".", label=label, **style)
    top.set_xlabel("layer index (original)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std of response")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("standard deviations of 3x3 layer responses (after BN, before addition and ReLU)")
    fig.tight_layout()
    return save_figure(fig, path)


def run_layer_responses(setup, depths=(20, 56), runs: list | None = None, max_images: int = 1000) -> dict:
    """Measure Figure 7 on trained runs (`runs`), or train plain/residual nets at `depths` first.

    setup: an ExperimentSetup (its first seed trains; its data path, when set, replaces the runs' own).
    """
    from ..report.evaluation import eval_batches
    from ..inference import load
    from .common import train_net, write_results
    from .degradation import net_changes

    out = Path(setup.out)
    if runs:
        run_dirs = [Path(r) for r in runs]
        trained = []
    else:
        seed = setup.seeds[0]
        trained = [train_net(setup, f"{kind}{d}", net_changes(f"{kind}{d}"), seed) for d in depths for kind in ("plain", "resnet")]
        run_dirs = [r.run_dir for r in trained]
    curves: dict[str, list[LayerResponse]] = {}
    configs: dict[str, dict] = {}
    for run_dir in run_dirs:
        loaded = load(run_dir)
        model, config, preprocess = loaded.network, loaded.config, loaded.preprocess
        configs[str(run_dir)] = config
        _data, batches = eval_batches(config, setup.data or None, mean=preprocess.mean, std=preprocess.std)
        label = str(config["model"]["name"])
        if label in curves:
            label = f"{label} ({run_dir.name})"
        curves[label] = layer_response_stds(model, batches, max_images=max_images)
    plot = plot_layer_responses(curves, out / "layer_responses.png")
    table = ["| network | 3x3 layers | mean std | max std | min std |", "|---|---|---|---|---|"]
    for label, rs in curves.items():
        stds = [r.std for r in rs]
        table.append(f"| {label} | {len(stds)} | {sum(stds) / len(stds):.3f} | {max(stds):.3f} | {min(stds):.3f} |")
    sentences = response_verdict(curves)
    markdown = ("# Layer responses (the paper's Figure 7)\n\n![responses](layer_responses.png)\n\n" + "\n".join(table)
                + "\n\n" + "\n\n".join(sentences)
                + f"\n\nStd over all of up to {max_images} evaluation images, channels and positions of each 3x3 layer's "
                "BatchNorm output (before the addition and the ReLU), BN in eval mode.")
    summary = {"responses": {k: [{"index": r.index, "layer": r.name, "std": r.std} for r in v] for k, v in curves.items()},
               "verdict": sentences, "runs": [str(r) for r in run_dirs], "run_configs": configs, "plot": str(plot)}
    write_results(out, "layer-responses", setup, trained, summary, markdown, given_runs=bool(runs))
    return summary


def response_verdict(curves: dict[str, list[LayerResponse]]) -> list[str]:
    """Compare mean response std of residual vs plain nets of the same depth (the paper's claim)."""
    import re

    def depth(label):
        m = re.search(r"(\d+)", label)
        return int(m.group(1)) if m else None

    means = {label: sum(r.std for r in rs) / len(rs) for label, rs in curves.items() if rs}
    sentences = []
    for label, mean in means.items():
        if not label.startswith("resnet"):
            continue
        twin = next((p for p in means if p.startswith("plain") and depth(p) == depth(label)), None)
        if twin is None:
            continue
        word = "smaller" if mean < means[twin] else "larger"
        sentences.append(f"{label}'s 3x3 responses are {word} than {twin}'s (mean std {mean:.3f} vs {means[twin]:.3f})"
                         + (", as the paper finds: residual functions stay closer to zero." if word == "smaller" else
                            ", unlike the paper's finding (short training can leave this unresolved)."))
    return sentences
