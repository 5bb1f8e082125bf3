"""FAISS structures for inner-product search over L2-normalised vectors (inner product = cosine).

flat: exact (`IndexFlatIP`), the default below ~100k items.
ivf:  `IndexIVFFlat`, k-means into nlist ~ 4*sqrt(N) cells, `nprobe` cells searched per query.
hnsw: `IndexHNSWFlat` (inner product), a navigable small-world graph; `ef_search` trades speed for recall.
All are wrapped in `IndexIDMap2` so searches return the SQLite item ids directly.

Perceptual hashes (metric "hamming") get the binary counterparts: `IndexBinaryFlat`,
`IndexBinaryIVF`, `IndexBinaryHNSW` over packed bits (n / 8 bytes per item), searched by Hamming
distance with popcount; `binary_search` turns distances back into the rows' cosine similarity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ReslabError

INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")
AUTO_FLAT_LIMIT = 100_000  # below this, exact search is fast enough and has perfect recall


@dataclass(frozen=True)
class FaissParams:
    kind: str = "flat"
    nlist: int = 0  # IVF cells; 0: 4*sqrt(N)
    nprobe: int = 16  # IVF cells visited per query
    hnsw_m: int = 32  # HNSW neighbours per node
    ef_construction: int = 80
    ef_search: int = 64  # HNSW candidate list at query time


def resolve_kind(kind: str, n: int) -> str:
    if kind not in INDEX_KINDS:
        raise ReslabError(f"unknown index kind '{kind}'; choose one of {', '.join(INDEX_KINDS)}")
    if kind == "auto":
        return "flat" if n < AUTO_FLAT_LIMIT else "hnsw"
    return kind


def ivf_nlist(n: int) -> int:
    # 4*sqrt(N) cells, but at least 39 training points per cell (FAISS's k-means minimum)
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def build_faiss(ids: np.ndarray, vectors: np.ndarray, params: FaissParams, dim: int, metric: str = "inner_product"):
    """A FAISS index over `vectors` (float32, L2-normalised rows) labelled with `ids`."""
    import faiss

    if metric == "hamming":
        return build_binary(ids, vectors, params, dim)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n = len(vectors)
    if params.kind == "flat" or n == 0:
        base = faiss.IndexFlatIP(dim)
    elif params.kind == "ivf":
        nlist = params.nlist or ivf_nlist(n)
        quantizer = faiss.IndexFlatIP(dim)
        base = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        base.train(_training_sample(vectors, nlist))
        base.nprobe = min(params.nprobe, nlist)
        base.own_fields = True
        quantizer.this.disown()
    elif params.kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = params.ef_construction
        base.hnsw.efSearch = params.ef_search
    else:
        raise ReslabError(f"unknown index kind '{params.kind}'; choose one of flat, ivf, hnsw")
    index = faiss.IndexIDMap2(base)
    index.own_fields = True
    base.this.disown()
    if n:
        index.add_with_ids(vectors, ids)
        if params.kind == "ivf":
            base.make_direct_map()  # reconstruct(id), which query expansion needs
    return index


def build_binary(ids: np.ndarray, vectors: np.ndarray, params: FaissParams, dim: int):
    """A binary FAISS index over the sign bits of `vectors` (hash rows), labelled with `ids`."""
    import faiss

    from ..embeddings.hashes import rows_to_packed

    if dim % 8:
        raise ReslabError(f"a binary index needs a multiple of 8 bits, got {dim}")
    codes = np.ascontiguousarray(rows_to_packed(np.asarray(vectors).reshape(-1, dim)))
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n = len(codes)
    if params.kind == "flat" or n == 0:
        base = faiss.IndexBinaryFlat(dim)
    elif params.kind == "ivf":
        nlist = params.nlist or ivf_nlist(n)
        quantizer = faiss.IndexBinaryFlat(dim)
        base = faiss.IndexBinaryIVF(quantizer, dim, nlist)
        base.train(codes if n <= 64 * nlist else codes[np.sort(np.random.default_rng(0).choice(n, 64 * nlist, replace=False))])
        base.nprobe = min(params.nprobe, nlist)
        base.own_fields = True
        quantizer.this.disown()
    elif params.kind == "hnsw":
        base = faiss.IndexBinaryHNSW(dim, params.hnsw_m)
        base.hnsw.efConstruction = params.ef_construction
        base.hnsw.efSearch = params.ef_search
    else:
        raise ReslabError(f"unknown index kind '{params.kind}'; choose one of flat, ivf, hnsw")
    index = faiss.IndexBinaryIDMap2(base)
    index.own_fields = True
    base.this.disown()
    if n:
        index.add_with_ids(codes, ids)
    return index


def is_binary(index) -> bool:
    import faiss

    return isinstance(index, faiss.IndexBinary)


def reconstruct(index, ids) -> np.ndarray:
    """The indexed rows of `ids` (float indexes): (len(ids), d)."""
    return np.stack([index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, index.d), np.float32)


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities (Q, k), ids (Q, k)) for float rows; binary indexes search the rows' sign bits
    and report 1 - 2 * hamming / bits, the cosine similarity of the hash rows."""
    if is_binary(index):
        from ..embeddings.hashes import bits_to_similarity, rows_to_packed

        dist, ids = index.search(np.ascontiguousarray(rows_to_packed(queries)), k)
        return bits_to_similarity(dist, index.d), ids
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def range_search(index, queries: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lims, similarities, ids) of every item with similarity >= threshold to each query."""
    if is_binary(index):
        from ..embeddings.hashes import bits_to_similarity, rows_to_packed, similarity_to_bits

        radius = int(math.floor(similarity_to_bits(threshold, index.d) + 1e-6)) + 1  # FAISS: distance < radius
        lims, dist, ids = index.range_search(np.ascontiguousarray(rows_to_packed(queries)), radius)
        return lims, bits_to_similarity(dist, index.d), ids
    return index.range_search(np.ascontiguousarray(queries, dtype=np.float32), float(threshold))


def set_search_params(index, params: FaissParams) -> None:
    """Query-time knobs are not all serialised by FAISS; set them again after loading."""
    import faiss

    if is_binary(index):
        base = faiss.downcast_IndexBinary(index.index) if hasattr(index, "index") else index
        if isinstance(base, faiss.IndexBinaryIVF):
            base.nprobe = min(params.nprobe, base.nlist)
        elif isinstance(base, faiss.IndexBinaryHNSW):
            base.hnsw.efSearch = params.ef_search
        return
    base = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(base, faiss.IndexIVF):
        base.nprobe = min(params.nprobe, base.nlist)
    elif isinstance(base, faiss.IndexHNSW):
        base.hnsw.efSearch = params.ef_search


def _training_sample(vectors: np.ndarray, nlist: int) -> np.ndarray:
    # k-means needs ~40 points per cell (FAISS warns below 39); more only costs time
    cap = 64 * nlist
    if len(vectors) <= cap:
        return vectors
    rng = np.random.default_rng(0)
    return vectors[np.sort(rng.choice(len(vectors), cap, replace=False))]


def serialize(index) -> bytes:
    import faiss

    if is_binary(index):
        return faiss.serialize_index_binary(index).tobytes()
    return faiss.serialize_index(index).tobytes()


def deserialize(data: bytes, metric: str = "inner_product"):
    import faiss

    if metric == "hamming":
        return faiss.deserialize_index_binary(np.frombuffer(data, dtype=np.uint8))
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
