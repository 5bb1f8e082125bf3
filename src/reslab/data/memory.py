"""Decode a folder of small images once into a uint8 array (N, C, H, W), cached on disk.

The cache lives under ~/.cache/reslab/decoded (or $RESLAB_CACHE/decoded), never beside the
user's data; the key hashes the file list with sizes and mtimes, so editing a file re-decodes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..fileio import atomic_open
from ..processes import worker_pool
from ..imageio import BadImageError, load_image
from ..preprocess import resize_center_crop
from .formats import ArraySplit, FileSplit
from .guard import BadFileLog
from .progress import image_progress, resolve_workers
from .transforms import image_size_of

log = logging.getLogger(__name__)
CACHE_VERSION = 1
CHUNK = 256  # images per task sent to a worker process: large enough to hide the IPC cost


def cache_dir() -> Path:
    root = os.environ.get("RESLAB_CACHE") or Path.home() / ".cache" / "reslab"
    return Path(root) / "decoded"


def small_equal_images(paths: tuple[Path, ...], max_side: int = 64, samples: int = 16) -> tuple[int, int] | None:
    """(H, W) when a spread sample of the files all share one small size, else None (headers only)."""
    if not paths:
        return None
    step = max(1, len(paths) // samples)
    sizes = set()
    for p in paths[::step][:samples]:
        try:
            sizes.add(image_size_of(p))
        except BadImageError:
            continue  # the guard reports it when decoding
    if len(sizes) != 1:
        return None
    w, h = sizes.pop()
    return (h, w) if max(w, h) <= max_side else None


def _decode_one(path: Path, size: int, mode: str) -> np.ndarray:
    img = load_image(path, mode, min_size=size)
    if img.size != (size, size):
        img = resize_center_crop(img, size, size)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _decode_chunk_args(args: tuple) -> tuple:
    return _decode_chunk(*args)


def _decode_chunk(paths: list[Path], size: int, mode: str):
    c = 1 if mode == "L" else 3
    out = np.zeros((len(paths), c, size, size), dtype=np.uint8)
    bad = []
    for i, p in enumerate(paths):
        try:
            out[i] = _decode_one(p, size, mode)
        except BadImageError as e:
            bad.append((i, str(e.path), e.reason))
    return out, bad


def decode_files(paths, size: int, mode: str, workers: int, description: str = "decoding"):
    """Decode every file to (C, size, size) uint8 in parallel, with a progress bar.

    Returns (images (N, C, size, size), bad [(index, path, reason)]); bad rows are zeros.
    """
    paths = list(paths)
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    workers = min(resolve_workers(workers), len(chunks))
    parts, bad = [], []
    with image_progress() as progress:
        task = progress.add_task(description, total=len(paths))
        with worker_pool(workers) as pool:
            if pool is None:
                results = (_decode_chunk(c, size, mode) for c in chunks)
            else:
                results = pool.imap(_decode_chunk_args, [(c, size, mode) for c in chunks])
            for k, (arr, chunk_bad) in enumerate(results):
                parts.append(arr)
                bad += [(k * CHUNK + i, p, r) for i, p, r in chunk_bad]
                progress.advance(task, len(arr))
    c = 1 if mode == "L" else 3
    images = np.concatenate(parts) if parts else np.zeros((0, c, size, size), np.uint8)
    return images, bad


def _cache_key(paths, size: int, mode: str) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, size, mode]).encode())
    for p in paths:
        st = os.stat(p) if os.path.exists(p) else None
        # surrogateescape: a file name that is not UTF-8 hashes as its bytes on disk
        h.update(f"{os.path.abspath(p)}\0{st.st_size if st else -1}\0{st.st_mtime_ns if st else -1}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


def decode_split(split: FileSplit, size: int, channels: int, workers: int, bad_log: BadFileLog, use_cache: bool = True, what: str = "") -> ArraySplit:
    """A FileSplit decoded into an ArraySplit of (C, size, size) images; bad files are reported
    through `bad_log` (which aborts past its threshold) and left out."""
    mode = "L" if channels == 1 else "RGB"
    key = _cache_key(split.paths, size, mode)
    cached = cache_dir() / f"{key}.npz"
    if use_cache and cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as z:
                images, bad_index, bad_reasons = z["images"], z["bad_index"], z["bad_reasons"]
            bad = [(int(i), str(split.paths[int(i)]), str(r)) for i, r in zip(bad_index, bad_reasons)]
            log.info("loaded %d decoded images of %s from the cache %s", len(images), what or "the data", cached)
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable decode cache %s (%s); decoding again", cached, e)
            use_cache, images = True, None
        else:
            return _drop_bad(split, images, bad, bad_log)
    images, bad = decode_files(split.paths, size, mode, workers, f"decoding {what}".strip())
    if use_cache:
        try:
            with atomic_open(cached, "wb") as f:
                np.savez(f, images=images, bad_index=np.array([b[0] for b in bad], dtype=np.int64),
                         bad_reasons=np.array([b[2] for b in bad], dtype=str))  # fmt: skip
        except OSError as e:  # a read-only home must not stop training
            log.warning("cannot write the decode cache %s (%s); the next run decodes again", cached, e)
    return _drop_bad(split, images, bad, bad_log)


def _drop_bad(split: FileSplit, images: np.ndarray, bad, bad_log: BadFileLog) -> ArraySplit:
    bad_log.record_all(((p, r) for _i, p, r in bad), check=False)  # the caller decides once every split is decoded
    keep = np.ones(len(images), dtype=bool)
    keep[[i for i, _p, _r in bad]] = False
    return ArraySplit(images[keep] if not keep.all() else images, split.labels[keep])
