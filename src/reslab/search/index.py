"""`SearchIndex`: open an index (a folder, or a Milvus collection) and query it by image, by item or by vector.

Queries are embedded with the embedder rebuilt from the index's own manifest, so a query can
never be compared with vectors of another model or method.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ..errors import ReslabError
from ..embeddings import Embedder, describe, l2_normalize
from .store import Item
from .stores import IndexStore, open_store
from .postprocess import Postprocess

__all__ = ["Hit", "Item", "SearchIndex"]

MAX_K = 16384  # the most neighbours one query returns (Milvus's limit; more is a scan, not a search)


@dataclass(frozen=True)
class Hit:
    id: int
    score: float  # cosine similarity in the index's space (1.0 for an identical embedding; with DBA/QE just below;
    # with re-ranking the list's order is the re-ranked one and scores need not decrease down it)
    path: str
    label: str


class SearchIndex:
    def __init__(self, path: Path, manifest: dict, store: IndexStore, runtime: dict, store_uri: str | None = None):
        self.path, self.manifest, self.store, self._runtime, self.store_uri = path, manifest, store, runtime, store_uri
        self._embedder: Embedder | None = None
        self.post = Postprocess.from_manifest(manifest)  # whitening, DBA, QE fitted on this collection

    @classmethod
    def open(cls, path: str | os.PathLike, store: str | None = None, **runtime) -> "SearchIndex":
        """Open an index built by `reslab embed`.

        store: None (the folder `path`, or the Milvus collection it points at) or a store URI
        (milvus:///data/photos.db, milvus://host:19530): the index named `path` in that store.
        runtime: how the query network runs (CNN indexes): runtime (None: the one the index was
        built with when available, else torch fp32; "auto"; "onnxruntime"...), precision, device,
        batch_size (see `reslab.inference.open_session`).
        """
        path = Path(path)
        st = open_store(path, store)
        try:
            manifest = st.read_manifest()
            if manifest is None:
                raise ReslabError(f"{st.describe()} is not a reslab index (no manifest); build one with `reslab embed SRC --out {path}`")
            if "count" not in manifest:  # set when a run finishes; an update in progress still serves the last one
                raise ReslabError(f"the index {st.describe()} is incomplete (its first `reslab embed` run did not finish); rerun it to resume")
        except BaseException:
            st.close()
            raise
        return cls(path, manifest, st, runtime, store)

    def reopen(self) -> "SearchIndex":
        """The same index opened again (a connection of the calling thread's own)."""
        return type(self).open(self.path, self.store_uri, **self._runtime)

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        return f"SearchIndex({self.store.describe()!r}, {len(self)} items, {describe(self.manifest)}, {self.manifest.get('index_kind')})"

    def embedder(self) -> Embedder:
        if self._embedder is None:
            from .embed import index_embedder

            self._embedder = index_embedder(self.store, self.manifest, self._runtime)
        return self._embedder

    def check_query_options(self, method: str | None = None, model: str | None = None, layer: str | None = None) -> None:
        """Refuse a query whose requested embedder disagrees with the one that built the index."""
        m = self.manifest
        wrong = []
        if method is not None and method != m.get("method"):
            wrong.append(f"method '{method}' (the index uses '{m.get('method')}')")
        if model is not None and model != m.get("model"):
            wrong.append(f"model '{model}' (" + (f"the index uses '{m['model']}')" if m.get("model") else "the index uses no network)"))
        if layer is not None and layer != m.get("layer"):
            wrong.append(f"layer '{layer}' (" + (f"the index uses '{m['layer']}')" if m.get("layer") else "the index uses the pooled output)"))
        if wrong:
            raise ReslabError(
                f"the index {self.store.describe()} was built with {describe(m)}, so it cannot be queried with {' and '.join(wrong)}; "
                "drop the option (queries are embedded the index's own way) or build another index"
            )

    # -- queries -------------------------------------------------------------------------------
    def embed_images(self, images: list) -> np.ndarray:
        from ..imageio import load_image

        emb = self.embedder()
        prepared = []
        for image in images:
            if not isinstance(image, Image.Image):
                image = load_image(image, min_size=getattr(emb, "min_size", None))
            prepared.append(emb.preprocess(image))
        return emb.embed(prepared)

    def search_image(self, image: Image.Image | str | Path, k: int = 10, mirror: bool | None = None) -> list[Hit]:
        """The k nearest items to an image. mirror (default: for hash indexes, whose bits are not
        flip-invariant): also search its horizontal mirror and keep each item's better score."""
        if mirror is None:
            mirror = self.manifest.get("metric") == "hamming"
        if not mirror:
            return self.search_vectors(self.embed_images([image]), k)[0]
        from PIL import ImageOps

        from ..imageio import load_image

        if not isinstance(image, Image.Image):
            image = load_image(image, min_size=getattr(self.embedder(), "min_size", None))
        best: dict[int, Hit] = {}
        for hits in self.search_vectors(self.embed_images([image, ImageOps.mirror(image)]), k):
            for h in hits:
                if h.id not in best or h.score > best[h.id].score:
                    best[h.id] = h
        return sorted(best.values(), key=lambda h: (-h.score, h.id))[:k]

    def search_item(self, item_id: int, k: int = 10) -> list[Hit]:
        """The k nearest items to an indexed item, the item itself excluded (from its results, its query
        expansion and its re-ranking: the ranking `reslab eval-retrieval` scores)."""
        self.item(item_id)  # a clear error for an unknown id
        return self.search_vectors(self.store.vector(item_id)[None, :], k, exclude=[item_id])[0]

    def search_vectors(self, q: np.ndarray, k: int, exclude: list[int | None] | None = None) -> list[list[Hit]]:
        """The k nearest items to each query row. exclude: per row, an item id standing for the query itself.

        Hit.score stays the cosine similarity in the index's space; with re-ranking the order is the
        re-ranked one, so scores need not decrease down the list."""
        q = l2_normalize(np.atleast_2d(q))
        if q.shape[1] != self.manifest["dim"]:
            raise ReslabError(f"query vectors have {q.shape[1]} dimensions but the index {self.store.describe()} holds {self.manifest['dim']}")
        k = max(1, min(int(k), MAX_K))
        exclude = list(exclude) if exclude is not None else [None] * len(q)
        graph = self.post.graph(self.store.files_dir()) if self.post.rerank_graph is not None else None
        if self.post.active:
            q = self.post.transform(q)
            plain = q  # before QE: where a copy of the query is told apart (rerank.is_copy)
            if self.post.options.qe > 0:
                q = self._expand(q, exclude)
        want = k if graph is None else max(k, graph.shortlist)
        # no count here: on a server it is a round trip per query; slots without an item come back as id -1
        scores, ids = self.store.search(q, min(want + any(e is not None for e in exclude), MAX_K))
        ranked = []
        for row, (srow, irow, own) in enumerate(zip(scores, ids, exclude)):
            keep = (irow >= 0) & (irow != (-1 if own is None else own))
            srow, irow = srow[keep], irow[keep]
            if graph is not None:
                srow, irow = self._reranked(graph, srow, irow, own, plain[row])
            ranked.append((srow[:k], irow[:k]))
        items = self.store.items_by_ids(int(i) for i in np.unique(np.concatenate([r[1] for r in ranked])))
        # an id missing from the items belongs to a file removed by an unfinished update: skip it
        return [[Hit(int(i), float(s), items[i].path, items[i].label) for s, i in zip(srow, irow) if i in items] for srow, irow in ranked]

    def _reranked(self, graph, scores: np.ndarray, ids: np.ndarray, own: int | None, plain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One query's results re-ranked (reslab.search.rerank); ids the graph lacks (an unfinished update) follow.
        plain: the query in the index's space before QE."""
        from .rerank import is_copy, nearest_other, rerank_order

        rows = graph.rows_of(ids)
        known = rows >= 0
        if not known.any():
            return scores, ids
        o = self.post.options
        exclude = int(graph.rows_of([own])[0]) if own is not None else -1
        first = int(rows[known][0])
        pair = self.post.transform(self.store.vectors([int(graph.ids[first]), int(graph.ids[nearest_other(graph, first, exclude)])]))
        keep_first = not o.rerank_first or is_copy(float(plain @ pair[0]), float(pair[0] @ pair[1]))
        order = rerank_order(graph, rows[known], scores[known], o.rerank_k2, o.rerank_lambda, own=exclude, keep_first=keep_first)
        return (np.concatenate([scores[known][order], scores[~known]]), np.concatenate([ids[known][order], ids[~known]]))

    def _expand(self, q: np.ndarray, exclude: list[int | None]) -> np.ndarray:
        """alpha-QE: each query plus its `qe` best results (their rows in the index's space), weighted by
        similarity^alpha, renormalised; never with the item that stands for the query."""
        o = self.post.options
        scores, ids = self.store.search(q, o.qe + any(e is not None for e in exclude))
        out = q.copy()
        for row, (srow, irow, own) in enumerate(zip(scores, ids, exclude)):
            keep = np.flatnonzero((irow >= 0) & (irow != (-1 if own is None else own)))[: o.qe]
            if len(keep):
                w = np.clip(srow[keep], 0, None) ** o.alpha
                out[row] += w @ self.post.transform(self.store.vectors([int(i) for i in irow[keep]]))
        return l2_normalize(out)

    def range_search(self, q: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(lims, scores, ids) of everything at or above `threshold`, FAISS-style; None where the structure has no range search (HNSW)."""
        return self.store.range_search(q, threshold)

    def raw_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.store.search(q, k)

    # -- items ---------------------------------------------------------------------------------
    def item(self, item_id: int) -> Item:
        item = self.store.item(item_id)
        if item is None:
            raise ReslabError(f"no item with id {item_id} in the index {self.store.describe()}; ids run from the `reslab search` output")
        return item

    def item_by_path(self, path: str | Path) -> Item | None:
        try:
            resolved = Path(path).expanduser().resolve()
        except (OSError, RuntimeError):  # a symbolic link loop (RuntimeError before Python 3.13): nothing indexed is there
            return None
        return self.store.item_by_path(str(resolved))

    def items(self) -> Iterator[Item]:
        return self.store.items()

    def vector(self, item_id: int) -> np.ndarray:
        return self.store.vector(item_id)

    def classify(self, image, top_k: int = 5) -> list[tuple[str, float]] | None:
        """The network's own top-k classes for an image; None for classical methods or headless models."""
        emb = self.embedder()
        if not hasattr(emb, "classify"):
            return None
        if not isinstance(image, Image.Image):
            from ..imageio import load_image

            image = load_image(image)
        return emb.classify(image, top_k)

    def resolve_query(self, query: str) -> tuple[int | None, Path | None]:
        """A CLI query: `id:N`, an indexed path (-> its id), or an image file (-> its path)."""
        if query.startswith("id:"):
            try:
                return int(query[3:]), None
            except ValueError:
                raise ReslabError(f"'{query}' is not an item id; write it as id:N, e.g. id:12") from None
        item = self.item_by_path(query)
        if item is not None:
            return item.id, None
        path = Path(query).expanduser()
        if not os.path.lexists(path):  # a link that leads nowhere is the decoder's to name (loop, dangling)
            raise ReslabError(f"the query {query} is neither an image file nor an indexed item; give an image path or id:N")
        return None, path
