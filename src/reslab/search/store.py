"""The on-disk store of an index: an SQLite table of items and float32 vector shards.

Layout of an index directory:
    manifest.json       the embedder and index settings (written by `reslab.search.embed`)
    items.sqlite        items (id, path, size, mtime, sha256, label, width, height, shard, row),
                        bad files (path, size, mtime, reason), and the list of vector shards
    vectors/NNNNNN.npy  float32 (n, dim) blocks, one per committed chunk
    faiss.index         the search structure, rebuilt from the committed vectors at the end of a run

Crash safety: a shard file is written atomically *before* the SQLite transaction that refers to
it, so a kill at any moment leaves either a committed chunk or an orphan shard file that the next
open deletes. Nothing is ever half-committed.

File names are kept exactly: a path (or folder label) that is valid UTF-8 is stored as TEXT, one
that is not (a disk written by another system) as the file system's own bytes, a BLOB, so that
the file can be found and opened again. Display them with `reslab.console.printable`.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import ReslabError
from ..fileio import atomic_open

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    sha256 TEXT NOT NULL,
    label TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    row INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bad (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    rows INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_shard ON items(shard);
"""


@dataclass(frozen=True)
class Item:
    id: int
    path: str
    size: int
    mtime: float
    sha256: str
    label: str
    width: int
    height: int


@dataclass(frozen=True)
class NewItem:
    """An item to commit with its vector (`id` None for a new path, else the id it replaces)."""

    path: str
    size: int
    mtime: float
    sha256: str
    label: str
    width: int
    height: int
    vector: np.ndarray


ITEM_COLUMNS = "id, path, size, mtime, sha256, label, width, height"
SQLITE_INT_RANGE = range(-(2**63), 2**63)  # what an SQLite INTEGER holds; a larger id can name no item


