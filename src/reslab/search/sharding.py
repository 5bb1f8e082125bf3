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
import time
from pathlib import Path
from typing import Callable

from ..errors import ReslabError
from ..fileio import atomic_write_bytes
from .embed import FAISS_FILE, EmbedOptions, EmbedReport, build_index, check_same_embedder, finalize, read_manifest
from .embedders import Embedder
from .store import NewItem, VectorStore
from .walk import walk_order_key

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


def merge_indexes(shard_dirs: list[str | Path], out: str | Path, options: EmbedOptions = EmbedOptions()) -> EmbedReport:
    """Merge shard indexes (one per rank) into one, ids in walk order: the same index a single process builds."""
    t0 = time.perf_counter()
    out = Path(out)
    manifests = []
    for d in shard_dirs:
        m = read_manifest(d)
        if m is None:
            raise ReslabError(f"{d} is not a reslab index (no manifest.json); give the shard folders written by `reslab embed` under torchrun")
        manifests.append(m)
    first = manifests[0]
    for d, m in zip(shard_dirs[1:], manifests[1:]):
        check_same_embedder(first, m, Path(d))
        if m.get("root") != first.get("root"):
            raise ReslabError(f"the shard {d} indexes {m.get('root')}, not {first.get('root')}; merge shards of one folder")
    stores = [VectorStore(d) for d in shard_dirs]
    try:
        entries = []
        for s_index, store in enumerate(stores):
            for item in store.items():
                entries.append((walk_order_key(Path(item.path).relative_to(first["root"])), s_index, item))
        entries.sort(key=lambda e: e[0])
        for name in ("items.sqlite", FAISS_FILE):
            (out / name).unlink(missing_ok=True)
        if (out / "vectors").exists():
            for f in (out / "vectors").iterdir():
                f.unlink()
        out.mkdir(parents=True, exist_ok=True)
        merged = VectorStore(out, create=True)
        for start in range(0, len(entries), options.chunk_size):
            part = entries[start : start + options.chunk_size]
            merged.commit([NewItem(i.path, i.size, i.mtime, i.sha256, i.label, i.width, i.height, stores[s].vector(i.id)) for _, s, i in part])
        for store in stores:
            for path, reason in store.bad_files():
                merged.commit([], [(path, 0, 0.0, reason)])
        _copy_artifacts(shard_dirs, out, first)
        manifest = {k: v for k, v in first.items() if k not in ("shard", "count")}
        manifest = finalize(merged, out, {**manifest, "merged_from": [str(d) for d in shard_dirs], "created": None}, options)
        report = EmbedReport(embedded=len(entries), count=manifest["count"], seconds=time.perf_counter() - t0)
        merged.close()
        return report
    finally:
        for store in stores:
            store.close()


ARTIFACT_KEYS = ("vocabulary", "idf")  # files an embedder keeps beside its index (bag of visual words)


def _copy_artifacts(shard_dirs: list, out: Path, manifest: dict) -> None:
    """Copy the embedder's files (a BoVW vocabulary) into the merged index, refusing shards that disagree."""
    import hashlib

    for key in ARTIFACT_KEYS:
        name = manifest.get(key)
        if not isinstance(name, str):
            continue
        blobs = [(Path(d) / name).read_bytes() for d in shard_dirs]
        if len({hashlib.sha256(b).hexdigest() for b in blobs}) > 1:
            raise ReslabError(
                f"the shards in {', '.join(map(str, shard_dirs))} were embedded with different {key} files ({name}); "
                "fit the vocabulary once and embed every shard with it"
            )
        atomic_write_bytes(out / name, blobs[0])
