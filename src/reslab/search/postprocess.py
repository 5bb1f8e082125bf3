"""Post-processing of retrieval descriptors, fitted on the indexed collection and kept in its manifest.

- PCA-whitening (Jégou & Chum 2012): centre on the collection's mean, rotate onto its principal
  axes and divide each by the square root of its variance (plus a shrinkage term, so that the
  noisy low-variance axes of a small collection are not blown up), keep `dim` axes, L2-normalise.
  Frequent, uninformative directions (background, colour casts) stop dominating the cosine.
- Database-side augmentation, DBA (Arandjelović & Zisserman 2012; the alpha-weighted form of
  Radenović et al. 2018): each indexed vector is replaced by the weighted sum of itself and its
  `n` nearest neighbours, weights similarity^alpha; the FAISS index holds these.
- alpha-query expansion, alpha-QE (Radenović et al. 2018): a query is searched, the query and its
  `n` best results are summed with weights similarity^alpha, and the sum is searched again.
- k-reciprocal re-ranking (Zhong et al. 2017; `reslab.search.rerank`): the first results are re-ordered
  by how much the query's mutual-neighbour set overlaps each result's; the collection's neighbour graph
  is fitted at finalize and kept in a side file named in the manifest (`rerank_graph`, with its sha256).

The raw embeddings stay in the store: whitening is re-fitted and DBA recomputed whenever
`reslab embed` finalises the index, and the fitted arrays live in manifest.json (base64 float32),
so any store that keeps the manifest keeps them.

Whitening estimated on a few hundred images is noisy (it inverts a covariance); `whiten_from` fits it
on another, larger index built with the same embedder instead (a generic collection of the same kind
of photos): the whitening then does not depend on the folder searched. It is refitted when that index
has changed and kept as it is when that index is gone.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import ReslabError
from ..embeddings import l2_normalize


def _encode(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype=np.float32)
    raw = a.tobytes()
    return {"shape": list(a.shape), "dtype": "float32", "sha256": hashlib.sha256(raw).hexdigest(),
            "data": base64.b64encode(raw).decode("ascii")}  # fmt: skip


def _decode(d: dict, what: str) -> np.ndarray:
    try:
        raw = base64.b64decode(d["data"])
        if hashlib.sha256(raw).hexdigest() != d["sha256"]:
            raise ValueError("checksum mismatch")
        return np.frombuffer(raw, dtype=np.float32).reshape(d["shape"]).copy()
    except (KeyError, ValueError, TypeError) as e:
        raise ReslabError(f"the index manifest's {what} is damaged ({e}); rerun `reslab embed` on the folder to refit it") from None


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray  # (d,)
    projection: np.ndarray  # (d, dim)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return l2_normalize((np.asarray(x, np.float32) - self.mean) @ self.projection)

    def to_manifest(self) -> dict:
        return {"mean": _encode(self.mean), "projection": _encode(self.projection)}

    @classmethod
    def from_manifest(cls, d: dict) -> "Whitening":
        return cls(_decode(d["mean"], "whitening mean"), _decode(d["projection"], "whitening projection"))


def fit_whitening(x: np.ndarray, dim: int = 256, shrinkage: float = 0.5) -> Whitening:
    """PCA-whitening of the rows of x (L2-normalised descriptors).

    dim: axes kept (at most the rank, n - 1). shrinkage: each eigenvalue gets shrinkage * the mean
    eigenvalue added before the inverse square root, the regularised whitening that a collection of
    a few hundred images needs (0 = plain whitening)."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n < 3:
        raise ReslabError(f"whitening needs at least 3 indexed images to estimate a covariance, the index has {n}; add images or drop --whiten")
    mean = x.mean(0)
    centred = x - mean
    # the covariance's eigenvectors from the smaller of the two Gram matrices (n << d for small collections)
    if n < d:
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
        values, vectors = s**2 / (n - 1), vt.T
    else:
        values, vectors = np.linalg.eigh(centred.T @ centred / (n - 1))
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
    keep = int(min(dim, n - 1, d, int((values > values[0] * 1e-9).sum())))
    values, vectors = values[:keep], vectors[:, :keep]
    scale = 1.0 / np.sqrt(values + shrinkage * values.mean())
    return Whitening(mean.astype(np.float32), (vectors * scale).astype(np.float32))


