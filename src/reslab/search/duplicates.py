"""Near-duplicate groups: union-find over range (or k-NN) search results, never an N x N matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ReslabError
from .index import Hit, SearchIndex


class UnionFind:
    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression keeps later finds O(1)-ish
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values() if len(g) > 1]


DEFAULT_COSINE = 0.95
DEFAULT_BITS_PER_64 = 10  # perceptual hashes: <= 10 of 64 bits apart is a near-duplicate (Krawetz's rule of thumb)


def duplicate_threshold(manifest: dict, threshold: float | None = None, max_distance: int | None = None) -> tuple[float, str]:
    """(cosine threshold, the rule in words) for an index: hash indexes count differing bits."""
    if manifest.get("metric") == "hamming":
        bits = int(manifest["dim"])
        if threshold is not None and max_distance is not None:
            raise ReslabError("give --threshold (cosine of the hash rows) or --max-distance (bits), not both")
        if threshold is None:
            max_distance = round(DEFAULT_BITS_PER_64 * bits / 64) if max_distance is None else max_distance
            return 1.0 - 2.0 * max_distance / bits, f"Hamming distance <= {max_distance} of {bits} bits"
        return threshold, f"cosine >= {threshold} (Hamming <= {(1 - threshold) * bits / 2:g} of {bits} bits)"
    if max_distance is not None:
        raise ReslabError(
            f"--max-distance counts bits of a perceptual hash, but this index holds {manifest.get('method')} vectors; "
            "use --threshold (cosine similarity), or build a hash index with `reslab embed --method phash`"
        )
    threshold = DEFAULT_COSINE if threshold is None else threshold
    return threshold, f"cosine >= {threshold}"


@dataclass(frozen=True)
class DuplicateGroup:
    items: list[Hit]  # score: the best similarity of that item to another member
    min_score: float  # the weakest link that joined the group


def find_duplicates(index: SearchIndex, threshold: float = 0.95, block: int = 1024, k: int = 16) -> list[DuplicateGroup]:
    """Groups of items whose embeddings have cosine similarity >= threshold (transitively), largest first.

    Exact and IVF indexes use range search (in Milvus, at most 1024 neighbours per item); HNSW
    (no range search) uses the k nearest neighbours, which can only miss members of groups larger than k.
    """
    uf, best, weakest = UnionFind(), {}, {}
    raw = None
    if index.post.active:
        # thresholds are cosines of the embedder's own rows: whitening or DBA would change their meaning,
        # so duplicates are searched exactly among the stored rows
        from . import faiss_index

        all_ids, all_vectors = index.store.all_vectors()
        raw = faiss_index.build_faiss(all_ids, all_vectors, faiss_index.FaissParams("flat"), int(index.manifest["dim"]))
    for ids, vectors in index.store.iter_vectors(block):
        if raw is not None:
            in_range = raw.range_search(np.ascontiguousarray(vectors, dtype=np.float32), float(threshold))
        else:
            in_range = index.range_search(vectors, threshold)
        if in_range is not None:
            lims, scores, found = in_range
            pairs = ((int(ids[q]), int(found[j]), float(scores[j])) for q in range(len(ids)) for j in range(lims[q], lims[q + 1]))
        else:
            scores, found = index.raw_search(vectors, min(k + 1, len(index)))
            pairs = ((int(ids[q]), int(f), float(s)) for q in range(len(ids)) for f, s in zip(found[q], scores[q]) if s >= threshold)
        for a, b, s in pairs:
            if a == b or b < 0:
                continue
            uf.union(a, b)
            best[a] = max(best.get(a, -1.0), s)
            best[b] = max(best.get(b, -1.0), s)
            weakest[(min(a, b), max(a, b))] = s
    weakest_link: dict[int, float] = {}
    for (a, _b), s in weakest.items():
        root = uf.find(a)
        weakest_link[root] = min(weakest_link.get(root, 1.0), s)
    groups = []
    for member_ids in uf.groups():
        items = index.store.items_by_ids(member_ids)
        hits = [Hit(i, best[i], items[i].path, items[i].label) for i in member_ids if i in items]
        groups.append(DuplicateGroup(hits, weakest_link.get(uf.find(member_ids[0]), threshold)))
    groups.sort(key=lambda g: (-len(g.items), g.items[0].id))
    return groups
