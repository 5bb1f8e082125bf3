"""Optimizers: SGD (momentum, Nesterov) and AdamW, with weight-decay exemptions, a learning-rate
multiplier for normalisation layers, and the fastest update kernel PyTorch has for them.

Parameter groups: weights; normalisation-layer parameters (BatchNorm's scale and shift ...); other
biases. Each group carries an `lr_scale` that `set_lr` multiplies the scheduled lr by.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..errors import ReslabError
from .config import OPTIM_KERNELS as KERNELS
from .config import OptimConfig

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def param_groups(model: nn.Module, weight_decay: float, no_decay_norm_bias: bool, norm_lr_scale: float = 1.0) -> list[dict]:
    """Groups of trainable parameters with their weight decay and lr scale.

    no_decay_norm_bias: normalisation weights and all biases get no weight decay (they set scale,
    not capacity), nor do the embeddings a model names in `no_weight_decay` (a ViT's position
    embeddings and class token, as DeiT and torchvision's ViT recipe train them).
    norm_lr_scale: normalisation-layer parameters train at lr x this (airbench: 64); their L2
    coefficient is divided by it, so that lr x decay, the shrinkage per step, stays the weights'.
    With the defaults there is one group; parameters keep the model's order inside each group.
    """
    named_exempt = set(getattr(model, "no_weight_decay", ()))
    groups: dict[tuple, list] = {}
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm = isinstance(module, NORM_LAYERS)
            full = f"{module_name}.{name}" if module_name else name
            exempt = no_decay_norm_bias and (is_norm or name == "bias" or full in named_exempt)
            scale = norm_lr_scale if is_norm else 1.0
            groups.setdefault((scale != 1.0, exempt, scale), []).append(p)
    return [{"params": ps, "weight_decay": 0.0 if exempt else weight_decay / scale, "lr_scale": scale}
            for (_, exempt, scale), ps in sorted(groups.items())]


def discriminative_groups(model: nn.Module, groups: list[dict], backbone_lr_scale: float) -> list[dict]:
    """Split each group into the classifier's parameters (their lr_scale kept) and the rest (lr_scale
    x `backbone_lr_scale`): a pretrained backbone moves less than the new head (ULMFiT, Howard & Ruder 2018)."""
    if backbone_lr_scale == 1.0 or not hasattr(model, "get_classifier"):
        return groups
    head = {id(p) for p in model.get_classifier().parameters()}
    out = []
    for g in groups:
        base = g.get("lr_scale", 1.0)
        for scale, params in ((base, [p for p in g["params"] if id(p) in head]),
                              (base * backbone_lr_scale, [p for p in g["params"] if id(p) not in head])):  # fmt: skip
            if params:
                out.append({**g, "params": params, "lr_scale": scale})
    return out


def muon_groups(groups: list[dict], lr_scale: float, momentum: float) -> list[dict]:
    """Move the conv filters (4-D weights) of every group into one Muon group (no weight decay)."""
    filters = [p for g in groups for p in g["params"] if p.ndim == 4]
    rest = [{**g, "params": [p for p in g["params"] if p.ndim != 4]} for g in groups]
    muon = [{"params": filters, "muon": True, "momentum": momentum, "weight_decay": 0.0, "lr_scale": lr_scale}] if filters else []
    return [g for g in rest if g["params"]] + muon


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float, device: torch.device | str = "cpu") -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay_norm_bias, cfg.norm_lr_scale)
    groups = discriminative_groups(model, groups, cfg.backbone_lr_scale)
    if cfg.muon_lr > 0:
        groups = muon_groups(groups, cfg.muon_lr / lr, cfg.muon_momentum)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    if cfg.muon_lr > 0:
        from .muon import MuonSGD

        return MuonSGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "sgd":
        cls, kwargs = torch.optim.SGD, dict(lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    elif cfg.name == "adamw":
        cls, kwargs = torch.optim.AdamW, dict(lr=lr, betas=tuple(cfg.betas), eps=cfg.eps)
    else:
        raise ReslabError(f"optim.name is '{cfg.name}'; choose sgd or adamw")
    return cls(groups, **kwargs, **kernel_options(cls, cfg.kernel, torch.device(device)))


def kernel_options(cls, kernel: str, device: torch.device) -> dict:
    """Keyword arguments choosing the update kernel: one fused kernel for all parameters (fastest,
    where this PyTorch has it for the optimizer and device), one op per step over all parameters
    (foreach), or a Python loop over parameters (PyTorch's default on the CPU)."""
    if kernel not in KERNELS:
        raise ReslabError(f"optim.kernel is '{kernel}'; choose one of {', '.join(KERNELS)}")
    has_fused = "fused" in inspect.signature(cls.__init__).parameters and _fused_supported(cls, device)
    if kernel == "fused" and not has_fused:
        raise ReslabError(f"this PyTorch has no fused {cls.__name__} for {device.type}; use optim.kernel=auto or foreach")
    if kernel == "fused" or (kernel == "auto" and has_fused):
        return {"fused": True}
    if kernel == "foreach" or kernel == "auto":
        return {"foreach": True}
    return {"foreach": False}


def _fused_supported(cls, device: torch.device) -> bool:
    try:
        cls([torch.zeros(1, device=device, requires_grad=True)], lr=0.1, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The scheduled lr, times each group's lr_scale (normalisation layers, discriminative fine-tuning)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