def weighted_neighbour_sum(queries: np.ndarray, database: np.ndarray, n: int, alpha: float,
                           exclude: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Each query plus its n nearest database rows weighted by max(similarity, 0)^alpha, L2-normalised.

    exclude: per query, a database row to leave out (the query's own row in leave-one-out).
    rows: what is added for a neighbour, when not its database row (the same items, another space)."""
    q = np.asarray(queries, np.float32)
    db = np.asarray(database, np.float32)
    add = db if rows is None else np.asarray(rows, np.float32)
    if n <= 0 or len(db) == 0:
        return l2_normalize(q)
    out = q.copy()
    for start in range(0, len(q), 1024):
        sims = q[start : start + 1024] @ db.T
        if exclude is not None:
            rows = np.arange(len(sims))
            sims[rows, exclude[start : start + 1024]] = -np.inf
        k = min(n, db.shape[0] - (1 if exclude is not None else 0))
        if k <= 0:
            continue
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        w = np.take_along_axis(sims, top, axis=1).clip(min=0) ** alpha
        out[start : start + 1024] += np.einsum("qk,qkd->qd", w, add[top])
    return l2_normalize(out)


@dataclass(frozen=True)
class PostOptions:
    """What `reslab embed` applies after the embedder (recorded in the manifest's "postprocess")."""

    whiten: bool = False
    whiten_dim: int = 256
    whiten_shrinkage: float = 0.5  # times the mean variance; 0.5 chosen by benchmarks/retrieval_whitening.py (0.1 before)
    dba: int = 0  # neighbours summed into each indexed vector (0 = none)
    qe: int = 0  # results summed into each query (0 = none)
    alpha: float = 3.0  # similarity exponent of DBA and QE weights
    whiten_from: str | None = None  # fit the whitening on this other index's vectors (implies whiten)
    rerank: bool = False  # k-reciprocal re-ranking of each query's first results (reslab.search.rerank)
    # k1, k2, lambda chosen on the selection folders over the default DBA 3 + QE 5 (benchmarks/retrieval_rerank.py;
    # over --whiten-from + DBA 10 + QE 5 the choice was k2 = 6, lambda = 0.1: docs/search.md)
    rerank_k1: int = 30  # neighbours whose mutual sets are compared
    rerank_k2: int = 1  # neighbours averaged into each encoding (local query expansion; 1 = none)
    rerank_lambda: float = 0.5  # weight of the plain squared distance in the final one (0 = Jaccard only)
    # also move the first result (False: cosine's nearest stays first; over the default base that kept P@1, over
    # --whiten-from + DBA 10 moving it gained P@1; P@10 and mAP the same either way: docs/search.md)
    rerank_first: bool = False

    def __post_init__(self):
        if self.whiten_dim < 1 or self.dba < 0 or self.qe < 0 or self.alpha < 0 or self.whiten_shrinkage < 0:
            raise ReslabError("whiten_dim must be >= 1 and dba, qe, alpha, shrinkage >= 0")
        if isinstance(self.rerank_k1, bool) or not isinstance(self.rerank_k1, int) or self.rerank_k1 < 1:
            raise ReslabError(f"--rerank-k1 (rerank_k1) is {self.rerank_k1!r}: it counts the neighbours compared per item, "
                              f"give a whole number >= 1 (default {RERANK_DEFAULTS['rerank_k1']})")  # fmt: skip
        if isinstance(self.rerank_k2, bool) or not isinstance(self.rerank_k2, int) or not 1 <= self.rerank_k2 <= self.rerank_k1:
            raise ReslabError(f"--rerank-k2 (rerank_k2) is {self.rerank_k2!r}: it counts the neighbours averaged into an "
                              f"encoding, give a whole number from 1 (none) to --rerank-k1 ({self.rerank_k1}) (default {RERANK_DEFAULTS['rerank_k2']})")  # fmt: skip
        if not (isinstance(self.rerank_lambda, (int, float)) and 0.0 <= float(self.rerank_lambda) <= 1.0):
            raise ReslabError(f"--rerank-lambda (rerank_lambda) is {self.rerank_lambda!r}: it weighs the plain distance against "
                              f"the Jaccard one, give a number from 0 to 1 (default {RERANK_DEFAULTS['rerank_lambda']})")  # fmt: skip
        if self.whiten_from is not None:
            object.__setattr__(self, "whiten_from", str(self.whiten_from))  # a Path from the API
            object.__setattr__(self, "whiten", True)


RERANK_DEFAULTS = {f: PostOptions.__dataclass_fields__[f].default for f in ("rerank_k1", "rerank_k2", "rerank_lambda")}


class Postprocess:
    """The fitted post-processing of one index: transforms for stored vectors and for queries."""

    def __init__(self, options: PostOptions, whitening: Whitening | None = None, source: dict | None = None,
                 rerank_graph: dict | None = None):  # fmt: skip
        # source: the other index the whitening was fitted on ({"index", "count", "updated", "embedder"});
        # rerank_graph: the side file of the fitted re-ranking graph ({"file", "sha256", "items", "k1"})
        self.options, self.whitening, self.source, self.rerank_graph = options, whitening, source, rerank_graph
        self._graph = None

    @property
    def active(self) -> bool:
        """Whether the index searches anything but the embedder's own rows."""
        o = self.options
        return self.whitening is not None or o.dba > 0 or o.qe > 0 or self.rerank_graph is not None

    def graph(self, folder):
        """The fitted re-ranking graph (read from the index folder once, its sha256 checked), or None."""
        if self.rerank_graph is None:
            return None
        if self._graph is None:
            from .rerank import load_graph

            self._graph = load_graph(folder, self.rerank_graph)
        return self._graph

    @classmethod
    def fit(cls, options: PostOptions, vectors: np.ndarray) -> "Postprocess":
        """Fit on the collection. Whitening needs at least 2 x whiten_dim images to estimate the covariance
        it inverts; a smaller collection is indexed without it (and whitened once it has grown).
        With `whiten_from`, use `fit_on_source` (the whitening comes from the other index)."""
        enough = len(vectors) >= max(3, 2 * options.whiten_dim)
        whitening = fit_whitening(vectors, options.whiten_dim, options.whiten_shrinkage) if options.whiten and enough else None
        return cls(options, whitening)

    @classmethod
    def fit_on_source(cls, options: PostOptions, vectors: np.ndarray, source: dict) -> "Postprocess":
        """The whitening fitted on another index's vectors (checked by `reslab.search.whiten_from`)."""
        return cls(options, fit_whitening(vectors, options.whiten_dim, options.whiten_shrinkage), source)

    def describe(self) -> str:
        """In a few words: "whitened (256 axes, fitted on /data/generic.index, 5000 items), DBA 3, QE 5"."""
        o, parts = self.options, []
        if self.whitening is not None:
            where = f", fitted on {self.source['index']} ({self.source['count']} items)" if self.source else ""
            parts.append(f"whitened ({self.whitening.projection.shape[1]} axes{where})")
        elif o.whiten:
            parts.append("whitening asked, not fitted yet (too few items)")
        parts += [f"DBA {o.dba}"] if o.dba else []
        parts += [f"QE {o.qe}"] if o.qe else []
        if self.rerank_graph is not None:
            first = ", the first result too" if o.rerank_first else ""
            parts.append(f"k-reciprocal re-ranking (k1 {o.rerank_k1}, k2 {o.rerank_k2}, lambda {o.rerank_lambda:g}{first})")
        elif o.rerank:
            from .rerank import MAX_ITEMS, min_items

            parts.append(f"re-ranking asked, not fitted (needs {min_items(o.rerank_k1)} to {MAX_ITEMS:,} items)")
        return ", ".join(parts) or "none"

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Embedder rows -> the space the index searches in (whitened and renormalised, or as they are)."""
        return self.whitening.apply(x) if self.whitening is not None else l2_normalize(x)

    def database(self, x: np.ndarray) -> np.ndarray:
        """Transformed rows of the whole collection -> the rows the FAISS index holds (after DBA)."""
        return weighted_neighbour_sum(x, x, self.options.dba, self.options.alpha) if self.options.dba else x

    @property
    def dim_out(self) -> int | None:
        return None if self.whitening is None else int(self.whitening.projection.shape[1])

    def to_manifest(self) -> dict | None:
        o = self.options
        if not (o.whiten or o.dba or o.qe or o.rerank):
            return None
        out = {"whiten_requested": o.whiten, "whiten": None, "whiten_dim": o.whiten_dim, "whiten_shrinkage": o.whiten_shrinkage,
               "dba": o.dba, "qe": o.qe, "alpha": o.alpha,
               "rerank": {"k1": o.rerank_k1, "k2": o.rerank_k2, "lambda": o.rerank_lambda, "first": o.rerank_first} if o.rerank else None,
               "rerank_graph": self.rerank_graph}  # fmt: skip
        if self.whitening is not None:
            out["whiten"] = self.whitening.to_manifest()
        if o.whiten_from is not None:
            out["whiten_from"] = self.source or {"index": o.whiten_from}
        return out

    @classmethod
    def from_manifest(cls, manifest: dict) -> "Postprocess":
        d = manifest.get("postprocess")
        if not d:
            return cls(PostOptions())
        whitening = Whitening.from_manifest(d["whiten"]) if d.get("whiten") else None
        source = d.get("whiten_from")
        rerank = d.get("rerank") or {}
        options = PostOptions(whiten=bool(d.get("whiten_requested", whitening is not None)), whiten_dim=int(d.get("whiten_dim", 256)),
                              whiten_shrinkage=float(d.get("whiten_shrinkage", 0.1)), dba=int(d.get("dba", 0)),
                              qe=int(d.get("qe", 0)), alpha=float(d.get("alpha", 3.0)),
                              whiten_from=source["index"] if source else None, rerank=bool(rerank),
                              rerank_k1=int(rerank.get("k1", 30)), rerank_k2=int(rerank.get("k2", 1)),
                              rerank_lambda=float(rerank.get("lambda", 0.5)), rerank_first=bool(rerank.get("first", False)))  # fmt: skip
        return cls(options, whitening, source, d.get("rerank_graph"))

    @staticmethod
    def options_of(manifest: dict) -> PostOptions:
        return Postprocess.from_manifest(manifest).options
