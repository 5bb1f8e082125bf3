"""FAISS index kinds: exact search against NumPy, IVF and HNSW recall on clustered data."""

import numpy as np
import pytest

from reslab.errors import ReslabError
from reslab.search.bench import clustered_vectors, recall_at_k
from reslab.search.faiss_index import FaissParams, build_faiss, deserialize, ivf_nlist, resolve_kind, serialize


@pytest.fixture(scope="module")
def data():
    x = clustered_vectors(10_200, 64, clusters=100, seed=1)
    return x[:10_000], x[10_000:]


def exact_top_k(base, q, k):
    sims = q @ base.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_flat_is_exact_and_returns_item_ids(data):
    base, q = data
    ids = np.arange(len(base), dtype=np.int64) * 3 + 7  # arbitrary item ids, not row numbers
    index = build_faiss(ids, base, FaissParams("flat"), 64)
    scores, found = index.search(q, 10)
    truth = exact_top_k(base, q, 10)
    assert recall_at_k((found - 7) // 3, truth) > 0.999  # ties may swap equal scores
    np.testing.assert_allclose(scores[:, 0], np.max(q @ base.T, axis=1), rtol=1e-5)


@pytest.mark.parametrize("kind, floor", [("ivf", 0.9), ("hnsw", 0.9)])
def test_approximate_kinds_recall(data, kind, floor):
    base, q = data
    ids = np.arange(len(base), dtype=np.int64)
    index = deserialize(serialize(build_faiss(ids, base, FaissParams(kind, nprobe=16, ef_search=64), 64)))  # survives a round trip
    _, found = index.search(q, 10)
    assert recall_at_k(found, exact_top_k(base, q, 10)) >= floor


def test_kind_choice_and_nlist():
    assert resolve_kind("auto", 5_000) == "flat" and resolve_kind("auto", 2_000_000) == "hnsw"
    assert ivf_nlist(1_000_000) == 4000 and ivf_nlist(1000) == 25  # 4*sqrt(N), but >= 39 points per cell
    with pytest.raises(ReslabError, match="index kind"):
        resolve_kind("annoy", 10)
