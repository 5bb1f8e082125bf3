"""The inference cache: exported models and runtime decisions, written atomically, checked on use.

An entry is a folder named by a hash of its key (model, weights hash, runtime and its version...),
holding its files and a manifest with each file's size and SHA-256. An entry is built in a
temporary folder and renamed into place, so a kill mid-export leaves no half entry; on every use
its files are checked against the manifest, and a damaged entry is removed and rebuilt, never
trusted. Root: $RESLAB_CACHE/inference (default ~/.cache/reslab/inference).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Callable

from ..fileio import atomic_write_text

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def cache_root() -> Path:
    return Path(os.environ.get("RESLAB_CACHE", Path.home() / ".cache" / "reslab")) / "inference"


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_entry(kind: str, key: dict, build: Callable[[Path], None], label: str) -> Path:
    """The folder of the entry for `key`, built with build(folder) when absent or damaged.

    kind: a subfolder ("onnx", "openvino"); label: a readable prefix of the folder name.
    build writes the entry's files into the folder it is given (which it must not rename).
    """
    folder = cache_root() / kind / f"{_safe(label)}-{key_digest(key)}"
    problem = entry_problem(folder, key)
    if problem is None:
        return folder
    if folder.exists():
        log.warning("the cached %s entry %s is damaged (%s); rebuilding it", kind, folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
    tmp = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        files = {p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"key": key, "files": files, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same entry first: keep theirs if it is sound
            if entry_problem(folder, key) is not None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _verified.add(_stamp(folder))
    return folder


def entry_problem(folder: Path, key: dict) -> str | None:
    """Why the entry in `folder` cannot be trusted, or None when every file matches its manifest."""
    if not folder.is_dir():
        return "absent"
    stamp = _stamp(folder)
    if stamp in _verified:
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its manifest is missing or unreadable"
    if json.loads(json.dumps(key, sort_keys=True, default=str)) != manifest.get("key"):
        return "its key differs"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected.get("size"):
            return f"{name} has {path.stat().st_size} bytes, {expected.get('size')} expected"
        if file_sha256(path) != expected.get("sha256"):
            return f"the SHA-256 of {name} differs from the one recorded when it was written"
    _verified.add(stamp)
    return None


def discard(folder: Path, reason: str) -> None:
    """Remove an entry that a runtime failed to load although its hashes matched."""
    log.warning("the cached entry %s cannot be used (%s); rebuilding it", folder, reason)
    _verified.discard(_stamp(folder))
    shutil.rmtree(folder, ignore_errors=True)


# entries verified in this process, by (folder, mtimes and sizes): hashing 100 MB once is enough
_verified: set[tuple] = set()


def _stamp(folder: Path) -> tuple:
    with contextlib.suppress(OSError):
        return (str(folder),) + tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()))
    return (str(folder),)


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]


def read_json(path: Path) -> dict | None:
    """A small JSON record of the cache (a runtime decision), or None when absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
