"""Where an index lives: the store interface, and how an index name plus `--store` find its store.

    local   (default) a folder: manifest.json, items.sqlite, vectors/*.npy, faiss.index
    milvus  a Milvus collection named after the index, with its manifest beside it:
              --store milvus:///data/photos.db        Milvus Lite, a file on this machine
              --store milvus://host:19530             a Milvus server or cluster (http(s)://... too)

The store is chosen once, when `embed` creates the index, and recorded: a Milvus index also gets
a small local folder whose manifest.json points at the collection, so later commands find it by
the same name without `--store`. On a machine without that folder, `--store URI` with the same
index name reaches the same collection.

Every command and the Python API work through `IndexStore`; `LocalStore` and `MilvusStore` give
the same guarantees (incremental, resumable, bad files recorded, same ids for the same items).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import ReslabError
from .store import Item, NewItem

MANIFEST = "manifest.json"
STORE_KINDS = ("local", "milvus")


class IndexMissing(ReslabError):
    """There is no index of that name in that store (yet)."""


class IndexStore(ABC):
    """Items (path, stat, hash, label, size), their vectors, the manifest and the search structure."""

    kind: str  # "local" | "milvus"

    # -- identity ------------------------------------------------------------------------------
    @abstractmethod
    def describe(self) -> str:
        """Where this index is, for messages: "photos.index" or "collection photos in milvus:///..."."""

    @abstractmethod
    def address(self) -> dict:
        """What a pointer manifest records to reach this store again ({} for a local folder)."""

    # -- manifest and the embedder's files -----------------------------------------------------
    @abstractmethod
    def read_manifest(self) -> dict | None: ...

    @abstractmethod
    def write_manifest(self, manifest: dict) -> None:
        """Record the manifest; the first write creates the index's storage (it knows the dimension)."""

    @abstractmethod
    def files_dir(self) -> Path:
        """A local folder with the embedder's files (a bag of words' vocabulary), for `embedder_from_manifest`."""

    @abstractmethod
    def save_files(self, folder: Path, names: Iterable[str]) -> None:
        """Keep these files of `folder` with the index (the embedder wrote them there)."""

    # -- reads ---------------------------------------------------------------------------------
    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def lookup_many(self, paths: list[str]) -> dict[str, tuple[int, int, float, str]]:
        """{path: (id, size, mtime, sha256)} for the indexed ones among `paths`."""

    @abstractmethod
    def bad_entries(self, paths: list[str]) -> dict[str, tuple[int, float, str]]:
        """{path: (size, mtime, reason)} for the recorded bad files among `paths`."""

    @abstractmethod
    def bad_records(self) -> list[tuple[str, int, float, str]]:
        """Every recorded bad file: (path, size, mtime, reason), by path."""

    def bad_files(self) -> list[tuple[str, str]]:
        return [(path, reason) for path, _, _, reason in self.bad_records()]

    @abstractmethod
    def items_by_ids(self, ids: Iterable[int]) -> dict[int, Item]: ...

    @abstractmethod
    def item_by_path(self, path: str) -> Item | None: ...

    @abstractmethod
    def iter_items(self, block: int = 4096) -> Iterator[tuple[list[Item], np.ndarray]]:
        """(items, vectors) blocks of every item in id order; memory is one block."""

    @abstractmethod
    def vectors(self, ids: list[int]) -> np.ndarray:
        """The vectors of these items, in the order given (a clear error for an unknown id)."""

    def lookup(self, path: str) -> tuple[int, int, float, str] | None:
        return self.lookup_many([path]).get(path)

    def item(self, item_id: int) -> Item | None:
        return self.items_by_ids([item_id]).get(int(item_id))

    def items(self) -> Iterator[Item]:
        for items, _ in self.iter_items():
            yield from items

    def vector(self, item_id: int) -> np.ndarray:
        return self.vectors([int(item_id)])[0]

    def iter_vectors(self, block: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) blocks of every item in id order."""
        for items, vectors in self.iter_items(block):
            yield np.fromiter((it.id for it in items), dtype=np.int64, count=len(items)), vectors

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        blocks = list(self.iter_vectors())
        if not blocks:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])

    # -- writes --------------------------------------------------------------------------------
    @abstractmethod
    def commit(self, new: list[NewItem], bad: list[tuple[str, int, float, str]] = (), touched: list[tuple[str, int, float]] = ()) -> None:
        """Commit one chunk of an `embed` run; a kill at any moment loses at most this chunk.

        new: items to insert, or to update in place (same path: the id is kept).
        bad: (path, size, mtime, reason) of files that failed to decode.
        touched: (path, size, mtime) of files whose bytes are unchanged (only the stat changed).
        """

    @abstractmethod
    def import_items(self, items: list[Item], vectors: np.ndarray) -> None:
        """Write items with their ids as they are (copying an index between stores)."""

    @abstractmethod
    def record_bad(self, bad: list[tuple[str, int, float, str]]) -> None:
        """Record bad files (path, size, mtime, reason) without touching items (copying an index)."""

    @abstractmethod
    def start_walk(self) -> None:
        """Begin recording the paths a walk sees (bounded memory), to drop the others at its end."""

    @abstractmethod
    def mark_seen(self, paths: list[str]) -> None: ...

    @abstractmethod
    def delete_unseen(self, owns: Callable[[str], bool] | None = None) -> int:
        """After a complete walk: drop the items and bad records of files it did not see.

        owns(path): whether this writer's walk covers that path (one rank's share of a sharded run
        into a shared store); None: all of them. Returns the number of items dropped.
        """

    def compact(self) -> None:
        """Reclaim the space of replaced and deleted vectors when it dominates (if the store needs it)."""

    # -- search --------------------------------------------------------------------------------
    @abstractmethod
    def build_search(self, kind: str, nprobe: int, ef_search: int, transform=None) -> str:
        """Make the search structure match the committed vectors; returns the kind built (flat/ivf/hnsw).

        transform: vectors (N, dim) -> the rows to search (whitening, DBA); only the local store takes one."""

    @abstractmethod
    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n, k), best first; id -1 and score -inf where fewer than k exist."""

    def range_search(self, q: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(lims, scores, ids) of every item with score >= threshold, FAISS-style; None if the structure has none."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- choosing a store ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MilvusAddress:
    """Where a Milvus deployment is: a Milvus Lite file, or a server (`uri` as pymilvus takes it)."""

    uri: str  # an absolute path ending in .db (Milvus Lite) or http(s)://host:port[/db]
    token: str = ""  # user:password or an API key; never recorded

    @property
    def is_lite(self) -> bool:
        return self.uri.endswith(".db") and "://" not in self.uri

    def public_uri(self) -> str:
        """The URI to record and print (no credentials)."""
        return f"milvus://{self.uri}" if self.is_lite else self.uri


def parse_store(store: str | None) -> MilvusAddress | None:
    """None for the local store; a `MilvusAddress` for milvus:///path.db, milvus://host:port or http(s)://..."""
    import os
    from urllib.parse import urlsplit, urlunsplit

    if store is None or store.strip() in ("", "local"):
        return None
    s = store.strip()
    hint = "write milvus:///path/photos.db (Milvus Lite), milvus://host:19530 or http(s)://host:19530 (a server), or local"
    if s.startswith("milvus://"):
        rest = s[len("milvus://") :]
        if rest.startswith(("/", ".", "~")):  # milvus:///abs/photos.db, milvus://./photos.db
            return _lite_address(rest, store, hint)
        s = "http://" + rest
    elif "://" not in s:
        if s.endswith(".db"):
            return _lite_address(s, store, hint)
        raise ReslabError(f"--store '{store}' is not a store; {hint}")
    parts = urlsplit(s)
    if parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
        raise ReslabError(f"--store '{store}' is not a Milvus address; {hint}")
    token = ""
    if parts.username:
        token = parts.username + (f":{parts.password}" if parts.password else "")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else ":19530")
    uri = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return MilvusAddress(uri, token or os.environ.get("MILVUS_TOKEN", ""))


