"""What k-reciprocal re-ranking (`reslab embed --rerank`) costs on a large collection: fitting the graph at
finalize, its file, and query latency, as ratios against what the index pays anyway, in the same process.

Collections of N clustered random unit vectors (1280 dimensions, as EfficientNet-Lite0's pooled features;
N / 50 cluster centres, so neighbourhoods have structure). Baselines: database-side augmentation (DBA 3,
`weighted_neighbour_sum`, what a default index already computes at finalize) and the flat FAISS search a
query already runs. Re-ranking: `reslab.search.rerank.fit_graph` with neighbours searched through the same
FAISS index, and a query = FAISS search of its shortlist + `rerank_order`.

    python benchmarks/rerank_scale.py [N ...]    # writes benchmarks/results/rerank_scale.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from reslab.fileio import atomic_write_text
from reslab.provenance import bench_results_dir, record
from reslab.search.postprocess import PostOptions, weighted_neighbour_sum
from reslab.search.rerank import fit_graph, graph_bytes, rerank_order, shortlist_size

DIM = 1280
QUERIES = 200


def collection(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 50), DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 1.5 * rng.normal(size=(n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def measure(n: int, options: PostOptions) -> dict:
    import faiss

    x = collection(n)
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    index.add(x)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    weighted_neighbour_sum(x, x, 3, 3.0)
    dba_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = fit_graph(ids, x, options.rerank_k1, search=index.search)
    graph_s = time.perf_counter() - t0
    size = len(graph_bytes(graph))
    queries = collection(QUERIES, seed=1)
    t0 = time.perf_counter()
    for q in queries:
        index.search(q[None], 10)
    plain_ms = (time.perf_counter() - t0) / QUERIES * 1e3
    t0 = time.perf_counter()
    m = shortlist_size(options.rerank_k1)
    for q in queries:
        s, found = index.search(q[None], m)
        rerank_order(graph, found[0], s[0], options.rerank_k2, options.rerank_lambda)
    rerank_ms = (time.perf_counter() - t0) / QUERIES * 1e3
    return {"items": n, "dim": DIM, "k1": options.rerank_k1, "k2": options.rerank_k2,
            "faiss_flat_build_s": round(build_s, 2), "dba3_s": round(dba_s, 2), "graph_fit_s": round(graph_s, 2),
            "graph_fit_over_dba": round(graph_s / dba_s, 2), "graph_file_mb": round(size / 1e6, 1),
            "graph_bytes_per_item": round(size / n), "encoding_nonzeros_per_item": round(graph.encoding.nnz / n, 1),
            "query_ms_plain_top10": round(plain_ms, 2), "query_ms_rerank": round(rerank_ms, 2),
            "query_rerank_over_plain": round(rerank_ms / plain_ms, 2)}  # fmt: skip


def main(sizes: list[int]) -> None:
    options = PostOptions(rerank=True)  # the defaults' k1, k2, lambda
    load = os.getloadavg()
    rows = []
    for n in sizes:
        rows.append(measure(n, options))
        print(rows[-1], flush=True)
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    result = {"rows": rows, "load_average_before": [round(v, 2) for v in load], "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "lscpu": [line for line in flags.splitlines() if line.startswith(("Model name", "CPU(s)", "Flags"))],
              "provenance": record("python benchmarks/rerank_scale.py " + " ".join(map(str, sizes)))}  # fmt: skip
    target = bench_results_dir() / "rerank_scale.json"
    atomic_write_text(target, json.dumps(result, indent=1) + "\n")
    print("wrote", target)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [20_000, 50_000])
