"""k-reciprocal re-ranking (Zhong, Zheng, Cao & Li, CVPR 2017, "Re-ranking Person Re-identification with
k-reciprocal Encoding"): fitted when `reslab embed` finalises an index, applied to each query's shortlist.

Why: cosine ranks each item by its own similarity to the query, so an item of another class that is a
little nearer than the query's classmates wins even when those classmates are each other's nearest
neighbours. Items that are *mutual* near neighbours (k-reciprocal: j among the query's k1 nearest AND
the query among j's k1 nearest) share their neighbourhoods; comparing neighbourhoods (the Jaccard
distance of the k-reciprocal encodings) pulls a class back together.

At finalize (`fit_graph`): every indexed item's k1 nearest other items, found through the FAISS index
that search uses (so a huge IVF/HNSW index is not scanned N x N), and its k-reciprocal encoding: a
sparse vector over the collection with weights exp(-squared distance) on its k-reciprocal set expanded
by the half-size sets of its members, summing to 1. Kept beside the index in `rerank-<sha>.npz`
(`save_graph`/`load_graph`, the sha256 checked against the manifest).

At query time (`rerank_order`): the query's first `shortlist_size(k1)` results by the current ranking
(whitening, DBA, QE included) give its k1 nearest; whether the query would be among *their* k1 nearest
follows from the similarity of their stored k1-th neighbour; the query's encoding is built from that
set; local query expansion averages each encoding with those of its k2 - 1 nearest; the final distance
(1 - lambda) x Jaccard + lambda x squared Euclidean re-orders the shortlist. Later results keep their order.
The query's nearest item stays first (cosine gets the first result right most often: re-ranking it cost
P@1 on small collections of real photos), unless `PostOptions.rerank_first`; even then it stays first when
the two are each other's nearest neighbour before DBA and QE (`is_copy`: a resized, re-encoded or cropped
copy of the query, or the query a copy of it): neighbourhoods do not tell an edited copy from the rest of its class.

Where this differs from the paper's transductive form (the whole collection plus the queries as one
graph): the query is not added to the stored graph, and its encoding covers its shortlist only.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import sparse

from ..errors import ReslabError
from ..fileio import atomic_write_bytes

SHORTLIST = 100  # results re-ranked per query: at least this many, and 3 x k1
MAX_ITEMS = 1_000_000  # above this the graph (~0.6 kB per item) is not fitted: see docs/search.md, "Re-ranking"
BLOCK = 4096  # items per block while fitting (bounds the memory of the sparse products)


def shortlist_size(k1: int) -> int:
    return max(SHORTLIST, 3 * k1)


def min_items(k1: int) -> int:
    """Below this the k1 nearest are most of the collection and mutual neighbourhoods say nothing."""
    return 2 * k1 + 1


@dataclass(frozen=True)
class RerankGraph:
    """The collection side of re-ranking; row r describes the item ids[r]."""

    ids: np.ndarray  # (N,) int64, ascending
    neighbours: np.ndarray  # (N, k1) int32 rows of each item's k1 nearest other items, nearest first
    similarities: np.ndarray  # (N, k1) float32 their similarities
    encoding: sparse.csr_matrix  # (N, N) float32 k-reciprocal encodings, rows sum to 1

    @property
    def k1(self) -> int:
        return int(self.neighbours.shape[1])

    @property
    def shortlist(self) -> int:
        return shortlist_size(self.k1)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of item ids; -1 for an id the graph does not hold."""
        ids = np.asarray(ids, np.int64)
        pos = np.searchsorted(self.ids, ids).clip(0, max(0, len(self.ids) - 1))
        found = (len(self.ids) > 0) & (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return np.where(found, pos, -1)


# -- fitting -------------------------------------------------------------------------------------
def exact_search(rows: np.ndarray) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    """search(queries, k) -> (similarities, rows) by exact inner product (FAISS flat), for callers without an index."""
    import faiss

    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(np.ascontiguousarray(rows, dtype=np.float32))
    return lambda q, k: index.search(np.ascontiguousarray(q, dtype=np.float32), k)


def nearest_others(rows: np.ndarray, k: int, search: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows and their similarities. search(queries, k) -> (sims, rows or -1)."""
    n = len(rows)
    neighbours = np.empty((n, k), np.int32)
    sims = np.empty((n, k), np.float32)
    for start in range(0, n, BLOCK):
        own = np.arange(start, min(start + BLOCK, n))
        s, found = search(rows[own], k + 1)
        s, found = np.asarray(s, np.float32), np.asarray(found, np.int64)
        valid = (found != own[:, None]) & (found >= 0)
        take = valid & (np.cumsum(valid, 1) <= k)  # the first k others (the row itself need not come first on ties)
        # fewer than k found (an approximate index): pad with the row itself at similarity -2, below any real one
        nb, sm = np.repeat(own[:, None], k, 1), np.full((len(own), k), -2.0, np.float32)
        r, c = np.nonzero(take)
        slot = (np.cumsum(take, 1) - 1)[r, c]
        nb[r, slot], sm[r, slot] = found[r, c], s[r, c]
        neighbours[own], sims[own] = nb, sm
    return neighbours, sims


def reciprocal(neighbours: np.ndarray, k: int) -> np.ndarray:
    """(N, k) bool: whether row i's t-th nearest has i among its own k nearest."""
    n = len(neighbours)
    out = np.empty((n, k), bool)
    for start in range(0, n, BLOCK):
        own = np.arange(start, min(start + BLOCK, n))
        out[own] = (neighbours[neighbours[own, :k], :k] == own[:, None, None]).any(-1)
    return out


def _sets(neighbours: np.ndarray, k: int) -> sparse.csr_matrix:
    """(N, N) 0/1: each row's k-reciprocal set, the row itself included (as in the paper)."""
    n = len(neighbours)
    mutual = reciprocal(neighbours, k)
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), mutual.sum(1))])
    cols = np.concatenate([np.arange(n), neighbours[:, :k][mutual]])
    m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    m.sum_duplicates()
    m.data[:] = 1
    return m


