"""Walking an image folder as a stream, and decoding files in worker processes.

The walk is a generator in a fixed order (path components sorted), so a million-image folder never
sits in memory as a list and two runs (or two shards) agree on the order.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..imageio import BadImageError, check_regular_file, is_image_file, load_image


def walk_images(root: str | os.PathLike) -> Iterator[Path]:
    """Image files under `root`, recursively, in sorted order; hidden files and folders skipped."""
    root = Path(root)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (PermissionError, FileNotFoundError):
        return
    dirs = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            dirs.append(entry)
        elif is_image_file(entry.name) and _file_or_broken(entry):
            yield Path(entry.path)
    for d in dirs:
        yield from walk_images(d.path)


def _file_or_broken(entry: os.DirEntry) -> bool:
    """A file, or a link that leads nowhere readable (a loop, a dangling target): yielded, so that
    decoding names it as bad rather than the walk skipping it in silence. Not a folder."""
    try:
        return not entry.is_dir()
    except OSError:  # a symbolic link loop
        return True


def walk_order_key(path: str | os.PathLike) -> tuple[str, ...]:
    """The sort key that reproduces `walk_images` order for paths under one root (files before subfolders)."""
    parts = Path(path).parts
    # within a folder the walk yields its files first, then recurses into subfolders in name order
    return tuple(("1" + p) for p in parts[:-1]) + ("0" + parts[-1],)


def label_of(path: Path, root: Path) -> str:
    """The class label of an image: its parent folder's name, or "" for files directly in `root`."""
    parent = path.parent
    return "" if parent == root else parent.name


def shard_of(relpath: str, world_size: int) -> int:
    """A stable shard number for a path (the same on every machine and Python run, unlike hash())."""
    # surrogateescape: a name that is not UTF-8 hashes as its bytes on disk (the same on every machine)
    digest = hashlib.blake2b(relpath.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % world_size


@dataclass(frozen=True)
class Decoded:
    """What a decode worker returns for one file."""

    path: str
    sha256: str
    width: int = 0
    height: int = 0
    data: object = None  # the embedder's preprocessed input
    error: str | None = None  # why the file could not be decoded
    unchanged: bool = False  # the content hash equals the indexed one: nothing to embed


def decode_file(path: str, known_sha256: str | None, preprocess: Callable, min_size: int | None) -> Decoded:
    """Read a file once: hash its bytes, and unless the hash is `known_sha256`, decode and preprocess it."""
    try:
        check_regular_file(path)
        raw = Path(path).read_bytes()
    except BadImageError as e:
        return Decoded(path, "", error=e.reason)
    except OSError as e:
        return Decoded(path, "", error=e.strerror or type(e).__name__)
    sha = hashlib.sha256(raw).hexdigest()
    if known_sha256 is not None and sha == known_sha256:
        return Decoded(path, sha, unchanged=True)
    try:
        # the second read comes from the page cache; load_image keeps one decoding policy everywhere
        image = load_image(path, min_size=min_size)
        width, height = _original_size(raw)
        return Decoded(path, sha, width, height, data=preprocess(image))
    except BadImageError as e:
        return Decoded(path, sha, error=e.reason)
    except Exception as e:  # a preprocessing failure on one odd file must not stop a long run
        return Decoded(path, sha, error=f"{type(e).__name__}: {e}")


def decode_many(tasks: list[tuple[str, str | None]], preprocess: Callable, min_size: int | None) -> list[Decoded]:
    """Worker entry point: a few files per inter-process round trip."""
    return [decode_file(path, sha, preprocess, min_size) for path, sha in tasks]


def _original_size(raw: bytes) -> tuple[int, int]:
    from PIL import Image

    from ..imageio import upright_size

    with Image.open(io.BytesIO(raw)) as im:  # header only: cheap
        return upright_size(im)
