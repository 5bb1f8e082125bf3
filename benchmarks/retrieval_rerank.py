"""k-reciprocal re-ranking (Zhong et al. 2017) on top of the indexes of `benchmarks/retrieval_whitening.py`:
a prototype measured in leave-one-out over the whole collection (transductive), not a shipped option.

Each item's k-reciprocal neighbours (j in i's k1 nearest and i in j's) are expanded, encoded as a
Gaussian-weighted vector over the collection, averaged over the k2 nearest (local query expansion),
and items are ranked by (1 - lambda) x the Jaccard distance of those vectors + lambda x the squared
Euclidean distance. Settings are chosen on the selection folders, reported on the held-out ones.
"Shortlist" recomputes it per query inside the query's 100 nearest items only (what a query-time
implementation without a stored neighbour graph could do).

    python benchmarks/retrieval_whitening.py /tmp/pf /tmp/rw   # first: the indexes
    python benchmarks/retrieval_rerank.py /tmp/rw              # writes benchmarks/results/retrieval_rerank.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from reslab.fileio import atomic_write_text
from reslab.provenance import bench_results_dir, record
from reslab.search.postprocess import fit_whitening
from retrieval_whitening import HELD_OUT, SELECTION, rows_and_labels  # benchmarks/ is on sys.path when run as a script

SETTINGS = [(20, 6, 0.3), (30, 6, 0.3), (30, 6, 0.1)]  # (k1, k2, lambda)


def k_reciprocal_similarity(sim: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """-(final distance) for every pair of rows of a cosine-similarity matrix (higher = nearer)."""
    n = len(sim)
    dist = np.maximum(2 - 2 * sim, 0)  # squared Euclidean distance of unit vectors
    rank = np.argsort(dist, axis=1)

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = rank[i, : k + 1]
        return forward[(rank[forward, : k + 1] == i).any(1)]

    v = np.zeros((n, n), np.float32)
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = [r]
        for j in r:
            c = reciprocal(j, int(round(k1 / 2)))
            if len(np.intersect1d(c, r)) > 2 / 3 * len(c):
                expanded.append(c)
        e = np.unique(np.concatenate(expanded))
        w = np.exp(-dist[i, e])
        v[i, e] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    shared = np.stack([np.minimum(v[i][None, :], v).sum(1) for i in range(n)])
    jaccard = 1 - shared / (2 - shared)
    return -((1 - lam) * jaccard + lam * dist)


def precision_at_10(sim: np.ndarray, labels: np.ndarray) -> float:
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)  # leave-one-out: an item is never its own result
    top = np.argsort(-sim, axis=1)[:, :10]
    return round(float((labels[top] == labels[:, None]).mean()), 4)


def shortlist_precision_at_10(sim: np.ndarray, labels: np.ndarray, k1: int, k2: int, lam: float, m: int = 100) -> float:
    hits = []
    for i in range(len(sim)):
        s = sim[i].copy()
        s[i] = -np.inf
        short = np.argsort(-s)[:m]
        local = np.concatenate([[i], short])
        final = k_reciprocal_similarity(sim[np.ix_(local, local)], min(k1, m // 2), k2, lam)[0, 1:]
        hits.append((labels[short[np.argsort(-final)[:10]]] == labels[i]).mean())
    return round(float(np.mean(hits)), 4)


def main(out: Path) -> None:
    rows: dict[str, dict] = {}
    for folder, (same, _other) in {**SELECTION, **HELD_OUT}.items():
        x, labels = rows_and_labels(out / f"{folder}.index")
        labels = np.array(labels)
        whitened = fit_whitening(rows_and_labels(out / f"{same}.index")[0], 256, 0.5).apply(x)
        for space, v in (("no whitening", x), ("whitened on the other classes (256 axes, shrinkage 0.5)", whitened)):
            sim = v @ v.T
            rows.setdefault(f"{space} | none", {})[folder] = precision_at_10(sim, labels)
            for k1, k2, lam in SETTINGS:
                rows.setdefault(f"{space} | k-reciprocal k1={k1} k2={k2} lambda={lam}", {})[folder] = precision_at_10(
                    k_reciprocal_similarity(sim, k1, k2, lam), labels)  # fmt: skip
            k1, k2, lam = 30, 6, 0.3
            rows.setdefault(f"{space} | k-reciprocal k1={k1} k2={k2} lambda={lam}, per query in its 100 nearest", {})[folder] = (
                shortlist_precision_at_10(sim, labels, k1, k2, lam))  # fmt: skip
        print(folder, flush=True)
    for r in rows.values():
        r["selection mean"] = round(float(np.mean([r[f] for f in SELECTION])), 4)
    for k, r in rows.items():
        print(f"{k:100s} " + " ".join(f"{r[f]:.3f}" for f in [*SELECTION, "selection mean", *HELD_OUT]))
    result = {"selection": list(SELECTION), "held_out": list(HELD_OUT), "rows": rows,
              "provenance": record(f"python benchmarks/retrieval_rerank.py {out}")}  # fmt: skip
    target = bench_results_dir() / "retrieval_rerank.json"
    atomic_write_text(target, json.dumps(result, indent=1) + "\n")
    print("wrote", target)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/rw"))
