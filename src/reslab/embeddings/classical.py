"""Classical embedders: HOG, colour histograms and SIFT/ORB bags of visual words.

They follow the `Embedder` protocol of `reslab.embeddings`, so an index
built with `reslab embed --method hog|hist|sift|orb` is searched and evaluated like a CNN one:

    preprocess(PIL image) -> np.ndarray      # cheap and picklable: runs in decode workers
    embed(list of preprocessed) -> (N, dim)  # float32, L2-normalised rows
    fit(PIL images)                          # bag of visual words only (needs_fit)
    manifest() / from_manifest(manifest, index_dir)

A bag of visual words also has a vocabulary (k-means centres) and idf weights; `save
(index_dir)` writes them as .npy files next to the index, and the manifest names those files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..errors import ReslabError
from .base import CLASSICAL_METHODS, Stateless, l2_normalize

log = logging.getLogger(__name__)

def resize_longer(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is `size` (up or down), keeping the aspect ratio."""
    w, h = image.size
    scale = size / max(w, h)
    if scale == 1:
        return image
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR, reducing_gap=3.0)


class HogEmbedder(Stateless):
    """Histogram of oriented gradients (Dalal & Triggs 2005) of a fixed-size grayscale resize.

    The whole image is squeezed to `size` x `size` (aspect ratio not kept) so that every image
    gives a vector of the same length; cells of `cell` pixels, 2x2-cell blocks, L2-Hys.
    """

    method = "hog"
    needs_fit = False

    def __init__(self, size: int = 128, cell: int = 16, orientations: int = 9):
        if size % cell or size < 2 * cell:
            raise ReslabError(f"HOG size {size} must be a multiple of the cell size {cell} and at least two cells")
        self.size, self.cell, self.orientations = size, cell, orientations
        cells = size // cell
        self.dim = (cells - 1) ** 2 * 4 * orientations

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.convert("L").resize((self.size, self.size), Image.BILINEAR, reducing_gap=3.0))

    def embed(self, batch: list) -> np.ndarray:
        from skimage.feature import hog

        rows = [
            hog(
                gray,
                orientations=self.orientations,
                pixels_per_cell=(self.cell, self.cell),
                cells_per_block=(2, 2),
                block_norm="L2-Hys",
                feature_vector=True,
            )
            for gray in batch
        ]
        return l2_normalize(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)

    def manifest(self) -> dict:
        return {"method": self.method, "params": {"size": self.size, "cell": self.cell, "orientations": self.orientations}}

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path | None = None) -> "HogEmbedder":
        return cls(**manifest.get("params", {}))


class ColorHistEmbedder(Stateless):
    """Joint colour histogram (HSV by default), L1- then square-rooted then L2-normalised.

    The square root makes the dot product of two vectors the Bhattacharyya coefficient of the two
    histograms (the Hellinger kernel), which compares histograms far better than raw cosine.
    Invariant to flips and rotations; blind to shape.
    """

    method = "hist"
    needs_fit = False

    def __init__(self, space: str = "hsv", bins: tuple[int, int, int] | list[int] = (8, 4, 4), size: int = 128):
        if space not in ("hsv", "rgb"):
            raise ReslabError(f"colour space '{space}' is not supported; use hsv or rgb")
        self.space, self.bins, self.size = space, tuple(int(b) for b in bins), size
        self.dim = int(np.prod(self.bins))

    def preprocess(self, image: Image.Image) -> np.ndarray:
        # Small images are enough for a histogram and keep the batch cheap to ship between processes.
        return np.asarray(resize_longer(image.convert("RGB"), self.size))

    def histogram(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        if self.space == "hsv":
            pixels = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
            ranges = [0, 180, 0, 256, 0, 256]  # OpenCV stores 8-bit hue as 0..179
        else:
            pixels = np.ascontiguousarray(rgb)
            ranges = [0, 256, 0, 256, 0, 256]
        hist = cv2.calcHist([pixels], [0, 1, 2], None, list(self.bins), ranges).ravel()
        return np.sqrt(hist / max(hist.sum(), 1.0))

    def embed(self, batch: list) -> np.ndarray:
        rows = [self.histogram(rgb) for rgb in batch]
        return l2_normalize(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)

    def manifest(self) -> dict:
        return {"method": self.method, "params": {"space": self.space, "bins": list(self.bins), "size": self.size}}

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path | None = None) -> "ColorHistEmbedder":
        return cls(**manifest.get("params", {}))


