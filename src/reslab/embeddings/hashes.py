"""Perceptual hashes: average, difference, DCT ("perceptual") and Haar-wavelet hashes.

Each turns an image into `hash_size**2` bits (64 by default) that survive resizing, re-encoding
and small brightness changes, so exact and near-exact copies are a few bits apart while unrelated
photos differ in about half of them. Definitions follow Neal Krawetz's "Looks like it" (aHash,
dHash, pHash) and the `imagehash` package (wHash):

  ahash  grey, resized to 8x8; bit = pixel > mean
  dhash  grey, resized to 9x8; bit = pixel > its left neighbour (horizontal gradient sign)
  phash  grey, resized to 32x32; 2-D DCT-II; the 8x8 lowest frequencies; bit = coefficient > median
  whash  grey, resized to the largest power of two <= the shorter side (<= 256); the image mean
         removed (the coarsest Haar approximation set to zero); the Haar approximation band at
         8x8, which for the Haar wavelet is the block mean; bit = band > median

As embedder rows, bits b become (2b - 1) / sqrt(n): unit vectors whose inner product is exactly
1 - 2 * hamming / n, so cosine thresholds, the float store and `eval-retrieval` work unchanged,
while the FAISS index of a hash method is binary (packed bits, Hamming distance by popcount):
8 bytes per image for 64 bits, searchable at very large scale.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ReslabError
from .base import HASH_METHODS, Stateless


def _grey(image: Image.Image, width: int, height: int) -> np.ndarray:
    """Grey levels (float64) after an antialiased resize to width x height (Pillow's Lanczos)."""
    return np.asarray(image.convert("L").resize((width, height), Image.LANCZOS, reducing_gap=3.0), dtype=np.float64)


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix (n, n): y = M @ x transforms a column vector."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def average_hash(image: Image.Image, hash_size: int = 8) -> np.ndarray:
    pixels = _grey(image, hash_size, hash_size)
    return (pixels > pixels.mean()).ravel()


def difference_hash(image: Image.Image, hash_size: int = 8) -> np.ndarray:
    pixels = _grey(image, hash_size + 1, hash_size)
    return (pixels[:, 1:] > pixels[:, :-1]).ravel()


def perceptual_hash(image: Image.Image, hash_size: int = 8, highfreq_factor: int = 4) -> np.ndarray:
    n = hash_size * highfreq_factor
    pixels = _grey(image, n, n)
    m = dct_matrix(n)
    low = (m @ pixels @ m.T)[:hash_size, :hash_size]
    return (low > np.median(low)).ravel()


def wavelet_hash(image: Image.Image, hash_size: int = 8) -> np.ndarray:
    scale = 1 << int(math.log2(max(hash_size, min(min(image.size), 256))))
    scale = max(scale, hash_size)
    pixels = _grey(image, scale, scale) / 255.0
    pixels -= pixels.mean()  # the coarsest Haar approximation (the image mean) removed
    block = scale // hash_size
    band = pixels.reshape(hash_size, block, hash_size, block).mean(axis=(1, 3))  # Haar approximation band
    return (band > np.median(band)).ravel()


HASH_FUNCTIONS = {"ahash": average_hash, "dhash": difference_hash, "phash": perceptual_hash, "whash": wavelet_hash}


def image_hash(image: Image.Image, method: str = "phash", hash_size: int = 8) -> np.ndarray:
    """The `method` hash of an image as a bool array of hash_size**2 bits."""
    if method not in HASH_FUNCTIONS:
        raise ReslabError(f"unknown hash '{method}'; choose one of {', '.join(HASH_METHODS)}")
    return HASH_FUNCTIONS[method](image, hash_size)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    """Bits that differ between two hashes."""
    return int(np.count_nonzero(np.asarray(a, bool) != np.asarray(b, bool)))


def hash_hex(bits: np.ndarray) -> str:
    """A hash as hex, most significant bit first (the `imagehash` string form)."""
    return np.packbits(np.asarray(bits, bool)).tobytes().hex()


def bits_to_rows(bits: np.ndarray) -> np.ndarray:
    """(N, n) bits -> (N, n) float32 rows (2b - 1) / sqrt(n): row . row' = 1 - 2 * hamming / n."""
    bits = np.asarray(bits, dtype=np.float32)
    return (2.0 * bits - 1.0) / np.float32(math.sqrt(bits.shape[1]))


def rows_to_packed(rows: np.ndarray) -> np.ndarray:
    """Embedder rows (or bits) -> packed uint8 codes (N, n / 8) for a FAISS binary index."""
    return np.packbits(np.asarray(rows) > 0, axis=1)


def similarity_to_bits(similarity: float, n_bits: int) -> float:
    """The Hamming distance that a cosine similarity of hash rows stands for: (1 - s) * n / 2."""
    return (1.0 - similarity) * n_bits / 2.0


def bits_to_similarity(distance, n_bits: int):
    return 1.0 - 2.0 * np.asarray(distance, dtype=np.float32) / n_bits


class HashEmbedder(Stateless):
    """A perceptual hash as an embedder: `preprocess` computes the bits in the decode workers."""

    needs_fit = False
    metric = "hamming"

    def __init__(self, method: str = "phash", hash_size: int = 8):
        if method not in HASH_METHODS:
            raise ReslabError(f"unknown hash '{method}'; choose one of {', '.join(HASH_METHODS)}")
        if not isinstance(hash_size, int) or hash_size < 4 or hash_size % 2:
            raise ReslabError(f"hash_size must be an even integer >= 4 (bits = hash_size^2, a multiple of 8); got {hash_size!r}")
        self.method, self.hash_size = method, hash_size
        self.dim = hash_size * hash_size

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return image_hash(image, self.method, self.hash_size)

    def embed(self, batch: list) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        return bits_to_rows(np.stack(batch))

    def manifest(self) -> dict:
        return {"method": self.method, "params": {"hash_size": self.hash_size}, "metric": self.metric}

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path | None = None) -> "HashEmbedder":
        return cls(manifest["method"], **manifest.get("params", {}))
