"""Gradient flow: per-layer gradient norms of plain-56 and ResNet-56, at initialisation and while training.

A residual block computes y = x + F(x), so dy/dx = 1 + dF/dx: the gradient reaching an early layer
is the gradient of the loss plus contributions through every block, never only a product of 27
layer Jacobians as in the plain net. This experiment measures it. The training goes through the
engine with a classification task that also records, at chosen steps, the norm of every conv and
fc weight's gradient (a backward hook per parameter), before the optimizer uses it.

The ResNet paper (section 4.1) notes that with BatchNorm "the backward propagated gradients
exhibit healthy norms" in plain nets too, and that their difficulty is not vanishing gradients;
the verdict below says what this run shows, whichever way it goes.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..fileio import atomic_write_text
from ..train.task import ClassificationTask
from .common import ExperimentSetup, Preset, RunResult, train_net, write_results
from .degradation import net_changes

log = logging.getLogger(__name__)
GRADIENTS_FILE = "gradient_norms.jsonl"

# quick: the degradation experiment's CIFAR-10 subset (1,000 images per class at 16x16), 3 epochs,
# float32 (no autocast: the norms are the subject); lr 0.1 after a one-epoch warm-up from 0.01.
QUICK_FLOW = Preset(
    name="quick",
    recipe="cifar_resnet_paper",
    overrides=("data.limit_per_class=1000", "data.image_size=16", "data.cifar_pad=2", "data.val_fraction=0.02",
               "data.eval_split=holdout", "train.steps=0", "train.epochs=3", "train.batch_size=128",
               "schedule.unit=epoch", "schedule.milestones=[]", "schedule.warmup=1", "train.amp=off",
               "train.eval_every=1"),
    description="CIFAR-10 subset at 16x16 (1,000/class), 3 epochs, batch 128, float32",
)  # fmt: skip
FULL_FLOW = Preset(
    name="full",
    recipe="cifar_resnet_paper",
    overrides=("data.val_fraction=0.1", "data.eval_split=holdout", "train.steps=0", "train.epochs=10",
               "schedule.unit=epoch", "schedule.milestones=[]", "schedule.warmup=1", "train.amp=off"),
    description="CIFAR-10 (45k/5k) at 32x32, the first 10 epochs of the paper's recipe, float32",
)  # fmt: skip


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, weight) of every conv and fully connected layer, input to output."""
    return [(f"{name}.weight", m.weight) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


class GradientRecordingTask(ClassificationTask):
    """Classification that writes the gradient norm of every weight layer at the steps in `record`."""

    def __init__(self, cfg, record: Sequence[int] | None = None):
        super().__init__(cfg)
        self.record = set(record) if record is not None else None  # None: steps chosen from the run's length
        self.norms: dict[int, float] = {}
        self.recording = False
        self.rows: list[dict] = []  # {"step", "norms" per layer, "layers"} of each recorded step

    def build_model(self, num_classes: int) -> nn.Module:
        model = super().build_model(num_classes)
        self.layers = weight_layers(model)
        for index, (_name, weight) in enumerate(self.layers):
            weight.register_hook(lambda grad, index=index: self._seen(index, grad))
        return model

    def _seen(self, index: int, grad: torch.Tensor) -> None:
        if self.recording:  # accumulated micro-batches add up, as the optimizer's gradient does
            self.norms[index] = self.norms.get(index, 0.0) + float(grad.detach().float().pow(2).sum())

    def step(self, ctx, images, labels, generator) -> dict:
        if self.record is None:
            self.record = recorded_steps(ctx.steps_per_epoch, ctx.total_steps)
        self.recording = ctx.state.step in self.record
        return super().step(ctx, images, labels, generator)

    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        if not self.recording:
            return
        self.recording = False
        row = {"step": step - 1, "norms": [math.sqrt(self.norms.get(i, 0.0)) for i in range(len(self.layers))],
               "layers": [name for name, _ in self.layers]}  # fmt: skip
        self.norms = {}
        self.rows.append(row)


def recorded_steps(steps_per_epoch: int, total_steps: int) -> set[int]:
    """Step 0 (the initial weights), a few early steps, and the last step of every epoch."""
    early = {0, 1, 3, 10, 30, 100}
    ends = {e * steps_per_epoch - 1 for e in range(1, total_steps // steps_per_epoch + 1)}
    return {s for s in early | ends | {total_steps - 1} if 0 <= s < total_steps}


def train_recording(setup: ExperimentSetup, net: str, seed: int) -> tuple[RunResult, list[dict]]:
    """Train `net` with the recording task (or reuse a finished run and its recorded norms)."""
    holder = {}

    def factory(cfg):
        holder["task"] = GradientRecordingTask(cfg)
        return holder["task"]

    result = train_net(setup, net, net_changes(net), seed, task=factory)
    path = Path(result.run_dir) / GRADIENTS_FILE
    if "task" in holder:
        previous = _read_rows(path)  # a resumed run appends to what the stopped one recorded
        rows = previous + [r for r in holder["task"].rows if r["step"] not in {p["step"] for p in previous}]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in sorted(rows, key=lambda r: r["step"])))
    rows = _read_rows(path)
    if not rows:
        log.warning("%s has no recorded gradients (%s); move the run away to train it again", result.run_dir, GRADIENTS_FILE)
    return result, rows


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_gradient_flow(setup: ExperimentSetup, depth: int = 56) -> dict:
    """plain-`depth` vs resnet-`depth`: record, plot, judge; writes results.json/md and gradient_flow.png."""
    nets = (f"plain{depth}", f"resnet{depth}")
    results, recorded = [], {}
    for seed in setup.seeds:
        for net in nets:
            result, rows = train_recording(setup, net, seed)
            results.append(result)
            recorded.setdefault(net, []).append(rows)
    from .gradient_flow_report import summarise_gradient_flow

    summary = summarise_gradient_flow(Path(setup.out), nets, recorded, results)
    write_results(setup.out, "gradient-flow", setup, results, summary["json"], summary["markdown"])
    return summary["json"]