class BoVWEmbedder:
    """Bag of visual words over SIFT or ORB descriptors (Sivic & Zisserman 2003, "Video Google").

    fit: describe the sample images, k-means the descriptors into `vocab_size` visual words
    (faiss), and count in how many sample images each word occurs (smoothed idf,
    log((1 + N) / (1 + df)) + 1).
    embed: assign each descriptor to its nearest word, tf-idf weight the word counts, L2-normalise.
    SIFT descriptors become RootSIFT (L1, then square root; Arandjelovic & Zisserman 2012) so that
    Euclidean k-means compares them with the Hellinger kernel. ORB's 256-bit descriptors are
    unpacked to 0/1 floats, where squared Euclidean distance equals the Hamming distance.
    An image without keypoints gets an all-zero vector (score 0 against everything).
    """

    needs_fit = True

    def __init__(
        self,
        detector: str = "sift",
        vocab_size: int = 256,
        max_keypoints: int = 500,
        image_size: int = 320,  # longer side before detection; small images are upsampled to it
        max_fit_descriptors: int = 100_000,
        seed: int = 0,
        vocabulary: np.ndarray | None = None,
        idf: np.ndarray | None = None,
    ):
        if detector not in ("sift", "orb"):
            raise ReslabError(f"detector '{detector}' is not supported; use sift or orb")
        self.method = self.detector = detector
        self.vocab_size, self.max_keypoints, self.image_size = int(vocab_size), int(max_keypoints), int(image_size)
        self.max_fit_descriptors, self.seed = int(max_fit_descriptors), int(seed)
        self.dim = self.vocab_size
        self.vocabulary = vocabulary
        self.idf = idf
        self._index = None  # faiss index over the vocabulary, built lazily (not picklable)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_index"] = None
        return state

    # -- the protocol --------------------------------------------------------------------------
    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(resize_longer(image.convert("L"), self.image_size))

    def descriptors(self, gray: np.ndarray) -> np.ndarray:
        """Float32 descriptors (n, d) of one grayscale image: RootSIFT, or ORB bits as 0/1."""
        from .keypoints import detect_and_describe

        _, desc = detect_and_describe(gray, self.detector, self.max_keypoints)
        return descriptors_as_float(desc, self.detector)

    def embed(self, batch: list) -> np.ndarray:
        if self.vocabulary is None:
            raise ReslabError(f"the {self.detector} bag of visual words has no vocabulary yet; call fit() on sample images first")
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalize(np.stack([self._tfidf(self.descriptors(gray)) for gray in batch]))

    def fit(self, samples: Iterable[Image.Image]) -> None:
        import faiss

        rng = np.random.default_rng(self.seed)
        per_image: list[np.ndarray] = []
        for image in samples:
            desc = self.descriptors(self.preprocess(image))
            if len(desc):
                # float16 halves the memory for the document-frequency pass below
                per_image.append(desc.astype(np.float16))
        total = sum(len(d) for d in per_image)
        if total < self.vocab_size:
            raise ReslabError(
                f"only {total} {self.detector} descriptors in {len(per_image)} sample images, fewer than the "
                f"{self.vocab_size} visual words asked for; give more or larger images, or a smaller vocab_size"
            )
        train = np.concatenate(per_image).astype(np.float32)
        if len(train) > self.max_fit_descriptors:
            train = train[rng.choice(len(train), self.max_fit_descriptors, replace=False)]
        log.info("k-means: %d visual words from %d %s descriptors", self.vocab_size, len(train), self.detector)
        kmeans = faiss.Kmeans(train.shape[1], self.vocab_size, niter=20, seed=self.seed, verbose=False)
        kmeans.train(train)
        self.vocabulary = kmeans.centroids.astype(np.float32)
        self._index = None
        # document frequency: in how many sample images each word occurs
        df = np.zeros(self.vocab_size, np.float64)
        for desc in per_image:
            df[np.unique(self.assign(desc.astype(np.float32)))] += 1
        # smoothed idf (as scikit-learn's TfidfTransformer): >= 1, so a word present in every
        # sample image is down-weighted but never zeroed; with plain log(N/df) a small collection
        # whose images all contain every word would embed to all-zero vectors.
        self.idf = (np.log((1.0 + len(per_image)) / (1.0 + df)) + 1.0).astype(np.float32)

    def assign(self, desc: np.ndarray) -> np.ndarray:
        """The nearest visual word of each descriptor."""
        import faiss

        if self._index is None:
            self._index = faiss.IndexFlatL2(self.vocabulary.shape[1])
            self._index.add(self.vocabulary)
        _, words = self._index.search(np.ascontiguousarray(desc, dtype=np.float32), 1)
        return words[:, 0]

    def _tfidf(self, desc: np.ndarray) -> np.ndarray:
        if len(desc) == 0:
            return np.zeros(self.vocab_size, np.float32)
        tf = np.bincount(self.assign(desc), minlength=self.vocab_size).astype(np.float32) / len(desc)
        idf = self.idf if self.idf is not None else np.ones(self.vocab_size, np.float32)
        return tf * idf

    # -- persistence ---------------------------------------------------------------------------
    def artifact_names(self) -> tuple[str, str]:
        return f"vocabulary-{self.detector}-{self.vocab_size}.npy", f"idf-{self.detector}-{self.vocab_size}.npy"

    def save(self, index_dir: Path) -> None:
        """Write the vocabulary and idf weights as .npy files in `index_dir` (atomically)."""
        import io

        from ..fileio import atomic_write_bytes

        if self.vocabulary is None:
            raise ReslabError(f"the {self.detector} bag of visual words has no vocabulary to save; call fit() first")
        for name, array in zip(self.artifact_names(), (self.vocabulary, self.idf)):
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            atomic_write_bytes(Path(index_dir) / name, buf.getvalue())

    def manifest(self) -> dict:
        vocabulary, idf = self.artifact_names()
        return {
            "method": self.method,
            "params": {
                "detector": self.detector,
                "vocab_size": self.vocab_size,
                "max_keypoints": self.max_keypoints,
                "image_size": self.image_size,
                "max_fit_descriptors": self.max_fit_descriptors,
                "seed": self.seed,
            },
            "vocabulary": vocabulary,
            "idf": idf,
        }

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path) -> "BoVWEmbedder":
        params = dict(manifest.get("params", {}))
        params.setdefault("detector", manifest.get("method", "sift"))
        arrays = []
        for key in ("vocabulary", "idf"):
            path = Path(index_dir) / manifest.get(key, "")
            if not manifest.get(key) or not path.is_file():
                raise ReslabError(f"the index in {index_dir} lacks its {key} file {path.name}; rebuild it with `reslab embed`")
            try:
                arrays.append(np.load(path, allow_pickle=False).astype(np.float32))
            except (OSError, ValueError) as e:
                raise ReslabError(f"cannot read {path}: {e}; rebuild the index with `reslab embed`") from None
        vocabulary, idf = arrays
        if vocabulary.shape[0] != params.get("vocab_size", vocabulary.shape[0]) or idf.shape != (vocabulary.shape[0],):
            raise ReslabError(f"the vocabulary files in {index_dir} do not match its manifest; rebuild it with `reslab embed`")
        return cls(**params, vocabulary=vocabulary, idf=idf)


