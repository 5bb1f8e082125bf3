"""A generated zoo of hostile files, in an image-folder dataset: train/<class>/<file>.

Each entry says whether it is an image that decodes ("good") or a file every consumer must name
as bad ("bad"). Some entries depend on the platform (an unreadable file is readable by root).
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Zoo:
    root: Path  # the dataset folder (train/<class>/...)
    good: list[Path] = field(default_factory=list)
    bad: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return self.good + self.bad


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width x height pixels, with one tiny compressed row: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def write_zoo(root: Path, seed: int = 0) -> Zoo:
    rng = np.random.default_rng(seed)
    zoo = Zoo(root)
    ordinary, odd = root / "train" / "ordinary", root / "train" / "odd"
    ordinary.mkdir(parents=True)
    odd.mkdir(parents=True)

    def photo(h=24, w=32) -> Image.Image:
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

    def good(path: Path, image: Image.Image, **save) -> None:
        image.save(path, **save)
        zoo.good.append(path)

    for i in range(6):  # enough ordinary photos to train on
        good(ordinary / f"photo{i}.png", photo())
    good(odd / "cmyk.jpg", photo().convert("CMYK"), format="JPEG")
    good(odd / "grey16.png", Image.fromarray((rng.integers(0, 65535, (24, 32))).astype(np.uint16)))
    palette = photo().convert("P", palette=Image.ADAPTIVE, colors=16)
    good(odd / "palette_transparent.png", palette, transparency=0)
    good(odd / "one_pixel.png", photo(1, 1))
    good(odd / "[red]markup.png", photo())  # rich markup in a name
    good(odd / "new\nline.png", photo())
    if sys.platform != "darwin":  # macOS refuses names that are not UTF-8
        good(odd / os.fsdecode(b"latin1-caf\xe9.png"), photo())

    def bad(path: Path, data: bytes) -> None:
        path.write_bytes(data)
        zoo.bad.append(path)

    jpeg = io.BytesIO()
    photo(64, 64).save(jpeg, format="JPEG")
    bad(odd / "truncated.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) // 3])
    bad(odd / "zero_bytes.jpg", b"")
    bad(odd / "text.jpg", b"<html><body>403 Forbidden</body></html>\n")
    bad(odd / "bomb.png", _png_header_claiming(100_000, 100_000))
    loop = odd / "loop.jpg"
    loop.symlink_to(loop.name)  # a link to itself
    zoo.bad.append(loop)
    locked = odd / "unreadable.png"
    photo().save(locked)
    locked.chmod(0)
    (zoo.good if os.access(locked, os.R_OK) else zoo.bad).append(locked)  # root reads anything
    if hasattr(os, "mkfifo"):  # a named pipe: opening it waits for a writer that never comes
        os.mkfifo(odd / "pipe.jpg")
        zoo.bad.append(odd / "pipe.jpg")
    if os.path.exists("/dev/zero"):  # reading it never ends
        (odd / "endless.png").symlink_to("/dev/zero")
        zoo.bad.append(odd / "endless.png")
    (odd / "folder.jpg").mkdir()  # a directory named like an image: not a file, not an image
    (odd / "again").symlink_to(".")  # a folder link loop: must not be walked forever
    return zoo


def restore_permissions(zoo: Zoo) -> None:
    """So that pytest can delete the zoo afterwards."""
    for path in zoo.files:
        if path.is_file() and not path.is_symlink():
            path.chmod(0o644)
