"""Decoding images safely: every failure becomes a `BadImageError` naming the file."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ReslabError

EXIF_ORIENTATION = 0x0112  # the EXIF tag number of "Orientation"
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


# A JPEG decoded at a reduced scale keeps at least this many times the shorter side its caller
# asked for. Measured (benchmarks/decode_parity.py, docs/inference.md "Decoding"): EfficientNet-Lite0
# embeddings of 24 camera-size photos stay at cosine >= 0.9985 (mean 0.9996) from the full decode;
# at 1/8 with 1.1-1.7x the size needed (the rule before) they fell to 0.979 (mean 0.991).
DRAFT_MARGIN = 3.0
DRAFT_INFO = "reslab_draft"  # Image.info key: (scale, full width, full height) of a reduced decode


def load_image(path: str | os.PathLike, mode: str = "RGB", min_size: int | None = None, margin: float = DRAFT_MARGIN) -> Image.Image:
    """Decode `path` fully, upright, and convert it to `mode` (RGB or L).

    Upright: a photo whose EXIF orientation says the camera was turned (phones write 6 or 8 rather
    than rotating the pixels) is rotated/mirrored as a browser would show it, so a search, a
    prediction or a crop sees what the user sees.
    `min_size`: the shorter side the caller needs. Large JPEGs are then decoded at a reduced scale
    (Pillow's `draft`: libjpeg's scaled inverse DCT, by 1/2, 1/4 or 1/8) while the shorter side
    stays >= margin x min_size: a 12-megapixel photo decodes 2-4x faster (training augmentations,
    random anyway, pass margin=1: any reduction that still holds the pixels they need). Such an image
    carries `info[DRAFT_INFO]` = (scale, full width, full height), so that `full_size` and
    `reslab.preprocess.resize_center_crop` place a crop exactly where the full decode would.
    Handles CMYK, palette, 16-bit and alpha images. Raises BadImageError for empty, truncated or
    non-image files.
    """
    path = Path(path)
    with reading_image(path):
        if check_regular_file(path).st_size == 0:
            raise BadImageError(path, "the file is empty")
        with Image.open(path) as im:
            full_w, full_h = im.size
            scale = _draft(im, mode, min_size, margin)
            im.load()  # decode now, inside the guard: a truncated JPEG fails here
            if scale == 1:
                return upright(im, mode)
            # libjpeg rounds a reduced size up: the last row/column may be partly outside the
            # picture. Drop it, so that pixel i covers full-size pixels [scale*i, scale*(i+1)).
            drafted = im.crop((0, 0, full_w // scale, full_h // scale))
            swapped = exif_orientation(im) in (5, 6, 7, 8)
            drafted.info = {**im.info, DRAFT_INFO: (scale, *((full_h, full_w) if swapped else (full_w, full_h)))}
            out = upright(drafted, mode)
            out.info[DRAFT_INFO] = drafted.info[DRAFT_INFO]  # conversions that composite drop info
            return out


def _draft(im: Image.Image, mode: str, min_size: int | None, margin: float) -> int:
    """Ask libjpeg for the largest reduction (1/2, 1/4, 1/8) that keeps the margin; returns it (1: none)."""
    if min_size is None or im.format != "JPEG":
        return 1
    w, h = im.size
    want = min_size * margin
    scale = next((s for s in (8, 4, 2) if min(w, h) // s >= want), 1)
    if scale == 1:
        return 1
    im.draft("RGB" if mode == "RGB" else "L", (w // scale, h // scale))  # Pillow picks the largest scale within it
    got = round(w / im.size[0])  # what Pillow chose (it may refuse: a progressive or multi-tile file)
    return got if got in (2, 4, 8) and im.size == ((w + got - 1) // got, (h + got - 1) // got) else 1


def full_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) of the picture `im` was decoded from: its own size, unless `load_image`
    decoded it at a reduced scale."""
    info = im.info.get(DRAFT_INFO)
    return (int(info[1]), int(info[2])) if info else im.size


def draft_scale(im: Image.Image) -> int:
    """Full-size pixels per pixel of `im` along each side (1 unless decoded at a reduced scale)."""
    info = im.info.get(DRAFT_INFO)
    return int(info[0]) if info else 1


def upright(im: Image.Image, mode: str = "RGB") -> Image.Image:
    """A decoded image turned as its EXIF orientation says, converted to `mode` (RGB or L)."""
    if exif_orientation(im) != 1:
        from PIL import ImageOps

        im = ImageOps.exif_transpose(im)
    return _convert(im, mode)


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright as stored, 2-8 = mirrored and/or turned); 1 when absent
    or unreadable (a damaged EXIF block does not make the picture undecodable)."""
    import warnings

    try:
        with warnings.catch_warnings():  # Pillow warns "Corrupt EXIF data" as well as raising
            warnings.simplefilter("ignore")
            value = int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - Pillow's EXIF parser raises many types on damaged blocks
        return 1
    return value if 1 <= value <= 8 else 1


def upright_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) as `load_image` returns the picture (EXIF orientations 5-8 swap the sides);
    from the header only, before any decoding."""
    w, h = im.size
    return (h, w) if exif_orientation(im) in (5, 6, 7, 8) else (w, h)


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
