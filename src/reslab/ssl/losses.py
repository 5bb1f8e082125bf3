"""Self-supervised losses: SimCLR's NT-Xent, MoCo's InfoNCE against a queue, BYOL's cosine regression.

Every loss takes the embeddings of two augmented views of the same B images, row i of one view
paired with row i of the other. Similarities are computed in float32 whatever the autocast dtype:
a bf16 dot product of unit vectors loses the third decimal, which a temperature of 0.1 multiplies
by ten.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _GatherRows(torch.autograd.Function):
    """all_gather whose backward sums each slice's gradient over processes and returns this rank's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Rows of `x` from every process, concatenated in rank order, with this rank's offset.

    The gradient flows back to every rank's rows (summed over the processes whose losses used
    them), so negatives from other GPUs train this GPU's encoder too, as in SimCLR's global batch.
    Without a process group: (x, 0).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    return _GatherRows.apply(x), dist.get_rank() * x.shape[0]


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Rows of `x` from every process (no gradient): MoCo's keys enter the queue from all GPUs."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather: bool = True) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy over 2B views (Chen et al. 2020, eq. 1).

    Each of the 2B views is an anchor; its positive is the other view of its image, its negatives
    the other 2B - 2 views (of every process when `gather`). Returns the mean over anchors.
    z1, z2: (B, D) projections, any scale (they are L2-normalised here).
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D): view-1 rows, then view-2 rows
    n = z.shape[0]
    candidates, offset = gather_with_grad(z) if gather else (z, 0)
    # global index of each local row, and of its positive: the block layout is [v1 | v2] per rank
    local = torch.arange(n, device=z.device)
    positive = offset + (local + n // 2) % n
    logits = z @ candidates.T / temperature  # (2B, world * 2B)
    logits[local, offset + local] = float("-inf")  # an anchor is not its own negative
    return F.cross_entropy(logits, positive)


def info_nce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo's InfoNCE (He et al. 2020, eq. 1): query q_i against its key k_i and the queue's negatives.

    q: (B, D) student projections; k: (B, D) teacher projections (no gradient); queue: (K, D)
    unit-norm keys of earlier batches. The positive logit sits in column 0.
    """
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1).detach()
    positive = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
    negative = q @ queue.T.float()  # (B, K)
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss (Grill et al. 2020, eq. 2): 2 - 2 cos(p, z), mean over the batch.

    p: (B, D) online predictions; z: (B, D) target projections of the other view (no gradient).
    """
    return (2 - 2 * F.cosine_similarity(p.float(), z.float().detach(), dim=1)).mean()