def _lite_address(path: str, store: str, hint: str) -> MilvusAddress:
    p = Path(path).expanduser()
    if p.suffix != ".db":
        raise ReslabError(f"--store '{store}': a Milvus Lite file name ends in .db (e.g. milvus:///data/photos.db); {hint}")
    return MilvusAddress(str(p.resolve()))


def collection_name(index: str | Path) -> str:
    """The Milvus collection for an index name: photos.index -> photos (letters, digits and _ only)."""
    name = Path(str(index)).name
    stem = name[: -len(".index")] if name.endswith(".index") and len(name) > len(".index") else name
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not cleaned or cleaned[0].isdigit():
        cleaned = "_" + cleaned
    return cleaned[:200]


def read_pointer(path: Path) -> dict | None:
    """The pointer manifest of a Milvus index's local folder, or None for anything else."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # the local store reports a corrupt manifest itself
    return data if isinstance(data, dict) and data.get("store") == "milvus" else None


def open_store(index: str | Path, store: str | None = None, create: bool = False) -> IndexStore:
    """The store of the index named `index`.

    store: None to use what the index folder records (local unless it points at Milvus), or a URI
    (`--store`), which must agree with what an existing folder records.
    create: make the index if it does not exist (`embed`); otherwise a missing index is an error.
    """
    path = Path(index)
    pointer = read_pointer(path)
    address = parse_store(store)
    if address is None and store is not None and pointer is not None:
        raise ReslabError(f"{path} is an index in {pointer.get('uri')}, not a local one; drop --store local or use another name")
    if address is None and pointer is None:
        from .local_store import LocalStore

        return LocalStore(path, create=create)
    from .milvus_store import MilvusStore

    if address is None:
        address = parse_store(pointer.get("uri"))
        collection = pointer.get("collection") or collection_name(path)
        return MilvusStore(address, collection, create=create, pointer_dir=path)
    if pointer is not None and (pointer.get("uri"), pointer.get("collection")) != (address.public_uri(), collection_name(path)):
        raise ReslabError(
            f"{path} points at collection {pointer.get('collection')} in {pointer.get('uri')}, not at {address.public_uri()}; "
            "drop --store (the folder knows where its index is) or use another index name"
        )
    if pointer is None and (path / "items.sqlite").exists():
        if create:
            raise ReslabError(f"{path} is a local index; copy it with `reslab index copy {path} NAME --store {address.public_uri()}` or use another name")
        try:  # the same name may also be a collection in that Milvus (another machine's index)
            return MilvusStore(address, collection_name(path), pointer_dir=None)
        except IndexMissing:
            raise IndexMissing(f"{path} is a local index, and {address.public_uri()} has no index {collection_name(path)}; "
                               "drop --store to use the local one") from None
    return MilvusStore(address, collection_name(path), create=create, pointer_dir=path if create or path.is_dir() else None)
