"""Optimizers: SGD (momentum, Nesterov) and AdamW, with optional weight-decay exemptions."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ReslabError
from .config import OptimConfig

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def param_groups(model: nn.Module, weight_decay: float, no_decay_norm_bias: bool) -> list[dict]:
    """One group, or two: normalisation weights and biases get no weight decay (they set scale, not
    capacity), nor do the embeddings a model names in `no_weight_decay` (a ViT's position embeddings
    and class token, as DeiT and torchvision's ViT recipe train them)."""
    if not no_decay_norm_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    exempt = set(getattr(model, "no_weight_decay", ()))
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            skip = isinstance(module, NORM_LAYERS) or name == "bias" or full in exempt
            (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def discriminative_groups(model: nn.Module, groups: list[dict], backbone_lr_scale: float) -> list[dict]:
    """Split each group into the classifier's parameters (lr_scale 1) and the rest (lr_scale
    `backbone_lr_scale`): a pretrained backbone moves less than the new head (ULMFiT, Howard & Ruder 2018)."""
    if backbone_lr_scale == 1.0 or not hasattr(model, "get_classifier"):
        return groups
    head = {id(p) for p in model.get_classifier().parameters()}
    out = []
    for g in groups:
        for scale, params in ((1.0, [p for p in g["params"] if id(p) in head]),
                              (backbone_lr_scale, [p for p in g["params"] if id(p) not in head])):  # fmt: skip
            if params:
                out.append({**g, "params": params, "lr_scale": scale})
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    groups = discriminative_groups(model, param_groups(model, cfg.weight_decay, cfg.no_decay_norm_bias), cfg.backbone_lr_scale)
    for g in groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps)
    raise ReslabError(f"optim.name is '{cfg.name}'; choose sgd or adamw")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the scheduled lr; a group with an `lr_scale` (discriminative fine-tuning) gets lr * its scale."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
