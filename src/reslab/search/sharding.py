"""Sharded extraction under torchrun: each rank embeds its share of the files, rank 0 merges.

    torchrun --nproc-per-node 2 -m reslab embed SRC --out INDEX

Rank r embeds the files whose stable path hash is r mod world_size into INDEX/shards/rank-r (an
ordinary, resumable index), then all ranks meet at a barrier and rank 0 merges the shards into
INDEX, ids in walk order, so the result equals what one process would have built. On machines
without a shared file system, run `reslab embed --merge` on the shard folders once they are copied
together.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from .embed import EmbedOptions, EmbedReport, build_index, merge_indexes
from .embedders import Embedder

log = logging.getLogger(__name__)


def distributed_env() -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) when launched by torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def shard_dir(out: str | Path, rank: int) -> Path:
    return Path(out) / "shards" / f"rank-{rank}"


def embed_distributed(src, out, make_embedder: Callable[[str], Embedder], options: EmbedOptions) -> EmbedReport | None:
    """Run this rank's share and, on rank 0, the merge. Returns the merged report on rank 0, else None.

    make_embedder(device) builds the embedder on this rank's device (cuda:LOCAL_RANK or cpu).
    """
    import torch
    import torch.distributed as dist

    rank, world, local_rank = distributed_env()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    own_group = not dist.is_initialized()
    if own_group:
        # gloo for the barrier is enough: only file paths cross ranks, never tensors
        dist.init_process_group("gloo")
    try:
        device = f"cuda:{local_rank}" if cuda else "cpu"
        shard_options = EmbedOptions(**{**options.__dict__, "rank": rank, "world_size": world, "progress": options.progress and rank == 0})
        report = build_index(src, shard_dir(out, rank), make_embedder(device), shard_options)
        log.info("rank %d: %s", rank, report.summary())
        dist.barrier()
        merged = None
        if rank == 0:
            merged = merge_indexes([shard_dir(out, r) for r in range(world)], out, EmbedOptions(**{**options.__dict__, "progress": False}))
        dist.barrier()
        return merged
    finally:
        if own_group:
            dist.destroy_process_group()