def encode(rows: np.ndarray, neighbours: np.ndarray, similarities: np.ndarray) -> sparse.csr_matrix:
    """The k-reciprocal encoding of every row (k1 = neighbours' width), Gaussian-weighted, rows summing to 1.

    A row's set R(i, k1) is expanded by R(j, k1/2) of each member j that shares more than 2/3 of it with
    R(i, k1): the half-size sets recover true neighbours that a strict mutual test at k1 misses."""
    n, k1 = neighbours.shape
    r1 = _sets(neighbours, k1)
    rh = _sets(neighbours, max(1, int(round(k1 / 2))))
    size_h = np.asarray(rh.sum(1)).ravel()
    rh_t = rh.T.tocsr()
    # the similarities known from the neighbour lists (and 1 to itself): most expanded members are among them
    listed = neighbours != np.arange(n)[:, None]  # not the padding of a short list
    known = sparse.csr_matrix((np.concatenate([similarities[listed], np.ones(n, np.float32)]),
                               (np.concatenate([np.nonzero(listed)[0], np.arange(n)]),
                                np.concatenate([neighbours[listed], np.arange(n)]))), shape=(n, n))  # fmt: skip
    blocks = []
    for start in range(0, n, BLOCK):
        b = r1[start : start + BLOCK]
        overlap = (b @ rh_t).multiply(b).tocoo()  # |R(i, k1) & R(j, k1/2)| for j in R(i, k1)
        ok = overlap.data > 2 / 3 * size_h[overlap.col]
        accept = sparse.csr_matrix((np.ones(int(ok.sum()), np.float32), (overlap.row[ok], overlap.col[ok])), shape=b.shape)
        expanded = (b + accept @ rh).tocsr()
        expanded.data[:] = 1
        looked_up = expanded.multiply(known[start : start + BLOCK]).tocoo()  # an exact 0 drops out: recomputed below
        have = sparse.csr_matrix((np.ones(looked_up.nnz, np.float32), (looked_up.row, looked_up.col)), shape=b.shape)
        missing = (expanded - have).tocoo()
        i, j = missing.row[missing.data > 0], missing.col[missing.data > 0]
        extra = _pair_similarities(rows, start + i, j)
        sims = np.concatenate([looked_up.data, extra])
        w = np.exp(-np.maximum(2 - 2 * sims, 0)).astype(np.float32)  # squared distance of unit vectors
        blocks.append(sparse.csr_matrix((w, (np.concatenate([looked_up.row, i]), np.concatenate([looked_up.col, j]))), shape=b.shape))
    v = sparse.vstack(blocks).tocsr() if blocks else sparse.csr_matrix((0, 0), dtype=np.float32)
    totals = np.asarray(v.sum(1)).ravel()
    v = sparse.diags(1 / np.maximum(totals, 1e-12)).dot(v).tocsr()
    return v.astype(np.float32)


