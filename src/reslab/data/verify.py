"""`reslab data verify`: decode every image of a dataset, list the bad files, count per split and class."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..imageio import BadImageError, load_image
from ..processes import worker_pool
from .formats import ArraySplit, open_source
from .progress import image_progress, resolve_workers

CHUNK = 64  # files per worker task


@dataclass
class VerifyReport:
    format: str
    root: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> number of images (bad ones included)
    bad: list[dict] = field(default_factory=list)  # {"split", "path", "reason"}

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    @property
    def ok(self) -> bool:
        return not self.bad

    def to_dict(self) -> dict:
        return {"format": self.format, "root": self.root, "classes": self.classes, "counts": self.counts,
                "total": self.total, "bad_count": len(self.bad), "bad": self.bad}  # fmt: skip


def _verify_chunk(paths: list[str]) -> list[tuple[int, str]]:
    bad = []
    for i, p in enumerate(paths):
        try:
            load_image(p)
        except BadImageError as e:
            bad.append((i, e.reason))
    return bad


def verify_data(path: str | Path, format: str = "auto", workers: int = -1, progress: bool = True) -> VerifyReport:
    """Decode every file of every split (in `workers` processes); arrays are checked for labels in range."""
    source = open_source(path, format)
    counts, bad = {}, []
    for split_name, split in source.splits.items():
        labels = split.labels
        per_class = np.bincount(labels[(labels >= 0) & (labels < len(source.classes))], minlength=len(source.classes))
        counts[split_name] = {c: int(n) for c, n in zip(source.classes, per_class)}
        out_of_range = np.flatnonzero((labels < 0) | (labels >= len(source.classes)))
        for i in out_of_range:
            bad.append({"split": split_name, "path": f"{source.root}[{split_name}][{i}]",
                        "reason": f"label {labels[i]} outside 0..{len(source.classes) - 1}"})  # fmt: skip
        if isinstance(split, ArraySplit):
            continue
        bad += [{"split": split_name, "path": p, "reason": r} for p, r in decode_all(split.paths, workers, split_name, progress)]
    return VerifyReport(source.format, str(source.root), list(source.classes), counts, bad)


def decode_all(paths, workers: int, what: str, show: bool) -> list[tuple[str, str]]:
    paths = [str(p) for p in paths]
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    workers = min(resolve_workers(workers), len(chunks))
    bad = []
    with image_progress() as progress:
        task = progress.add_task(f"verifying {what}", total=len(paths), visible=show)
        with worker_pool(workers) as pool:
            results = pool.imap(_verify_chunk, chunks) if pool else map(_verify_chunk, chunks)
            for chunk, chunk_bad in zip(chunks, results):
                bad += [(chunk[i], reason) for i, reason in chunk_bad]
                progress.advance(task, len(chunk))
    return bad
