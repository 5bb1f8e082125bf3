"""What a kind of training adds to the engine: its model, the loss of a batch, and what it exports.

The engine (`engine.fit`) owns everything a run shares: devices and AMP, DDP, the optimizer and
schedule, checkpoints and exact resume, progress, metrics and the run folder. A task is the small
rest, five methods:

    build_model(num_classes) -> nn.Module   the module that trains (all its trainable parameters)
    step(ctx, images, labels, generator) -> {"loss": scalar, "correct": count (when it classifies)}
                                            one micro-batch, under autocast; the forward goes through
                                            ctx.train_model (the DDP / compiled wrapper of ctx.model);
                                            `generator` is the batch's own (a pure function of its
                                            position), for random choices that must resume exactly
    after_step(model, step, total_steps)    after each optimizer step, on the bare model
                                            (a momentum teacher's update)
    epoch_metrics(ctx) -> dict              extra numbers for the epoch's row (a kNN monitor)
    export_model(model, classes) -> (module, classes)   what model.safetensors holds

`reports_accuracy` says whether `step` counts correct predictions (a training top-1 in the rows).

`ClassificationTask` is supervised training (cross-entropy, Mixup/CutMix, label smoothing, aux
heads); `reslab.ssl.task.SelfSupervisedTask` is SimCLR, MoCo and BYOL. `task_for(config)` picks one.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ReslabError
from .config import TrainConfig
from .losses import classification_loss, main_logits


class ClassificationTask:
    """Supervised classification: the zoo model's logits against the labels."""

    kind = "classification"
    reports_accuracy = True

    def __init__(self, cfg: TrainConfig):
        if cfg.data.views != 1:
            raise ReslabError(f"data.views = {cfg.data.views} gives several views of each image, which only "
                              "self-supervised methods use; set ssl.method (simclr, moco, byol) or data.views = 1")  # fmt: skip
        self.cfg = cfg

    def build_model(self, num_classes: int) -> nn.Module:
        from .engine import build_model

        return build_model(self.cfg, num_classes)

    def step(self, ctx, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict:
        from .engine import aux_loss_weight

        t = self.cfg.train
        targets = labels
        if t.mixup_alpha > 0 or t.cutmix_alpha > 0:
            from ..data.mix import mix_batch

            images, targets = mix_batch(images, labels, self.cfg.model.num_classes, t.mixup_alpha, t.cutmix_alpha, generator)
        outputs = ctx.train_model(images)
        loss = classification_loss(outputs, targets, t.label_smoothing, aux_loss_weight(t.aux_weight, ctx.model), ctx.class_weights)
        with torch.no_grad():
            hard = targets.argmax(dim=1) if targets.ndim == 2 else targets
            correct = (main_logits(outputs).argmax(dim=1) == hard).sum()
        return {"loss": loss, "correct": correct}

    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        pass

    def epoch_metrics(self, ctx) -> dict:
        return {}

    def export_model(self, model: nn.Module, classes: list[str]) -> tuple[nn.Module, list[str]]:
        return model, classes


def task_for(cfg: TrainConfig):
    """The task a config trains: self-supervised when [ssl] names a method, else classification."""
    if cfg.ssl.method:
        from ..ssl.task import SelfSupervisedTask  # the one place the engine reaches the SSL package

        return SelfSupervisedTask(cfg)
    return ClassificationTask(cfg)
