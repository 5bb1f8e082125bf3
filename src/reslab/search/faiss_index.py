"""FAISS structures for inner-product search over L2-normalised vectors (inner product = cosine).

flat: exact (`IndexFlatIP`), the default below ~100k items.
ivf:  `IndexIVFFlat`, k-means into nlist ~ 4*sqrt(N) cells, `nprobe` cells searched per query.
hnsw: `IndexHNSWFlat` (inner product), a navigable small-world graph; `ef_search` trades speed for recall.
All are wrapped in `IndexIDMap2` so searches return the SQLite item ids directly.
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


def build_faiss(ids: np.ndarray, vectors: np.ndarray, params: FaissParams, dim: int):
    """A FAISS index over `vectors` (float32, L2-normalised rows) labelled with `ids`."""
    import faiss

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
    return index


def set_search_params(index, params: FaissParams) -> None:
    """Query-time knobs are not all serialised by FAISS; set them again after loading."""
    import faiss

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

    return faiss.serialize_index(index).tobytes()


def deserialize(data: bytes):
    import faiss

    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
