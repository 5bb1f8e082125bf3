"""Retrieval metrics with folder labels as relevance: precision@k, recall@k, mAP (leave-one-out).

Every item is a query against all the others; relevant items share its label. Queries whose label
has no other member are left out (they have nothing to find). Exact ranking by cosine similarity,
computed in blocks, so no N x N matrix is held at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ReslabError
from .index import SearchIndex

Reorder = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RetrievalScores:
    precision: dict[int, float]  # k -> mean precision@k
    recall: dict[int, float]  # k -> mean recall@k
    mean_ap: float
    queries: int


def query_metrics(relevant: np.ndarray, n_relevant: int, ks: list[int]) -> tuple[dict[int, float], dict[int, float], float]:
    """Metrics of one ranked list. relevant: bool per rank (best first), over the whole ranking.

    precision@k = hits in the top k / k; recall@k = hits in the top k / n_relevant;
    AP = mean over the relevant items of the precision at their rank.
    """
    relevant = np.asarray(relevant, dtype=bool)
    hits = np.cumsum(relevant)
    precision = {k: float(hits[min(k, len(relevant)) - 1] / k) for k in ks}
    recall = {k: float(hits[min(k, len(relevant)) - 1] / n_relevant) for k in ks}
    ranks = np.flatnonzero(relevant) + 1
    ap = float(np.sum(hits[ranks - 1] / ranks) / n_relevant) if n_relevant else 0.0
    return precision, recall, ap


def retrieval_scores(vectors: np.ndarray, labels: list[str], ks: list[int], block: int = 512,
                     database: np.ndarray | None = None, reorder: Reorder | None = None) -> RetrievalScores:  # fmt: skip
    """Leave-one-out retrieval over L2-normalised `vectors` with `labels` as ground truth.

    database: the rows searched, when they differ from the query rows (database-side augmentation);
    row i of both is the same item. reorder(query row, ranking, its similarities) -> the final ranking
    (re-ranking)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    db = vectors if database is None else np.asarray(database, dtype=np.float32)
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    counts = np.bincount(codes)
    n = len(vectors)
    ks = [k for k in ks if k <= n - 1] or [max(1, n - 1)]
    p_sum, r_sum, ap_sum, queries = {k: 0.0 for k in ks}, {k: 0.0 for k in ks}, 0.0, 0
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ db.T  # (block, N)
        for row, q in enumerate(range(start, min(start + block, n))):
            n_rel = counts[codes[q]] - 1
            if n_rel == 0:
                continue
            order = leave_one_out_order(sims[row], q, reorder)
            p, r, ap = query_metrics(codes[order] == codes[q], n_rel, ks)
            for k in ks:
                p_sum[k] += p[k]
                r_sum[k] += r[k]
            ap_sum += ap
            queries += 1
    q = max(1, queries)
    return RetrievalScores({k: p_sum[k] / q for k in ks}, {k: r_sum[k] / q for k in ks}, ap_sum / q, queries)


def leave_one_out_order(sims: np.ndarray, q: int, reorder: Reorder | None = None) -> np.ndarray:
    """Rows of every item but q, best first, as search ranks them for the query q."""
    s = sims.copy()
    s[q] = -np.inf  # leave the query itself out
    # stable order on ties (by index) so results are reproducible
    order = np.argsort(-s, kind="stable")[:-1]
    return order if reorder is None else reorder(q, order, s[order])


def evaluate_index(index: SearchIndex, ks: list[int]) -> RetrievalScores:
    """Leave-one-out retrieval as `reslab search` ranks: the index's whitening, DBA, QE and re-ranking included."""
    ids, labels, vectors = _collection(index)
    return postprocessed_scores(vectors, labels, ks, index.post, _graph_of(index, ids))


def ranked_ids(index: SearchIndex, item_id: int) -> list[int]:
    """The ranking `evaluate_index` scores for one item as the query: ids of every other item, best first
    (what `SearchIndex.search_item` returns, when it returns them all)."""
    ids, _labels, vectors = _collection(index)
    at = np.flatnonzero(ids == item_id)
    if not len(at):
        index.item(item_id)  # an unknown id: its clear message
    q = int(at[0])
    queries, database, reorder = _ranking_setup(vectors, index.post, _graph_of(index, ids))
    return [int(ids[r]) for r in leave_one_out_order(queries[q] @ database.T, q, reorder)]


def _collection(index: SearchIndex) -> tuple[np.ndarray, list[str], np.ndarray]:
    ids, labels, blocks = [], [], []
    for items, vectors in index.store.iter_items():
        ids += [it.id for it in items]
        labels += [it.label for it in items]
        blocks.append(vectors)
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, index.manifest["dim"]), np.float32)
    return np.asarray(ids, np.int64), labels, vectors


def _graph_of(index: SearchIndex, ids: np.ndarray):
    """The index's re-ranking graph, checked to describe exactly its items (rows in id order, as iter_items)."""
    graph = index.post.graph(index.store.files_dir()) if index.post.rerank_graph is not None else None
    if graph is not None and not np.array_equal(graph.ids, ids):
        raise ReslabError(f"the re-ranking graph of the index {index.store.describe()} does not match its items (an update did not "
                          "finish); rerun `reslab embed` on the folder to finish it")  # fmt: skip
    return graph


def postprocessed_scores(vectors: np.ndarray, labels: list[str], ks: list[int], post, graph=None) -> RetrievalScores:
    """Leave-one-out scores of embedder rows under a fitted `Postprocess`, as `SearchIndex.search_vectors`
    ranks: results picked against the indexed (augmented) rows, a query expanded with the transformed rows
    of its first results, never with itself, and its first results re-ranked with the graph (row i = item i)."""
    if not post.active and graph is None:
        return retrieval_scores(vectors, labels, ks)
    queries, database, reorder = _ranking_setup(vectors, post, graph)
    return retrieval_scores(queries, labels, ks, database=database, reorder=reorder)


def _ranking_setup(vectors: np.ndarray, post, graph) -> tuple[np.ndarray, np.ndarray, Reorder | None]:
    """(query rows, database rows, reorder) of a collection under `post`: one setup for the scores and one query's ranking."""
    from .postprocess import weighted_neighbour_sum

    plain = post.transform(vectors)
    database = post.database(plain)
    queries = plain
    if post.options.qe:
        queries = weighted_neighbour_sum(plain, database, post.options.qe, post.options.alpha,
                                         exclude=np.arange(len(plain)), rows=plain)  # fmt: skip
    reorder = None
    if graph is not None:
        from .rerank import is_copy, nearest_other, rerank_order

        o = post.options

        def reorder(q: int, order: np.ndarray, sims: np.ndarray) -> np.ndarray:
            first = int(order[0])  # as SearchIndex._reranked: a copy of the query stays first
            keep_first = not o.rerank_first or is_copy(float(plain[q] @ plain[first]), float(plain[first] @ plain[nearest_other(graph, first, q)]))
            return order[rerank_order(graph, order, sims, o.rerank_k2, o.rerank_lambda, own=q, keep_first=keep_first)]

    return queries, database, reorder


def plot_precision_at_k(rows: list[dict], path: str | Path) -> Path:
    """precision@k against k, one line per index (rows as `reslab eval-retrieval --json` prints them)."""
    from ..plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ks = [int(c[2:]) for c in r if c.startswith("P@")]
        ax.plot(ks, [r[f"P@{k}"] for k in ks], marker="o", label=f"{r['method']} (mAP {r['mAP']:.3f})")
    ax.set_xlabel("k")
    ax.set_ylabel("precision@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Retrieval precision, folder labels as relevance")
    fig.tight_layout()
    return save_figure(fig, path)