def _pair_similarities(rows: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """rows[i] . rows[j] for each pair, a chunk of pairs at a time (bounded memory)."""
    parts = [np.einsum("nd,nd->n", rows[i[s : s + chunk]], rows[j[s : s + chunk]]) for s in range(0, len(i), chunk)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def fit_graph(ids: np.ndarray, rows: np.ndarray, k1: int, search: Callable | None = None) -> RerankGraph:
    """The graph of a collection: rows are what the search ranks against (L2-normalised), ids their item ids
    (ascending). search(queries, k) -> (similarities, ids) finds neighbours (default: exact, by rows)."""
    ids = np.asarray(ids, np.int64)
    rows = np.asarray(rows, np.float32)
    if search is None:
        by_rows = exact_search(rows)
    else:

        def by_rows(q, k):  # the index answers ids: turn them into rows
            s, found = search(q, k)
            pos = np.searchsorted(ids, found).clip(0, len(ids) - 1)
            return s, np.where((found >= 0) & (ids[pos] == found), pos, -1)

    neighbours, sims = nearest_others(rows, k1, by_rows)
    return RerankGraph(ids, neighbours, sims, encode(rows, neighbours, sims))


def fit_rerank(store, rows: np.ndarray | None, k1: int) -> dict | None:
    """Fit the graph of an index's rows (what its search structure holds) and save it beside the index;
    its manifest record, or None when the collection is too small or too large for it."""
    import logging
    import time

    n = 0 if rows is None else len(rows)
    if not min_items(k1) <= n <= MAX_ITEMS:
        logging.getLogger(__name__).info("re-ranking not fitted: %d items (it needs %d to %d)", n, min_items(k1), MAX_ITEMS)
        return None
    t0 = time.perf_counter()
    graph = fit_graph(store.all_ids(), rows, k1, search=store.search)
    record = save_graph(graph, store.files_dir())
    logging.getLogger(__name__).info("re-ranking graph of %d items fitted in %.1f s", n, time.perf_counter() - t0)
    return record


# -- query time ----------------------------------------------------------------------------------
def local_expansion(graph: RerankGraph, first: np.ndarray, k2: int) -> sparse.csr_matrix:
    """Mean encoding of each row in `first` and its k2 - 1 nearest (the paper's local query expansion)."""
    members = np.concatenate([first[:, None], graph.neighbours[first, : k2 - 1]], axis=1)
    average = sparse.csr_matrix((np.full(members.size, 1 / k2, np.float32), (np.repeat(np.arange(len(first)), members.shape[1]),
                                members.ravel())), shape=(len(first), len(graph.ids)))  # fmt: skip
    return (average @ graph.encoding).tocsr()


def query_encoding(graph: RerankGraph, rows: np.ndarray, sims: np.ndarray, own: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(columns, weights) of a query's k-reciprocal encoding from its shortlist (rows, sims; best first).

    own: the query's own row when the query is an item of the collection ("more like this item",
    leave-one-out): it is then part of its own set, at distance 0, as in the paper, and the stored
    graph already says which neighbourhoods hold it. An image from outside (own = -1) is not in the
    graph: whether it would be among an item's nearest follows from that item's stored similarities."""
    k1 = graph.k1
    h = max(1, int(round(k1 / 2)))
    top, top_s = rows[:k1], sims[:k1]
    if own >= 0:
        members = top[(graph.neighbours[top] == own).any(1)]  # the items that hold the query among their k1 nearest
    else:
        members = top[top_s > graph.similarities[top, k1 - 1]]  # the query would be among their k1 nearest
    in_h = dict(zip(rows[:h].tolist(), sims[:h].tolist()))
    expanded = [members]
    member_set = set(members.tolist()) | {own}
    for c in members:
        near = graph.neighbours[c, :h]
        half = np.append(near[(graph.neighbours[near, :h] == c).any(1)], c)  # R(c, k1/2), c included
        # an outside query is in R(c, k1/2) when c is among its h nearest and it would be among c's
        with_query = own < 0 and c in in_h and in_h[c] > graph.similarities[c, h - 1]
        shared = sum(1 for x in half.tolist() if x in member_set) + with_query
        if shared > 2 / 3 * (len(half) + with_query):
            expanded.append(half)
    cols = np.setdiff1d(np.concatenate(expanded), [own]).astype(np.int64)
    order = np.argsort(rows)
    pos = np.searchsorted(rows, cols, sorter=order).clip(0, len(rows) - 1)
    known = rows[order[pos]] == cols  # weights need the query's similarity: its shortlist has it
    cols, s = cols[known], sims[order[pos[known]]]
    if own >= 0:  # the query itself, at distance 0
        cols, s = np.append(cols, own), np.append(s, 1.0)
    w = np.exp(-np.maximum(2 - 2 * s, 0))
    return cols, (w / w.sum()).astype(np.float32) if len(w) else w.astype(np.float32)


def nearest_other(graph: RerankGraph, row: int, own: int = -1) -> int:
    """The row's nearest item in the graph, the query's own row (own) excepted."""
    first, second = graph.neighbours[row, :2] if graph.k1 > 1 else (graph.neighbours[row, 0], row)
    return int(second if first == own else first)


def is_copy(query_to_first: float, first_to_its_nearest: float) -> bool:
    """Whether the query's nearest item is a copy of it (or it of the item): the two are each other's nearest,
    compared in the space before DBA and QE (which blur neighbours together). Then it stays first:
    neighbourhoods do not tell an edited copy from the rest of its class."""
    return query_to_first > first_to_its_nearest


def rerank_order(graph: RerankGraph, rows: np.ndarray, sims: np.ndarray, k2: int, lam: float, own: int = -1,
                 keep_first: bool = False) -> np.ndarray:  # fmt: skip
    """Positions of the candidates (rows, sims: the current ranking, best first, without the query's own
    row), the first `shortlist_size(k1)` re-ranked by (1 - lam) x Jaccard + lam x squared distance.
    own: the query's row when it is an item of the collection (see `query_encoding`); keep_first: the
    first candidate stays first (`is_copy`)."""
    rows, sims = np.asarray(rows, np.int64), np.asarray(sims, np.float32)
    m = min(len(rows), shortlist_size(graph.k1))
    if m == 0:
        return np.arange(len(rows))
    short, short_s = rows[:m], sims[:m]
    cols, weights = query_encoding(graph, short, short_s, own)
    query = np.zeros(len(graph.ids), np.float32)
    query[cols] = weights
    if k2 > 1:  # the query's own encoding averaged with its k2 - 1 nearest's
        query = (query + np.asarray(graph.encoding[short[: k2 - 1]].sum(0)).ravel()) / k2
    support = np.flatnonzero(query)
    expanded = local_expansion(graph, short, k2)
    items = expanded[:, support].toarray()
    shared = np.minimum(items, query[support]).sum(1)
    union = query.sum() + np.asarray(expanded.sum(1)).ravel() - shared  # sum of max = sum a + sum b - sum of min
    jaccard = 1 - shared / np.maximum(union, 1e-12)
    final = (1 - lam) * jaccard + lam * np.maximum(2 - 2 * short_s, 0)
    if keep_first:
        final[0] = -np.inf
    # equal distances (copies of one photo, items of disjoint descriptors) in row order, that is id order:
    # the same whichever order the search structure returned them in
    return np.concatenate([np.lexsort((short, final)), np.arange(m, len(rows))])


# -- storage -------------------------------------------------------------------------------------
def graph_bytes(graph: RerankGraph) -> bytes:
    v = graph.encoding
    buffer = io.BytesIO()
    np.savez(buffer, ids=graph.ids, neighbours=graph.neighbours, similarities=graph.similarities,
             indptr=v.indptr.astype(np.int64), indices=v.indices.astype(np.int32), data=v.data.astype(np.float32))  # fmt: skip
    return buffer.getvalue()


def save_graph(graph: RerankGraph, folder: Path) -> dict:
    """Write the graph beside the index under a name of its own content (an old manifest keeps naming the
    old file until the new manifest is written); its manifest record."""
    data = graph_bytes(graph)
    digest = hashlib.sha256(data).hexdigest()
    name = f"rerank-{digest[:16]}.npz"
    atomic_write_bytes(Path(folder) / name, data)
    return {"file": name, "sha256": digest, "items": int(len(graph.ids)), "k1": graph.k1}


def remove_stale_graphs(folder: Path, keep: str | None) -> None:
    """Graph files of earlier runs (called once the manifest names the new one)."""
    for path in Path(folder).glob("rerank-*.npz"):
        if path.name != keep:
            path.unlink(missing_ok=True)


def load_graph(folder: Path, record: dict) -> RerankGraph:
    path = Path(folder) / record["file"]
    fix = "rerun `reslab embed` on the folder to rebuild it (the images are not embedded again)"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ReslabError(f"the re-ranking graph {path} of the index is missing or unreadable ({e.strerror}); {fix}") from None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise ReslabError(f"the re-ranking graph {path} is damaged (its sha256 differs from the manifest's); {fix}")
    with np.load(io.BytesIO(data)) as z:
        n = len(z["ids"])
        v = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=(n, n))
        return RerankGraph(z["ids"], z["neighbours"], z["similarities"], v)
