"""Bad files: decode inside a guard, report each bad file once, replace it, abort past a threshold.

A dataset of real photos always holds a few broken files (a truncated download, an HTML error page
saved as .jpg). One of them must not kill a three-day run, and many of them must not go unnoticed:
each bad file is logged with its path and reason, counted, and replaced by a deterministic
neighbour; once more than `max_bad_fraction` of the files are bad the run stops with a ReslabError.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import ReslabError
from ..imageio import BadImageError

log = logging.getLogger(__name__)
T = TypeVar("T")

# How far a replacement search goes before giving up: a run of this many consecutive bad files
# means the data are broken beyond what replacing can hide.
MAX_REPLACEMENT_TRIES = 64


class TooManyBadFiles(ReslabError):
    pass


class BadFileLog:
    """The bad files seen so far, by path; raises `TooManyBadFiles` past `max_fraction` of `total`."""

    def __init__(self, total: int, max_fraction: float, what: str = "the dataset"):
        self.total = total
        self.max_fraction = max_fraction
        self.what = what
        self.bad: dict[str, str] = {}

    def record(self, path: str | Path, reason: str) -> None:
        path = str(path)
        if path in self.bad:
            return
        self.bad[path] = reason
        log.warning("skipping bad image %s: %s", path, reason)
        self.check()

    def record_all(self, items) -> None:
        for path, reason in items:
            self.record(path, reason)

    def check(self) -> None:
        if self.total and len(self.bad) > self.max_fraction * self.total:
            raise TooManyBadFiles(
                f"{len(self.bad)} of {self.total} images in {self.what} cannot be decoded "
                f"(more than max_bad_fraction={self.max_fraction:g}), e.g. {next(iter(self.bad))}; "
                "run `reslab data verify` on the folder to list them, then fix or remove them, "
                "or raise data.max_bad_fraction"
            )


def decode_or_replace(index: int, n: int, decode: Callable[[int], T]) -> tuple[T, int, list[tuple[str, str]]]:
    """`decode(index)`, or the next decodable sample after it (wrapping around).

    Returns (value, the index actually used, [(path, reason) for every bad file met]). The
    replacement is deterministic (the next index in the dataset's fixed order, which in a sorted
    folder is usually the same class), so a resumed run sees exactly the same batches.
    """
    bad = []
    for step in range(min(n, MAX_REPLACEMENT_TRIES)):
        j = (index + step) % n
        try:
            return decode(j), j, bad
        except BadImageError as e:
            bad.append((str(e.path), e.reason))
    raise TooManyBadFiles(
        f"{len(bad)} consecutive images cannot be decoded, e.g. {bad[0][0]} ({bad[0][1]}); "
        "run `reslab data verify` on the folder to list the bad files"
    )
