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

from ..console import printable
from ..errors import ReslabError
from ..imageio import BadImageError

log = logging.getLogger(__name__)
T = TypeVar("T")

# How far a replacement search goes before giving up: a run of this many consecutive bad files
# means the data are broken beyond what replacing can hide.
MAX_REPLACEMENT_TRIES = 64
COUNT_ALL_LIMIT = 200_000  # files: past this, an abort reports the bad files met so far (a full check takes too long)
EXAMPLES = 5  # bad files named in the abort message


class TooManyBadFiles(ReslabError):
    pass


class BadFileLog:
    """The bad files seen so far, by path; raises `TooManyBadFiles` past `max_fraction` of `total`.

    `paths` (every file of the dataset) lets the abort count them all first: the message then
    says how many of the files are bad and names them, not "1 of 66" for the first one met.
    """

    def __init__(self, total: int, max_fraction: float, what: str = "the dataset", paths=None, workers: int = 0):
        self.total = total
        self.max_fraction = max_fraction
        self.what = what
        self.paths, self.workers = paths, workers
        self.bad: dict[str, str] = {}
        self.complete = False  # every file has been tried: the count is the dataset's

    def record(self, path: str | Path, reason: str, check: bool = True) -> None:
        path = str(path)
        if path in self.bad:
            return
        self.bad[path] = reason
        log.warning("skipping bad image %s: %s", printable(path), printable(reason))
        if check:
            self.check()

    def record_all(self, items, check: bool = True) -> None:
        for path, reason in items:
            self.record(path, reason, check=False)
        if check:
            self.check()

    def check(self) -> None:
        if not self.total or len(self.bad) <= self.max_fraction * self.total:
            return
        if not self.complete and self.paths is not None and len(self.paths) <= COUNT_ALL_LIMIT:
            self.count_all()
        count = f"{len(self.bad)}" if self.complete else f"at least {len(self.bad)}"
        examples = "; ".join(f"{printable(p)} ({printable(r)})" for p, r in list(self.bad.items())[:EXAMPLES])
        more = f"; and {len(self.bad) - EXAMPLES} more" if len(self.bad) > EXAMPLES else ""
        raise TooManyBadFiles(
            f"{count} of {self.total} images in {printable(self.what)} cannot be decoded "
            f"(more than max_bad_fraction={self.max_fraction:g}): {examples}{more}; "
            "`reslab data verify` lists them all: fix or remove them, or raise data.max_bad_fraction"
        )

    def count_all(self) -> None:
        """Decode every file once (in worker processes) and record the bad ones, before aborting."""
        from .verify import decode_all

        log.warning("%d bad image(s) so far; checking all %d files before stopping", len(self.bad), len(self.paths))
        for path, reason in decode_all(self.paths, self.workers, "the dataset", show=True):
            self.bad.setdefault(str(path), reason)
        self.complete = True


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
