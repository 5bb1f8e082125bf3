"""Self-supervised training modules: a zoo backbone, projection heads and, for BYOL and MoCo, a teacher.

The backbone is any zoo model with its classifier removed, so that its state dict is the zoo's
minus the classifier (`fc.*` for ResNets): a finished run exports exactly that, and fine-tuning
loads it with a fresh classifier. The forward pass of a module returns its loss, so DDP sees one
call per step and its gradient hooks cover every trainable parameter.

    model = SimCLR(backbone("resnet20"), proj_hidden=512, proj_dim=128)
    loss = model(torch.cat([view1, view2]))["loss"]
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .losses import byol_loss, gather_no_grad, info_nce_queue, nt_xent

METHODS = ("simclr", "moco", "byol")


def backbone(name: str, weights: str | None = None, **options) -> nn.Module:
    """A zoo model without its classifier; `.num_features` is the width of its pooled features."""
    from ..models import create_model
    from ..models.features import remove_classifier

    return remove_classifier(create_model(name, weights=weights, **options))


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-classifier features of a zoo model, (B, num_features)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def mlp(in_dim: int, hidden: int, out_dim: int, last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU-Linear: SimCLR's and MoCo v2's projector, BYOL's projector and predictor."""
    layers = [nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def frozen_copy(module: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(module)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def momentum_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher = momentum * teacher + (1 - momentum) * student, for parameters and float buffers.

    BatchNorm running statistics follow the same average (integer buffers such as
    num_batches_tracked are copied), so the teacher evaluates with statistics of its own weights.
    """
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for name, t in t_state.items():
        s = s_state[name]
        if t.dtype.is_floating_point:
            t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
        else:
            t.copy_(s)


def momentum_at(base: float, step: int, total_steps: int, schedule: str = "cosine") -> float:
    """BYOL's schedule: from `base` at step 0 to 1 at the end along a half cosine; or constant (MoCo)."""
    if schedule == "constant" or total_steps <= 0:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total_steps) / total_steps) + 1) / 2


class SimCLR(nn.Module):
    """Chen et al. 2020: one encoder, NT-Xent between the projections of the two views."""

    def __init__(self, encoder: nn.Module, proj_hidden: int = 512, proj_dim: int = 128, temperature: float = 0.5):
        super().__init__()
        self.backbone = encoder
        self.projector = mlp(encoder.num_features, proj_hidden, proj_dim)
        self.temperature = temperature

    def forward(self, views: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """views: (2B, C, H, W), the first views of B images, then their second views."""
        z = self.projector(features(self.backbone, views))  # both views in one batch (SimCLR's global BN)
        z1, z2 = z.chunk(2)
        return {"loss": nt_xent(z1, z2, self.temperature)}


class BYOL(nn.Module):
    """Grill et al. 2020: the online network predicts the momentum target's projection of the other view."""

    def __init__(self, encoder: nn.Module, proj_hidden: int = 1024, proj_dim: int = 256, pred_hidden: int = 1024):
        super().__init__()
        self.backbone = encoder
        self.projector = mlp(encoder.num_features, proj_hidden, proj_dim)
        self.predictor = mlp(proj_dim, pred_hidden, proj_dim)
        self.teacher = frozen_copy(nn.ModuleDict({"backbone": self.backbone, "projector": self.projector}))

    def forward(self, views: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        p1, p2 = self.predictor(self.projector(features(self.backbone, views))).chunk(2)
        with torch.no_grad():
            t = self.teacher
            z1, z2 = t["projector"](features(t["backbone"], views)).chunk(2)
        return {"loss": byol_loss(p1, z2) + byol_loss(p2, z1)}

    def update_teacher(self, momentum: float) -> None:
        momentum_update(self.teacher["backbone"], self.backbone, momentum)
        momentum_update(self.teacher["projector"], self.projector, momentum)


class MoCo(nn.Module):
    """He et al. 2020 with v2's MLP head (Chen et al. 2020b), symmetric loss, a queue of negatives.

    Keys are computed by the teacher on the batch shuffled and cut into `key_splits` parts, each
    with its own BatchNorm statistics: MoCo's shuffling BN, without which the model tells the
    current batch's keys from the queue's by their statistics instead of their content.
    """

    def __init__(self, encoder: nn.Module, proj_hidden: int = 512, proj_dim: int = 128, temperature: float = 0.2,
                 queue_size: int = 4096, key_splits: int = 8):  # fmt: skip
        super().__init__()
        self.backbone = encoder
        self.projector = mlp(encoder.num_features, proj_hidden, proj_dim)
        self.teacher = frozen_copy(nn.ModuleDict({"backbone": self.backbone, "projector": self.projector}))
        self.temperature, self.key_splits = temperature, key_splits
        g = torch.Generator().manual_seed(0)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim, generator=g), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward(self, views: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        q1, q2 = self.projector(features(self.backbone, views)).chunk(2)
        with torch.no_grad():
            k = self._keys(views, generator)
        k1, k2 = k.chunk(2)
        queue = self.queue.clone()  # the enqueue below must not change what backward reads
        loss = 0.5 * (info_nce_queue(q1, k2, queue, self.temperature) + info_nce_queue(q2, k1, queue, self.temperature))
        self._enqueue(F.normalize(k.float(), dim=1))
        return {"loss": loss}

    def _keys(self, views: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        t = self.teacher
        n = views.shape[0]
        perm = torch.randperm(n, generator=generator).to(views.device)
        keys = torch.cat([t["projector"](features(t["backbone"], part)) for part in views[perm].chunk(self.key_splits)])
        return torch.empty_like(keys).index_copy_(0, perm, keys)  # back to the input order

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        keys = gather_no_grad(keys)
        size = self.queue.shape[0]
        n = min(keys.shape[0], size)
        # The pointer stays a tensor (no int()/.item()): torch.compile traces the update without a graph break.
        index = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue.index_copy_(0, index, keys[:n].to(self.queue.dtype))
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def update_teacher(self, momentum: float) -> None:
        momentum_update(self.teacher["backbone"], self.backbone, momentum)
        momentum_update(self.teacher["projector"], self.projector, momentum)
