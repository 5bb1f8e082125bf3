"""The Milvus store: an index as a Milvus collection, on Milvus Lite or a server or cluster.

Two collections per index NAME (the client talks to a Milvus Lite file and to a cluster with the
same calls; only the connection differs):

    NAME           one row per image: id (primary key, int64), path, path_key (a 64-bit hash of
                   the name's bytes, for lookups without string escaping), size, mtime, sha256,
                   label, width, height, vector (FLOAT_VECTOR, inner product on L2-normalised rows)
    NAME__reslab   the index's own records, by key: "manifest" (the embedder and settings, JSON),
                   "bad/<key>" (files that failed to decode), "ids/<writer>" (id reservations),
                   "file/<name>/<n>" (the embedder's files, e.g. a vocabulary, in base64 chunks)

Guarantees, as the local store: a chunk is committed in steps that each remove the old state
before writing the new one, so a kill between two steps leaves a file neither indexed nor recorded
bad, and the next run simply looks at it again (no duplicate, nothing lost). Ids are reserved
before rows are written, so an id is never used twice, and they follow the walk order, so a single
writer gives the same ids as the local store. Several writers (torchrun ranks) interleave their ids
from one base agreed before they start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import ReslabError
from ..fileio import atomic_write_bytes, atomic_write_text
from . import faiss_index
from .milvus_connect import connect, first_line, release
from .names import from_text, name_key, to_text
from .store import Item, NewItem
from .stores import MANIFEST, IndexMissing, IndexStore, MilvusAddress

log = logging.getLogger(__name__)

META_SUFFIX = "__reslab"
ITEM_FIELDS = ["id", "path", "size", "mtime", "sha256", "label", "width", "height"]
BLOB_CHUNK = 48_000  # bytes per base64 chunk: 64,000 characters, under VARCHAR's 65,535
ROWS_PER_CALL = 2048  # rows per insert/get: well under gRPC's message limit at 2048-d
INT64 = range(-(2**63), 2**63)  # Milvus primary keys
RANGE_LIMIT = 1024  # most neighbours a range search returns per query (Milvus caps range search by a limit)


class MilvusStore(IndexStore):
    kind = "milvus"

    def __init__(self, address: MilvusAddress, collection: str, create: bool = False, pointer_dir: Path | None = None):
        self.milvus, self.collection, self.meta = address, collection, collection + META_SUFFIX
        self.pointer_dir = Path(pointer_dir) if pointer_dir is not None else None
        self.client = connect(address, create)
        self._seen_dir: str | None = None
        self._seen: sqlite3.Connection | None = None
        self._files: Path | None = None
        self._writer = (0, 1, None)  # (rank, world_size, next id) of this writer; ids reserved lazily
        self._items_exist = False
        self._params: dict | None = None  # search parameters from the manifest, read once
        try:
            if not self._call(self.client.has_collection, self.meta):
                if not create:
                    raise IndexMissing(
                        f"there is no index {collection} in {address.public_uri()}; build one with "
                        f"`reslab embed SRC --out {collection} --store {address.public_uri()}`"
                    )
                if self._has_items():  # never write into someone else's collection
                    raise ReslabError(
                        f"Milvus at {address.public_uri()} already has a collection {collection} that is not a reslab index; "
                        "give the index another name"
                    )
                self._create_meta()
            self._load(self.meta)
            if self._has_items():
                self._load(self.collection)
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        return f"{self.collection} in {self.milvus.public_uri()}"

    def address(self) -> dict:
        return {"store": "milvus", "uri": self.milvus.public_uri(), "collection": self.collection}

    def _call(self, fn, *args, **kwargs):
        """A pymilvus call; its failures become one clear error naming the index."""
        try:
            return fn(*args, **kwargs)
        except ReslabError:
            raise
        except Exception as e:
            if type(e).__module__.startswith("pymilvus") or "grpc" in type(e).__module__:
                raise ReslabError(f"Milvus failed on the index {self.describe()}: {first_line(e)}") from None
            raise

    # -- schema ----------------------------------------------------------------------------------
    def _create_meta(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="reslab index records")
        schema.add_field("key", DataType.VARCHAR, max_length=1024, is_primary=True)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("value", DataType.VARCHAR, max_length=65535)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
        index = self.client.prepare_index_params()
        index.add_index("unused", index_type="FLAT", metric_type="L2", index_name="unused")
        self._call(self.client.create_collection, self.meta, schema=schema, index_params=index, consistency_level="Strong")
        self._load(self.meta)

    def _create_items(self, manifest: dict) -> None:
        from pymilvus import DataType, MilvusClient

        from ..embeddings import describe

        # the schema records the embedder too, for whoever looks at the collection with Milvus's own tools
        description = f"reslab index: {describe(manifest)}, {manifest['dim']}-d, inner product of L2-normalised rows"
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description[:1000])
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("path", DataType.VARCHAR, max_length=65535)
        schema.add_field("path_key", DataType.INT64)
        schema.add_field("size", DataType.INT64)
        schema.add_field("mtime", DataType.DOUBLE)
        schema.add_field("sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("label", DataType.VARCHAR, max_length=2048)
        schema.add_field("width", DataType.INT64)
        schema.add_field("height", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(manifest["dim"]), description=description[:1000])
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="IP", index_name="vector")
        index.add_index("path_key", index_type="INVERTED", index_name="path_key")
        self._call(self.client.create_collection, self.collection, schema=schema, index_params=index, consistency_level="Strong")
        self._load(self.collection)

    def _load(self, collection: str) -> None:
        """Collections start released after a restart (Milvus and Milvus Lite): load before reading."""
        state = self._call(self.client.get_load_state, collection)
        if "Loaded" not in str(state.get("state")):
            self._call(self.client.load_collection, collection)

    def _has_items(self) -> bool:
        # cached once true: it is asked on every query, and a collection does not vanish under an open index
        if not self._items_exist:
            self._items_exist = bool(self._call(self.client.has_collection, self.collection))
        return self._items_exist

    # -- records (manifest, bad files, id reservations, files) -------------------------------------
    def _put(self, rows: list[dict]) -> None:
        for start in range(0, len(rows), ROWS_PER_CALL):
            part = [{**r, "unused": [0.0, 0.0]} for r in rows[start : start + ROWS_PER_CALL]]
            self._call(self.client.upsert, self.meta, part)

    def _get(self, keys: list[str]) -> dict[str, str]:
        out = {}
        for start in range(0, len(keys), ROWS_PER_CALL):
            for row in self._call(self.client.get, self.meta, ids=keys[start : start + ROWS_PER_CALL], output_fields=["key", "value"]):
                out[row["key"]] = row["value"]
        return out

    def _query_meta(self, kind: str) -> Iterator[dict]:
        # kind is one of our fixed words, never user text: no escaping needed in the expression
        yield from self._iterate(self.meta, f'kind == "{kind}"', ["key", "value"])

    def _iterate(self, collection: str, expr: str, fields: list[str], batch: int = 4096) -> Iterator[dict]:
        iterator = self._call(self.client.query_iterator, collection, batch_size=batch, filter=expr, output_fields=fields)
        try:
            while True:
                rows = self._call(iterator.next)
                if not rows:
                    return
                yield from rows
        finally:
            iterator.close()

    def read_manifest(self) -> dict | None:
        text = self._get(["manifest"]).get("manifest")
        if text is None:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ReslabError(f"the manifest of the index {self.describe()} is unreadable ({e}); rebuild the index with `reslab embed`") from None

    def write_manifest(self, manifest: dict) -> None:
        if not self._has_items():
            self._create_items(manifest)
        self._put([{"key": "manifest", "kind": "manifest", "value": json.dumps(manifest, sort_keys=True)}])
        self._params = None
        if self.pointer_dir is not None:
            self.pointer_dir.mkdir(parents=True, exist_ok=True)
            pointer = {**self.address(), "format": 1, "note": "a reslab index kept in Milvus; this folder only says where"}
            atomic_write_text(self.pointer_dir / MANIFEST, json.dumps(pointer, indent=2, sort_keys=True) + "\n")

    def save_files(self, folder: Path, names: Iterable[str]) -> None:
        for name in names:
            data = (Path(folder) / name).read_bytes()
            chunks = [data[i : i + BLOB_CHUNK] for i in range(0, len(data), BLOB_CHUNK)] or [b""]
            rows = [{"key": f"file/{name}/{n:06d}", "kind": "file", "value": base64.b64encode(c).decode("ascii")} for n, c in enumerate(chunks)]
            header = {"chunks": len(chunks), "sha256": hashlib.sha256(data).hexdigest()}
            self._put(rows + [{"key": f"file/{name}", "kind": "file", "value": json.dumps(header)}])

    def files_dir(self) -> Path:
        """The embedder's files, fetched once into a cache folder (checked against their SHA-256)."""
        if self._files is None:
            root = Path(os.environ.get("RESLAB_CACHE") or Path.home() / ".cache" / "reslab")
            digest = hashlib.sha256(f"{self.milvus.public_uri()}#{self.collection}".encode()).hexdigest()[:16]
            folder = root / "milvus" / digest
            headers = {r["key"][len("file/") :]: json.loads(r["value"]) for r in self._query_meta("file") if r["key"].count("/") == 1}
            for name, header in headers.items():
                target = folder / name
                if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == header["sha256"]:
                    continue
                chunks = self._get([f"file/{name}/{n:06d}" for n in range(header["chunks"])])
                data = b"".join(base64.b64decode(chunks[f"file/{name}/{n:06d}"]) for n in range(header["chunks"]))
                if hashlib.sha256(data).hexdigest() != header["sha256"]:
                    raise ReslabError(f"the file {name} kept with the index {self.describe()} is damaged; rebuild the index with `reslab embed`")
                atomic_write_bytes(target, data)
            self._files = folder
        return self._files

    # -- reads -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        if not self._has_items():
            return 0
        rows = self._call(self.client.query, self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"]) if rows else 0

    def lookup_many(self, paths: list[str]) -> dict[str, tuple[int, int, float, str]]:
        return {it.path: (it.id, it.size, it.mtime, it.sha256) for it in self._items_with_paths(paths)}

    def _items_with_paths(self, paths: list[str]) -> Iterator[Item]:
        if not paths or not self._has_items():
            return
        wanted = set(paths)
        keys = sorted({name_key(p) for p in paths})
        for start in range(0, len(keys), ROWS_PER_CALL):
            expr = f"path_key in {keys[start : start + ROWS_PER_CALL]}"
            for row in self._call(self.client.query, self.collection, filter=expr, output_fields=ITEM_FIELDS, consistency_level="Strong"):
                item = _item(row)
                if item.path in wanted:  # a 64-bit hash can collide: the name decides
                    yield item

    def bad_entries(self, paths: list[str]) -> dict[str, tuple[int, float, str]]:
        records = self._get([_bad_key(p) for p in paths])
        out = {}
        for value in records.values():
            bad = json.loads(value)
            path = from_text(bad["path"])
            out[path] = (bad["size"], bad["mtime"], bad["reason"])
        return {p: out[p] for p in paths if p in out}

    def bad_records(self) -> list[tuple[str, int, float, str]]:
        rows = [json.loads(r["value"]) for r in self._query_meta("bad")]
        return sorted((from_text(b["path"]), b["size"], b["mtime"], b["reason"]) for b in rows)

    def items_by_ids(self, ids: Iterable[int]) -> dict[int, Item]:
        ids = [int(i) for i in ids if INT64.start <= int(i) < INT64.stop]  # a larger number names no item
        out = {}
        if not ids or not self._has_items():
            return out
        for start in range(0, len(ids), ROWS_PER_CALL):
            for row in self._call(self.client.get, self.collection, ids=ids[start : start + ROWS_PER_CALL], output_fields=ITEM_FIELDS):
                out[int(row["id"])] = _item(row)
        return out

    def item_by_path(self, path: str) -> Item | None:
        return next(iter(self._items_with_paths([path])), None)

    def iter_items(self, block: int = 4096) -> Iterator[tuple[list[Item], np.ndarray]]:
        if not self._has_items():
            return
        rows: list[dict] = []
        for row in self._iterate(self.collection, "", ITEM_FIELDS + ["vector"], batch=block):
            rows.append(row)
            if len(rows) == block:
                yield _block(rows)
                rows = []
        if rows:
            yield _block(rows)

    def items(self) -> Iterator[Item]:
        """Every item in id order, without vectors (browsing a page costs one small round trip)."""
        if not self._has_items():
            return
        rows: list[dict] = []
        for row in self._iterate(self.collection, "", ITEM_FIELDS, batch=512):
            rows.append(row)
            if len(rows) == 512:
                yield from _block(rows)[0]
                rows = []
        if rows:
            yield from _block(rows)[0]

    def vectors(self, ids: list[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        storable = [i for i in ids if INT64.start <= i < INT64.stop]
        found = {}
        for start in range(0, len(storable), ROWS_PER_CALL):
            for row in self._call(self.client.get, self.collection, ids=storable[start : start + ROWS_PER_CALL], output_fields=["vector"]):
                found[int(row["id"])] = row["vector"]
        missing = [i for i in ids if i not in found]
        if missing:
            raise ReslabError(f"no item with id {missing[0]} in the index {self.describe()}")
        return np.asarray([found[i] for i in ids], dtype=np.float32)

    # -- ids ---------------------------------------------------------------------------------------
    def id_base(self) -> int:
        """The highest id any writer has reserved (ids are reserved before rows are written)."""
        return max([0] + [int(r["value"]) for r in self._query_meta("ids")])

    def start_writer(self, rank: int = 0, world_size: int = 1, base: int | None = None) -> None:
        """This writer hands out ids base + rank + 1, then every world_size-th: ranks never collide.

        base: agreed by all ranks of a sharded run (rank 0 reads `id_base` before they start);
        None for a single writer, which continues after every id reserved so far.
        """
        base = self.id_base() if base is None else int(base)
        self._writer = (rank, world_size, base + rank + 1)

    def agree_id_base(self) -> None:
        """Rank 0 of a sharded run, before the others start: record the base every rank counts from."""
        self._put([{"key": "run/id-base", "kind": "run", "value": str(self.id_base())}])

    def agreed_id_base(self) -> int:
        return int(self._get(["run/id-base"])["run/id-base"])

    def _reserve(self, n: int) -> list[int]:
        rank, world, next_id = self._writer
        if next_id is None:
            self.start_writer(rank, world)
            rank, world, next_id = self._writer
        ids = [next_id + world * j for j in range(n)]
        # the reservation is durable before any row uses these ids, so a kill never reuses one
        self._put([{"key": f"ids/rank-{rank}", "kind": "ids", "value": str(ids[-1])}])
        self._writer = (rank, world, ids[-1] + world)
        return ids

    # -- writes ------------------------------------------------------------------------------------
    def commit(self, new: list[NewItem], bad: list[tuple[str, int, float, str]] = (), touched: list[tuple[str, int, float]] = ()) -> None:
        existing = self.lookup_many([n.path for n in new] + [b[0] for b in bad] + [t[0] for t in touched])
        if new:
            fresh = [n for n in new if n.path not in existing]
            ids = dict(zip((n.path for n in fresh), self._reserve(len(fresh)) if fresh else []))
            ids.update({p: existing[p][0] for p in (n.path for n in new) if p in existing})
            self._delete_meta([_bad_key(n.path) for n in new])  # no longer bad: the old record goes first
            rows = [_row(ids[n.path], n.path, n.size, n.mtime, n.sha256, n.label, n.width, n.height, n.vector) for n in new]
            self._upsert_items(rows)
        if bad:
            gone = [existing[b[0]][0] for b in bad if b[0] in existing]
            if gone:
                self._call(self.client.delete, self.collection, ids=gone)  # the item goes first, then the bad record
            self.record_bad(bad)
        if touched:
            stat = {p: (s, m) for p, s, m in touched}
            rows = self._call(self.client.get, self.collection, ids=[existing[p][0] for p in stat if p in existing], output_fields=ITEM_FIELDS + ["vector"])
            updated = []
            for row in rows:
                it = _item(row)
                updated.append(_row(it.id, it.path, *stat[it.path], it.sha256, it.label, it.width, it.height, row["vector"]))
            self._upsert_items(updated)

    def _upsert_items(self, rows: list[dict]) -> None:
        for start in range(0, len(rows), ROWS_PER_CALL):
            self._call(self.client.upsert, self.collection, rows[start : start + ROWS_PER_CALL])

    def _delete_meta(self, keys: list[str]) -> None:
        present = list(self._get(keys))
        if present:
            self._call(self.client.delete, self.meta, ids=present)

    def import_items(self, items: list[Item], vectors: np.ndarray) -> None:
        if not items:
            return
        top = max(it.id for it in items)
        self._put([{"key": "ids/import", "kind": "ids", "value": str(max(top, int(self._get(["ids/import"]).get("ids/import", 0))))}])
        rows = [_row(it.id, it.path, it.size, it.mtime, it.sha256, it.label, it.width, it.height, v) for it, v in zip(items, vectors)]
        self._upsert_items(rows)

    def record_bad(self, bad: list[tuple[str, int, float, str]]) -> None:
        self._put([
            {"key": _bad_key(p), "kind": "bad", "value": json.dumps({"path": to_text(p), "size": s, "mtime": m, "reason": r})}
            for p, s, m, r in bad
        ])  # fmt: skip

    def start_walk(self) -> None:
        # the walk's paths go to a temporary SQLite file: memory stays bounded for any collection size
        self._drop_seen()
        self._seen_dir = tempfile.mkdtemp(prefix="reslab-walk-")
        self._seen = sqlite3.connect(Path(self._seen_dir) / "seen.sqlite")
        self._seen.execute("CREATE TABLE seen (path TEXT PRIMARY KEY)")

    def mark_seen(self, paths: list[str]) -> None:
        with self._seen:
            self._seen.executemany("INSERT OR IGNORE INTO seen (path) VALUES (?)", [(to_text(p),) for p in paths])

    def _unseen(self, paths: list[str]) -> list[str]:
        texts = [to_text(p) for p in paths]
        seen = set()
        for start in range(0, len(texts), 500):
            part = texts[start : start + 500]
            seen.update(r[0] for r in self._seen.execute(f"SELECT path FROM seen WHERE path IN ({','.join('?' * len(part))})", part))
        return [p for p, t in zip(paths, texts) if t not in seen]

    def delete_unseen(self, owns: Callable[[str], bool] | None = None) -> int:
        owns = owns or (lambda path: True)
        doomed: list[int] = []
        if self._has_items():
            block: list[tuple[int, str]] = []
            for row in self._iterate(self.collection, "", ["id", "path"]):
                block.append((int(row["id"]), from_text(row["path"])))
                if len(block) == 4096:
                    doomed += self._doomed(block, owns)
                    block = []
            doomed += self._doomed(block, owns)
            for start in range(0, len(doomed), ROWS_PER_CALL):
                self._call(self.client.delete, self.collection, ids=doomed[start : start + ROWS_PER_CALL])
        bad = [(r["key"], from_text(json.loads(r["value"])["path"])) for r in self._query_meta("bad")]
        unseen = set(self._unseen([p for _, p in bad if owns(p)]))
        gone = [key for key, p in bad if p in unseen]
        if gone:
            self._call(self.client.delete, self.meta, ids=gone)
        self._drop_seen()
        return len(doomed)

    def _doomed(self, block: list[tuple[int, str]], owns) -> list[int]:
        mine = [(i, p) for i, p in block if owns(p)]
        unseen = set(self._unseen([p for _, p in mine]))
        return [i for i, p in mine if p in unseen]

    def _drop_seen(self) -> None:
        if self._seen is not None:
            self._seen.close()
            self._seen = None
        if self._seen_dir is not None:
            shutil.rmtree(self._seen_dir, ignore_errors=True)
            self._seen_dir = None

    # -- search ------------------------------------------------------------------------------------
    def build_search(self, kind: str, nprobe: int, ef_search: int, transform=None) -> str:
        """Milvus keeps its index up to date itself; here only the kind changes with the collection's size."""
        if not self._has_items():
            self._create_items(self.read_manifest())
        # seal what this run wrote: searches then use indexed segments instead of scanning the write buffer
        self._call(self.client.flush, self.collection)
        n = len(self)
        kind = faiss_index.resolve_kind(kind, n)
        wanted = self._index_params(kind, n)
        current = self._current_index()
        if current != (wanted["index_type"], wanted["params"]):
            self._call(self.client.release_collection, self.collection)
            self._call(self.client.drop_index, self.collection, "vector")
            index = self.client.prepare_index_params()
            index.add_index("vector", index_type=wanted["index_type"], metric_type="IP", params=wanted["params"], index_name="vector")
            self._call(self.client.create_index, self.collection, index)
            self._wait_for_index()
        self._call(self.client.load_collection, self.collection)
        return kind

    def _wait_for_index(self, poll_s: float = 2.0) -> None:
        """A server builds an index in the background: wait for it (Milvus Lite builds it at once)."""
        import time

        last_note = time.monotonic()
        while True:
            info = self._call(self.client.describe_index, self.collection, "vector") or {}
            total, done = int(info.get("total_rows") or 0), int(info.get("indexed_rows") or 0)
            if str(info.get("state", "Finished")) == "Finished" or (total and done >= total):
                return
            if str(info.get("state")) == "Failed":
                raise ReslabError(f"Milvus could not build the index of {self.describe()}: {info.get('index_state_fail_reason') or 'no reason given'}")
            if time.monotonic() - last_note > 30:
                log.info("Milvus is indexing %s: %d of %d rows", self.describe(), done, total)
                last_note = time.monotonic()
            time.sleep(poll_s)

    @staticmethod
    def _index_params(kind: str, n: int) -> dict:
        if kind == "ivf":
            return {"index_type": "IVF_FLAT", "params": {"nlist": faiss_index.ivf_nlist(max(n, 1))}}
        if kind == "hnsw":
            defaults = faiss_index.FaissParams()
            return {"index_type": "HNSW", "params": {"M": defaults.hnsw_m, "efConstruction": defaults.ef_construction}}
        return {"index_type": "FLAT", "params": {}}

    def _current_index(self) -> tuple[str, dict] | None:
        try:
            info = self.client.describe_index(self.collection, "vector")
        except Exception:
            return None
        if not info:
            return None
        params = info.get("params") or {k: v for k, v in info.items() if k in ("nlist", "M", "efConstruction")}
        if isinstance(params, str):
            params = json.loads(params)
        return info.get("index_type"), {k: int(v) for k, v in params.items() if k in ("nlist", "M", "efConstruction")}

    def _search_params(self) -> dict:
        if self._params is None:
            self._params = self._params_from(self.read_manifest() or {})
        return self._params

    @staticmethod
    def _params_from(manifest: dict) -> dict:
        kind = manifest.get("index_kind", "flat")
        if kind == "ivf":
            return {"metric_type": "IP", "params": {"nprobe": int(manifest.get("nprobe", 16))}}
        if kind == "hnsw":
            return {"metric_type": "IP", "params": {"ef": int(manifest.get("ef_search", 64))}}
        return {"metric_type": "IP", "params": {}}

    def search(self, q: np.ndarray, k: int, params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(q, dtype=np.float32)
        k = int(k)
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        if not self._has_items():
            return scores, ids
        params = params or self._search_params()
        if params["metric_type"] == "IP" and params["params"].get("ef") is not None:
            params = {**params, "params": {**params["params"], "ef": max(int(params["params"]["ef"]), k)}}  # HNSW needs ef >= k
        for start in range(0, len(q), 256):
            part = q[start : start + 256]
            hits = self._call(self.client.search, self.collection, data=list(part), limit=k, search_params=params, anns_field="vector")
            for row, found in enumerate(hits):
                for j, hit in enumerate(found[:k]):
                    ids[start + row, j] = int(hit["id"])
                    scores[start + row, j] = float(hit["distance"])
        return scores, ids

    def range_search(self, q: np.ndarray, threshold: float):
        """Neighbours with score >= threshold, at most RANGE_LIMIT per query (Milvus's range search takes a limit)."""
        base = self._search_params()
        params = {**base, "params": {**base["params"], "radius": float(threshold) - 1e-6, "range_filter": 1.0 + 1e-3}}
        scores, ids = self.search(q, RANGE_LIMIT, params)
        keep = (ids >= 0) & (scores >= threshold)
        lims = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64)
        return lims, scores[keep], ids[keep]

    def close(self) -> None:
        self._drop_seen()
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing must never hide the error that led here
                pass
            release(self.milvus)


def _bad_key(path: str) -> str:
    return f"bad/{name_key(path)}"


def _row(item_id, path, size, mtime, sha256, label, width, height, vector) -> dict:
    return {
        "id": int(item_id), "path": to_text(path), "path_key": name_key(path), "size": int(size), "mtime": float(mtime),
        "sha256": sha256, "label": to_text(label), "width": int(width), "height": int(height),
        "vector": np.asarray(vector, dtype=np.float32),
    }  # fmt: skip


def _item(row: dict) -> Item:
    return Item(int(row["id"]), from_text(row["path"]), int(row["size"]), float(row["mtime"]), row["sha256"],
                from_text(row["label"]), int(row["width"]), int(row["height"]))  # fmt: skip


def _block(rows: list[dict]) -> tuple[list[Item], np.ndarray | None]:
    rows.sort(key=lambda r: int(r["id"]))
    vectors = np.asarray([r["vector"] for r in rows], dtype=np.float32) if "vector" in rows[0] else None
    return [_item(r) for r in rows], vectors
