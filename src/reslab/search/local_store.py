"""The local store: an index folder with SQLite items, float32 vector shards and a FAISS file.

    photos.index/manifest.json   the embedder and index settings
    photos.index/items.sqlite    items, bad files, the list of vector shards (see `store.VectorStore`)
    photos.index/vectors/*.npy   float32 blocks, one per committed chunk
    photos.index/faiss.index     the search structure, rebuilt from the vectors at the end of each run

The embedded default: no server, one folder to copy, good to tens of millions of vectors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import ReslabError
from ..fileio import atomic_open, atomic_write_bytes, atomic_write_text
from . import faiss_index
from .store import ITEM_COLUMNS, Item, VectorStore, _item, _storable_id, from_db, to_db
from .stores import MANIFEST, IndexMissing, IndexStore

FAISS_FILE = "faiss.index"


class LocalStore(VectorStore, IndexStore):
    kind = "local"

    def __init__(self, index_dir: str | Path, create: bool = False):
        index_dir = Path(index_dir)
        if not create:
            if not index_dir.is_dir():
                raise IndexMissing(f"no index at {index_dir}; build one with `reslab embed SRC --out {index_dir}`")
            if not (index_dir / MANIFEST).exists():
                raise IndexMissing(f"{index_dir} is not a reslab index (no manifest.json); build one with `reslab embed SRC --out {index_dir}`")
        else:
            if index_dir.exists() and not index_dir.is_dir():
                raise ReslabError(f"{index_dir} is a file, not a folder; give --out a folder for the index (new or an index to update)")
            index_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(index_dir, create=create)
        self._faiss = None

    def describe(self) -> str:
        return str(self.dir)

    def address(self) -> dict:
        return {}

    # -- manifest and files --------------------------------------------------------------------
    def read_manifest(self) -> dict | None:
        path = self.dir / MANIFEST
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ReslabError(f"the index manifest {path} is unreadable ({e}); rebuild the index with `reslab embed`") from None

    def write_manifest(self, manifest: dict) -> None:
        atomic_write_text(self.dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def files_dir(self) -> Path:
        return self.dir

    def save_files(self, folder: Path, names: Iterable[str]) -> None:
        for name in names:
            if Path(folder) / name != self.dir / name:
                atomic_write_bytes(self.dir / name, (Path(folder) / name).read_bytes())

    # -- reads ---------------------------------------------------------------------------------
    def lookup_many(self, paths: list[str]) -> dict[str, tuple[int, int, float, str]]:
        rows = self._select_in("SELECT path, id, size, mtime, sha256 FROM items WHERE path IN ({})", [to_db(p) for p in paths])
        return {from_db(r[0]): tuple(r[1:]) for r in rows}

    def bad_entries(self, paths: list[str]) -> dict[str, tuple[int, float, str]]:
        rows = self._select_in("SELECT path, size, mtime, reason FROM bad WHERE path IN ({})", [to_db(p) for p in paths])
        return {from_db(r[0]): (r[1], r[2], from_db(r[3])) for r in rows}

    def bad_records(self) -> list[tuple[str, int, float, str]]:
        rows = self.db.execute("SELECT path, size, mtime, reason FROM bad ORDER BY path")
        return [(from_db(p), size, mtime, from_db(reason)) for p, size, mtime, reason in rows]

    def _select_in(self, sql: str, values: list) -> Iterator[tuple]:
        for start in range(0, len(values), 500):  # SQLite caps the number of bound parameters
            part = values[start : start + 500]
            yield from self.db.execute(sql.format(",".join("?" * len(part))), part)

    def iter_items(self, block: int = 4096) -> Iterator[tuple[list[Item], np.ndarray]]:
        cursor = self.db.execute(f"SELECT {ITEM_COLUMNS}, shard, row FROM items ORDER BY id")
        while True:
            rows = cursor.fetchmany(block)
            if not rows:
                return
            vectors = np.stack([self._shard(r[-2])[r[-1]] for r in rows]).astype(np.float32, copy=False)
            yield [_item(r[:-2]) for r in rows], vectors
            self._shard_cache.clear()

    def vectors(self, ids: list[int]) -> np.ndarray:
        storable = [i for i in map(_storable_id, ids) if i is not None]
        where = {r[0]: (r[1], r[2]) for r in self._select_in("SELECT id, shard, row FROM items WHERE id IN ({})", storable)}
        missing = [i for i in ids if int(i) not in where]
        if missing:
            raise ReslabError(f"no item with id {missing[0]} in the index {self.dir}")
        return np.stack([self._shard(where[int(i)][0])[where[int(i)][1]] for i in ids]).astype(np.float32)

    # -- writes --------------------------------------------------------------------------------
    def import_items(self, items: list[Item], vectors: np.ndarray) -> None:
        if not items:
            return
        shard_id = (self.db.execute("SELECT COALESCE(MAX(id), 0) FROM shards").fetchone()[0]) + 1
        file = f"{shard_id:06d}.npy"
        with atomic_open(self.dir / "vectors" / file) as f:
            np.save(f, np.asarray(vectors, dtype=np.float32))
        with self.db:
            self.db.execute("INSERT INTO shards (id, file, rows) VALUES (?, ?, ?)", (shard_id, file, len(items)))
            self.db.executemany(
                "INSERT OR REPLACE INTO items (id, path, size, mtime, sha256, label, width, height, shard, row) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(it.id, to_db(it.path), it.size, it.mtime, it.sha256, to_db(it.label), it.width, it.height, shard_id, r) for r, it in enumerate(items)],
            )

    def record_bad(self, bad: list[tuple[str, int, float, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO bad (path, size, mtime, reason) VALUES (?,?,?,?)",
                                [(to_db(p), size, mtime, to_db(reason)) for p, size, mtime, reason in bad])

    def delete_unseen(self, owns: Callable[[str], bool] | None = None) -> int:
        # a local index holds one writer's files only (a sharded run gives each rank its own folder)
        return super().delete_unseen()

    # -- search --------------------------------------------------------------------------------
    def build_search(self, kind: str, nprobe: int, ef_search: int, transform=None) -> str:
        ids, vectors = self.all_vectors()
        manifest = self.read_manifest() or {}
        dim = int(manifest["dim"])
        vectors = vectors.reshape(-1, dim)
        if transform is not None and len(vectors):
            vectors = transform(vectors)  # whitened / augmented rows (reslab.search.postprocess)
            dim = vectors.shape[1]
        kind = faiss_index.resolve_kind(kind, len(ids))
        params = faiss_index.FaissParams(kind=kind, nprobe=nprobe, ef_search=ef_search)
        index = faiss_index.build_faiss(ids, vectors, params, dim, manifest.get("metric", "inner_product"))
        atomic_write_bytes(self.dir / FAISS_FILE, faiss_index.serialize(index))
        self._faiss = None
        return kind

    def _search_structure(self):
        if self._faiss is None:
            path = self.dir / FAISS_FILE
            if not path.exists():
                raise ReslabError(f"the index {self.dir} is incomplete (its first `reslab embed` run did not finish); rerun it to resume")
            try:
                manifest = self.read_manifest() or {}
                obj = faiss_index.deserialize(path.read_bytes(), manifest.get("metric", "inner_product"))
            except Exception as e:  # FAISS raises RuntimeError with a C++ message
                raise ReslabError(f"the FAISS index {path} is corrupt ({str(e).splitlines()[0]}); rerun `reslab embed` to rebuild it") from None
            faiss_index.set_search_params(obj, faiss_index.FaissParams(nprobe=manifest.get("nprobe", 16), ef_search=manifest.get("ef_search", 64)))
            self._faiss = obj
        return self._faiss

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return faiss_index.search(self._search_structure(), q, int(k))

    def range_search(self, q: np.ndarray, threshold: float):
        index = self._search_structure()
        if _is_hnsw(index):
            return None  # HNSW has no range search
        return faiss_index.range_search(index, q, threshold)


def _is_hnsw(index) -> bool:
    import faiss

    if faiss_index.is_binary(index):
        return isinstance(faiss.downcast_IndexBinary(index.index), faiss.IndexBinaryHNSW)
    return isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW)