def to_db(name: str) -> str | bytes:
    """A path or label as SQLite keeps it: text when it is valid UTF-8, else its bytes on disk."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:  # undecodable bytes, held by Python as surrogate escapes
        return os.fsencode(name)


def from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _item(row) -> Item:
    item_id, path, size, mtime, sha256, label, width, height = row
    return Item(item_id, from_db(path), size, mtime, sha256, from_db(label), width, height)


def _storable_id(item_id) -> int | None:
    """`item_id` as an int SQLite can bind, or None when it is out of range (so it names no item)."""
    item_id = int(item_id)
    return item_id if item_id in SQLITE_INT_RANGE else None


class VectorStore:
    """Items and their vectors; every mutation is one SQLite transaction."""

    def __init__(self, index_dir: str | Path, create: bool = False):
        self.dir = Path(index_dir)
        db = self.dir / "items.sqlite"
        if not create and not db.exists():
            raise ReslabError(f"{self.dir} is not a reslab index (no items.sqlite); build one with `reslab embed SRC --out {self.dir}`")
        (self.dir / "vectors").mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(db, timeout=60)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ReslabError(f"the index database {db} is corrupt ({e}); rebuild the index with `reslab embed`") from None
        self._shard_cache: dict[int, np.ndarray] = {}
        if create:
            self.remove_orphan_shards()

    def close(self) -> None:
        self.db.close()

    # -- reads ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def lookup(self, path: str) -> tuple[int, int, float, str] | None:
        """(id, size, mtime, sha256) of an indexed path, or None."""
        return self.db.execute("SELECT id, size, mtime, sha256 FROM items WHERE path = ?", (to_db(path),)).fetchone()

    def bad_entry(self, path: str) -> tuple[int, float, str] | None:
        return self.db.execute("SELECT size, mtime, reason FROM bad WHERE path = ?", (to_db(path),)).fetchone()

    def bad_files(self) -> list[tuple[str, str]]:
        return [(from_db(p), from_db(r)) for p, r in self.db.execute("SELECT path, reason FROM bad ORDER BY path")]

    def item(self, item_id: int) -> Item | None:
        item_id = _storable_id(item_id)
        if item_id is None:
            return None
        row = self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row else None

    def item_by_path(self, path: str) -> Item | None:
        row = self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE path = ?", (to_db(path),)).fetchone()
        return _item(row) if row else None

    def items_by_ids(self, ids: Iterable[int]) -> dict[int, Item]:
        ids = [i for i in map(_storable_id, ids) if i is not None]
        out = {}
        for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN ({marks})", part):
                out[row[0]] = _item(row)
        return out

    def items(self) -> Iterator[Item]:
        for row in self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id"):
            yield _item(row)

    def vector(self, item_id: int) -> np.ndarray:
        storable = _storable_id(item_id)
        row = None if storable is None else self.db.execute("SELECT shard, row FROM items WHERE id = ?", (storable,)).fetchone()
        if row is None:
            raise ReslabError(f"no item with id {item_id} in the index {self.dir}")
        return self._shard(row[0])[row[1]].copy()

    def iter_vectors(self, block: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) blocks of every live item in id order; memory is one block plus one shard."""
        cursor = self.db.execute("SELECT id, shard, row FROM items ORDER BY id")
        while True:
            rows = cursor.fetchmany(block)
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.stack([self._shard(r[1])[r[2]] for r in rows]).astype(np.float32, copy=False)
            yield ids, vectors
            self._shard_cache.clear()

    def all_ids(self) -> np.ndarray:
        """Every live item's id, in the order of `iter_vectors`."""
        return np.fromiter((r[0] for r in self.db.execute("SELECT id FROM items ORDER BY id")), dtype=np.int64)

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        blocks = list(self.iter_vectors())
        if not blocks:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])

    def _shard(self, shard_id: int) -> np.ndarray:
        if shard_id not in self._shard_cache:
            if len(self._shard_cache) > 8:
                self._shard_cache.clear()
            file = self.db.execute("SELECT file FROM shards WHERE id = ?", (shard_id,)).fetchone()[0]
            path = self.dir / "vectors" / file
            try:
                self._shard_cache[shard_id] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:  # removed, truncated or overwritten since it was committed
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                raise ReslabError(f"the index's vector file {path} is missing or damaged ({reason}); "
                                  "rebuild the index with `reslab embed` into a new --out") from None
        return self._shard_cache[shard_id]

    # -- writes --------------------------------------------------------------------------------
    def commit(self, new: list[NewItem], bad: list[tuple[str, int, float, str]] = (), touched: list[tuple[str, int, float]] = ()) -> None:
        """Commit one chunk: its vectors as a new shard, then the rows, in one transaction.

        new: items to insert, or to update in place (same path: the id is kept).
        bad: (path, size, mtime, reason) of files that failed to decode.
        touched: (path, size, mtime) of files whose bytes are unchanged (only the stat changed).
        """
        shard_id = None
        if new:
            shard_id = (self.db.execute("SELECT COALESCE(MAX(id), 0) FROM shards").fetchone()[0]) + 1
            file = f"{shard_id:06d}.npy"
            with atomic_open(self.dir / "vectors" / file) as f:
                np.save(f, np.stack([n.vector for n in new]).astype(np.float32))
        with self.db:  # one transaction: all of this chunk or none of it
            if new:
                self.db.execute("INSERT INTO shards (id, file, rows) VALUES (?, ?, ?)", (shard_id, file, len(new)))
                self.db.executemany(
                    "INSERT INTO items (path, size, mtime, sha256, label, width, height, shard, row) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime=excluded.mtime, sha256=excluded.sha256, "
                    "label=excluded.label, width=excluded.width, height=excluded.height, shard=excluded.shard, row=excluded.row",
                    [(to_db(n.path), n.size, n.mtime, n.sha256, to_db(n.label), n.width, n.height, shard_id, r) for r, n in enumerate(new)],
                )
                self.db.executemany("DELETE FROM bad WHERE path = ?", [(to_db(n.path),) for n in new])
            if bad:
                self.db.executemany("INSERT OR REPLACE INTO bad (path, size, mtime, reason) VALUES (?,?,?,?)",
                                    [(to_db(p), size, mtime, to_db(reason)) for p, size, mtime, reason in bad])
                self.db.executemany("DELETE FROM items WHERE path = ?", [(to_db(b[0]),) for b in bad])
            if touched:
                self.db.executemany("UPDATE items SET size = ?, mtime = ? WHERE path = ?", [(s, m, to_db(p)) for p, s, m in touched])

    def start_walk(self) -> None:
        """Begin recording the paths a walk sees (a temporary table: memory stays bounded)."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY)")
        self.db.execute("DELETE FROM seen")
        self.db.commit()

    def mark_seen(self, paths: list[str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO seen (path) VALUES (?)", [(to_db(p),) for p in paths])

    def delete_unseen(self) -> int:
        """After a complete walk: drop items and bad-file records of files that are gone; returns the items dropped."""
        with self.db:
            dropped = self.db.execute("DELETE FROM items WHERE path NOT IN (SELECT path FROM seen)").rowcount
            self.db.execute("DELETE FROM bad WHERE path NOT IN (SELECT path FROM seen)")
            self.db.execute("DELETE FROM seen")
        return dropped

    def compact(self, block: int = 8192) -> None:
        """Rewrite the live vectors into fresh shards once dead rows (changed or deleted files) dominate."""
        live = len(self)
        stored = self.db.execute("SELECT COALESCE(SUM(rows), 0) FROM shards").fetchone()[0]
        if stored <= 2 * live and self.db.execute("SELECT COUNT(*) FROM shards").fetchone()[0] < 4 * max(1, live // block + 1) + 64:
            return
        old = [r[0] for r in self.db.execute("SELECT file FROM shards")]
        next_id = (self.db.execute("SELECT COALESCE(MAX(id), 0) FROM shards").fetchone()[0]) + 1
        moves, shards = [], []
        for ids, vectors in self.iter_vectors(block):
            file = f"{next_id:06d}.npy"
            with atomic_open(self.dir / "vectors" / file) as f:
                np.save(f, vectors)
            shards.append((next_id, file, len(ids)))
            moves += [(next_id, r, int(i)) for r, i in enumerate(ids)]
            next_id += 1
        with self.db:
            self.db.execute("DELETE FROM shards")
            self.db.executemany("INSERT INTO shards (id, file, rows) VALUES (?, ?, ?)", shards)
            self.db.executemany("UPDATE items SET shard = ?, row = ? WHERE id = ?", moves)
        self._shard_cache.clear()
        for file in old:
            (self.dir / "vectors" / file).unlink(missing_ok=True)

    def remove_orphan_shards(self) -> None:
        """Delete shard files no committed transaction refers to (left by a run killed mid-chunk)."""
        known = {r[0] for r in self.db.execute("SELECT file FROM shards")}
        for path in (self.dir / "vectors").iterdir():
            if path.name not in known:
                path.unlink(missing_ok=True)
