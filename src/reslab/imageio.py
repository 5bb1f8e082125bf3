"""Decoding images safely: every failure becomes a `BadImageError` naming the file."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ReslabError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class BadImageError(ReslabError):
    """A file that should be an image but cannot be decoded."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot decode image {path}: {reason}; fix or remove the file")


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def check_regular_file(path: str | os.PathLike) -> os.stat_result:
    """The file's stat, after making sure reading it ends: a named pipe named like an image blocks
    the reader until someone writes into it, and a link to /dev/zero never ends. Such a path is a
    BadImageError naming what it is; OSError (no such file, a link loop, permissions) passes up."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "not a regular file")  # fmt: skip
        raise BadImageError(path, f"{kind}, not an image file")
    return st


@contextmanager
def reading_image(path: str | os.PathLike):
    """Whatever goes wrong reading or decoding `path` inside the block ends as one BadImageError
    naming the file and the reason (no such file, Pillow's message, a decompression bomb)."""
    try:
        yield
    except BadImageError:
        raise
    except FileNotFoundError:
        raise BadImageError(path, "no such file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadImageError(path, str(e) or type(e).__name__) from None


def load_image(path: str | os.PathLike, mode: str = "RGB", min_size: int | None = None) -> Image.Image:
    """Decode `path` fully and convert it to `mode` (RGB or L).

    `min_size`: the shorter side the caller needs. Large JPEGs are then decoded at a reduced scale
    (Pillow's `draft`, a DCT-domain downscale by 1/2, 1/4 or 1/8) as long as the shorter side stays
    >= min_size, which makes decoding a 12-megapixel photo several times cheaper.
    Handles CMYK, palette, 16-bit and alpha images. Raises BadImageError for empty, truncated or
    non-image files.
    """
    path = Path(path)
    with reading_image(path):
        if check_regular_file(path).st_size == 0:
            raise BadImageError(path, "the file is empty")
        with Image.open(path) as im:
            if min_size is not None and im.format == "JPEG":
                w, h = im.size
                scale = min(w, h) / float(min_size)
                if scale >= 2:
                    im.draft("RGB" if mode == "RGB" else "L", (max(1, int(w / scale)), max(1, int(h / scale))))
            im.load()  # decode now, inside the guard: a truncated JPEG fails here
            return _convert(im, mode)


def _convert(im: Image.Image, mode: str) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit grey: scale to 8 bits instead of clipping everything to white.
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a * (255.0 / hi), 0, 255).astype(np.uint8), "L")
    if im.mode in ("P", "PA") or (im.mode in ("RGBA", "LA") and mode == "RGB"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert(mode)
