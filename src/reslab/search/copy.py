"""`reslab index copy SRC DST`: move an index between stores (local folder <-> Milvus), in bounded memory.

Items are streamed in chunks with their ids, vectors, stats and labels as they are, with the bad
files and the embedder's files (a vocabulary) and the manifest; the search structure is rebuilt in
the destination with the source's settings. Then it checks what arrived: the counts, and a sample
of items and vectors spread over the whole id range, bit for bit.

A copy that was interrupted leaves the destination marked "building"; running the same copy again
redoes it (writes by id are idempotent: nothing is duplicated). An existing complete index is
never overwritten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReslabError
from .embed import ARTIFACT_KEYS, EmbedOptions, finalize
from .stores import IndexStore, open_store


@dataclass
class CopyReport:
    items: int = 0
    bad: int = 0
    checked: int = 0  # items whose metadata and vector were compared after the copy
    seconds: float = 0.0
    source: str = ""
    destination: str = ""

    def summary(self) -> str:
        return (
            f"copied {self.items} items and {self.bad} bad-file records from {self.source} to {self.destination} "
            f"in {self.seconds:.1f} s; counts agree, {self.checked} sampled items identical"
        )


def copy_index(src, dst, src_store: str | None = None, dst_store: str | None = None, chunk: int = 4096, sample: int = 256, progress=None) -> CopyReport:
    """Copy the index `src` (in `src_store`) to a new index `dst` (in `dst_store`); see the module docstring.

    progress(n_copied, total) runs after each chunk.
    """
    t0 = time.perf_counter()
    with open_store(src, src_store) as source:
        manifest = source.read_manifest()
        if manifest is None or manifest.get("status") != "complete":
            raise ReslabError(f"the index {source.describe()} is not complete; finish it with `reslab embed` before copying it")
        with open_store(dst, dst_store, create=True) as target:
            if _same(source, target):
                raise ReslabError(f"{source.describe()} and {target.describe()} are the same index; give another destination")
            existing = target.read_manifest()
            if existing is not None and not (existing.get("status") == "building" and existing.get("copied_from") == source.describe()):
                raise ReslabError(f"the index {target.describe()} already exists; copy into a new name (nothing was changed)")
            report = CopyReport(source=source.describe(), destination=target.describe())
            target.write_manifest({**manifest, "status": "building", "copied_from": source.describe()})
            names = [manifest[k] for k in ARTIFACT_KEYS if isinstance(manifest.get(k), str)]
            if names:
                target.save_files(source.files_dir(), names)
            total, sampled = len(source), []
            stride = max(1, total // max(1, sample))
            for items, vectors in source.iter_items(chunk):
                target.import_items(items, vectors)
                sampled += [it.id for n, it in enumerate(items, report.items) if n % stride == 0]
                report.items += len(items)
                if progress is not None:
                    progress(report.items, total)
            bad = source.bad_records()
            if bad:
                target.record_bad(bad)
            report.bad = len(bad)
            report.checked = _verify(source, target, sampled[:sample])
            options = EmbedOptions(index_kind=manifest.get("index_kind", "auto"), nprobe=manifest.get("nprobe", 16), ef_search=manifest.get("ef_search", 64))
            finalize(target, {k: v for k, v in manifest.items() if k != "copied_from"} | {"copied_from": source.describe()}, options)
    report.seconds = time.perf_counter() - t0
    return report


def _same(a: IndexStore, b: IndexStore) -> bool:
    if a.kind == "local" and b.kind == "local":
        return Path(a.describe()).resolve() == Path(b.describe()).resolve()
    return a.describe() == b.describe()


def _verify(source: IndexStore, target: IndexStore, ids: list[int]) -> int:
    """Counts, bad records, and the sampled items and vectors must be identical; returns how many were compared."""
    if len(target) != len(source):
        raise ReslabError(f"the copy {target.describe()} holds {len(target)} items but {source.describe()} holds {len(source)}; run the copy again")
    if len(target.bad_records()) != len(source.bad_records()):
        raise ReslabError(f"the copy {target.describe()} lost bad-file records; run the copy again")
    if not ids:
        return 0
    a_items, b_items = source.items_by_ids(ids), target.items_by_ids(ids)
    if a_items != b_items:
        wrong = next(i for i in ids if a_items.get(i) != b_items.get(i))
        raise ReslabError(f"item {wrong} differs between {source.describe()} and the copy {target.describe()}; run the copy again")
    if not np.array_equal(source.vectors(ids), target.vectors(ids)):
        raise ReslabError(f"sampled vectors differ between {source.describe()} and the copy {target.describe()}; run the copy again")
    return len(ids)