def descriptors_as_float(desc: np.ndarray | None, detector: str) -> np.ndarray:
    """OpenCV descriptors -> float32: RootSIFT for SIFT, unpacked 0/1 bits for ORB."""
    if desc is None or len(desc) == 0:
        return np.zeros((0, 128 if detector == "sift" else 256), np.float32)
    if detector == "orb":
        return np.unpackbits(desc, axis=1).astype(np.float32)
    desc = desc.astype(np.float32)
    return np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-7))


def make_classical_embedder(method: str, **params):
    """The classical embedder for `method` (hog, hist, sift, orb) with its parameters."""
    import inspect

    classes = {"hog": HogEmbedder, "hist": ColorHistEmbedder, "sift": BoVWEmbedder, "orb": BoVWEmbedder}
    if method not in classes:
        raise ReslabError(f"unknown classical method '{method}'; use one of {', '.join(CLASSICAL_METHODS)}")
    if method in ("sift", "orb"):
        params["detector"] = method
    known = [p for p in inspect.signature(classes[method]).parameters if p not in ("vocabulary", "idf")]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ReslabError(f"the {method} embedder has no option {', '.join(unknown)}; its options are {', '.join(known)}")
    return classes[method](**params)



def classical_from_manifest(manifest: dict, index_dir: Path):
    """Rebuild the classical embedder an index was made with (its vocabulary read from index_dir)."""
    method = manifest.get("method")
    classes = {"hog": HogEmbedder, "hist": ColorHistEmbedder, "sift": BoVWEmbedder, "orb": BoVWEmbedder}
    if method not in classes:
        raise ReslabError(f"unknown classical method '{method}' in the index manifest; rebuild the index with `reslab embed`")
    return classes[method].from_manifest(manifest, index_dir)
