"""Sharded extraction under torchrun: each rank embeds its share of the files.

    torchrun --nproc-per-node 2 -m reslab embed SRC --out INDEX                        # local store
    torchrun --nnodes 4 ... -m reslab embed SRC --out INDEX --store milvus://host:19530  # shared Milvus

Rank r embeds the files whose stable path hash is r mod world_size.

Local store: into INDEX/shards/rank-r (an ordinary, resumable index); then all ranks meet at a
barrier and rank 0 merges the shards into INDEX, ids in walk order, so the result equals what one
process would have built. On machines without a shared file system, run `reslab embed --merge` on
the shard folders once they are copied together.

Milvus server: every rank commits straight into the one collection, no merge step. Rank 0 creates
the index (and fits a vocabulary) before the others start and rebuilds the search structure after
they finish; ids interleave by rank from one agreed base, so they never collide. Each rank drops
only the removed files of its own share. Milvus Lite is refused: it serves one process at a time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from ..errors import ReslabError
from .embed import ARTIFACT_KEYS, EmbedOptions, EmbedReport, build_index, check_same_embedder, embed_files, finalize, prepare_index, source_folder
from ..embeddings import Embedder
from .store import NewItem
from .stores import open_store, parse_store, read_pointer
from .walk import walk_order_key

log = logging.getLogger(__name__)


def distributed_env() -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) when launched by torchrun with more than one process, else None."""
    from ..launch import torchrun_env

    env = torchrun_env()
    return (env.rank, env.world_size, env.local_rank) if env.enabled else None


def shard_dir(out: str | Path, rank: int) -> Path:
    return Path(out) / "shards" / f"rank-{rank}"


def embed_distributed(src, out, make_embedder: Callable[[str], Embedder], options: EmbedOptions, store: str | None = None) -> EmbedReport | None:
    """Run this rank's share and, on rank 0, the merge. Returns the merged report on rank 0, else None.

    make_embedder(device) builds the embedder on this rank's device (cuda:LOCAL_RANK or cpu).
    store: a Milvus server URI makes every rank write straight into the shared collection (no merge);
    otherwise each rank builds a local shard index and rank 0 merges them.
    """
    import torch
    import torch.distributed as dist

    rank, world, local_rank = distributed_env()
    milvus = _shared_milvus(out, store)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    own_group = not dist.is_initialized()
    if own_group:
        # gloo for barriers and a few report numbers is enough: vectors go to the store, never between ranks
        dist.init_process_group("gloo")
    try:
        device = f"cuda:{local_rank}" if cuda else "cpu"
        shard_options = EmbedOptions(**{**options.__dict__, "rank": rank, "world_size": world, "progress": options.progress and rank == 0})
        if milvus:
            return _embed_into_shared_store(src, out, store, make_embedder(device), options, shard_options)
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


def _shared_milvus(out, store: str | None) -> bool:
    """Whether a sharded run writes into one shared Milvus collection; refuses Milvus Lite (one process only)."""
    address = parse_store(store)
    if address is None and store is None and (pointer := read_pointer(Path(out))) is not None:
        address = parse_store(pointer.get("uri"))
    if address is None:
        return False
    if address.is_lite:
        raise ReslabError(
            f"Milvus Lite ({address.public_uri()}) serves one process at a time, so torchrun ranks cannot share it; "
            "give a Milvus server (--store milvus://host:19530), or embed into a local index and `reslab index copy` it"
        )
    return True


def _embed_into_shared_store(src, out, store, embedder: Embedder, options: EmbedOptions, shard_options: EmbedOptions) -> EmbedReport | None:
    """Every rank commits its share into one Milvus collection; rank 0 prepares it first and finalises it last."""
    import time

    import torch.distributed as dist

    t0 = time.perf_counter()
    root, rank = source_folder(src), shard_options.rank
    if rank == 0:
        with open_store(out, store, create=True) as st:
            prepare_index(st, root, embedder, options)  # checks, vocabulary, the manifest: once, before anyone writes
            st.agree_id_base()
    dist.barrier()
    with open_store(out, store) as st:
        embedder, manifest = prepare_index(st, root, embedder, shard_options)
        st.start_writer(shard_options.rank, shard_options.world_size, st.agreed_id_base())
        report = embed_files(st, embedder, root, shard_options)
        log.info("rank %d: %s", rank, report.summary())
        dist.barrier()
        reports = [None] * shard_options.world_size
        dist.all_gather_object(reports, report)
        if rank == 0:
            manifest = finalize(st, {k: v for k, v in manifest.items() if k != "shard"} | {"shard": None, "writers": shard_options.world_size}, options)
        dist.barrier()
    if rank != 0:
        return None
    total = EmbedReport(count=manifest["count"], seconds=time.perf_counter() - t0)
    for r in reports:
        total.embedded += r.embedded
        total.unchanged += r.unchanged
        total.removed += r.removed
        total.known_bad += r.known_bad
        total.bad += r.bad
    return total


def merge_indexes(shard_dirs: list[str | Path], out: str | Path, options: EmbedOptions = EmbedOptions(), store: str | None = None) -> EmbedReport:
    """Merge shard indexes (one per rank) into one, ids in walk order: the same index a single process builds."""
    t0 = time.perf_counter()
    out = Path(out)
    stores = []
    try:
        for d in shard_dirs:
            try:
                stores.append(open_store(d))
            except ReslabError:
                raise ReslabError(f"{d} is not a reslab index; give the shard folders written by `reslab embed` under torchrun") from None
        manifests = [s.read_manifest() for s in stores]
        first = manifests[0]
        for d, m in zip(shard_dirs[1:], manifests[1:]):
            check_same_embedder(first, m, Path(d))
            if m.get("root") != first.get("root"):
                raise ReslabError(f"the shard {d} indexes {m.get('root')}, not {first.get('root')}; merge shards of one folder")
        entries = []
        for s_index, st in enumerate(stores):
            for item in st.items():
                entries.append((walk_order_key(Path(item.path).relative_to(first["root"])), s_index, item))
        entries.sort(key=lambda e: e[0])
        if parse_store(store) is None and read_pointer(out) is None:
            for name in ("items.sqlite", "faiss.index"):
                (out / name).unlink(missing_ok=True)
            if (out / "vectors").exists():
                for f in (out / "vectors").iterdir():
                    f.unlink()
        with open_store(out, store, create=True) as merged:
            if len(merged):
                raise ReslabError(f"the index {merged.describe()} already holds items; merge into a new index")
            manifest = {k: v for k, v in first.items() if k not in ("shard", "count")}
            merged.write_manifest({**manifest, "status": "building"})
            for start in range(0, len(entries), options.chunk_size):
                part = entries[start : start + options.chunk_size]
                merged.commit([NewItem(i.path, i.size, i.mtime, i.sha256, i.label, i.width, i.height, stores[s].vector(i.id)) for _, s, i in part])
            for st in stores:
                bad = [(path, 0, 0.0, reason) for path, reason in st.bad_files()]
                if bad:
                    merged.record_bad(bad)
            _copy_artifacts(shard_dirs, merged, first)
            manifest = finalize(merged, {**manifest, "merged_from": [str(d) for d in shard_dirs], "created": None}, options)
        return EmbedReport(embedded=len(entries), count=manifest["count"], seconds=time.perf_counter() - t0)
    finally:
        for st in stores:
            st.close()


def _copy_artifacts(shard_dirs: list, merged, manifest: dict) -> None:
    """Copy the embedder's files (a BoVW vocabulary) into the merged index, refusing shards that disagree."""
    import hashlib

    names = []
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
        names.append(name)
    merged.save_files(Path(shard_dirs[0]), names)
