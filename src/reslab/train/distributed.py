"""DDP under torchrun: process-group setup from the environment, reductions, rank-0-only writes.

`torchrun --nproc-per-node N -m reslab train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; without them
everything here is a no-op for a single process. Collectives carry a timeout, so a process that
dies makes the others fail after `dist_timeout` seconds instead of hanging (and torchrun tears the
group down as soon as one worker exits with an error).
"""

from __future__ import annotations

import datetime

import torch
import torch.distributed as dist

from ..launch import DistInfo, torchrun_env

__all__ = ["DistInfo", "init_distributed", "all_reduce_sum", "barrier", "broadcast_object", "average_buffers"]


def init_distributed(device_kind: str, timeout_s: int) -> DistInfo:
    info = torchrun_env()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return info


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over processes (a copy; the input is left alone)."""
    if not info.enabled:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's value of a small picklable object on every rank (e.g. the run directory, a stop decision)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def average_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Average floating buffers (BatchNorm running statistics) over processes.

    DDP broadcasts rank 0's buffers before each forward, so after the last one every rank holds
    statistics of its own shard only; averaging them before evaluation and checkpoints makes every
    rank evaluate and save the same model (timm's `distribute_bn(reduce=True)`).
    """
    if not info.enabled:
        return
    for buf in model.buffers():
        if buf.dtype.is_floating_point:
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(info.world_size)
