"""How similar are two images? One score per method.

- cnn, hog, hist: cosine similarity of the two embeddings (1 = identical features).
  cnn embeds with a zoo model's pooled pre-logits features (EfficientNet-Lite0 ImageNet weights
  by default), built by `reslab.embeddings.make_embedder`, as `reslab embed` builds it.
- sift, orb: geometric verification, not a bag of words: RANSAC homography inliers /
  min(keypoints in A, keypoints in B) (see `reslab.features.matching`), with the matches to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ReslabError
from .matching import MatchResult, draw_matches, match_images

COMPARE_METHODS = ("cnn", "sift", "orb", "hog", "hist")


@dataclass(frozen=True)
class Comparison:
    method: str
    score: float
    matches: MatchResult | None = None  # sift and orb only

    def as_dict(self) -> dict:
        out = {"method": self.method, "score": round(float(self.score), 6)}
        if self.matches is not None:
            out.update({k: v for k, v in self.matches.summary().items() if k not in ("score", "detector")})
        return out


def embedder_for(method: str, model: str = "efficientnet_lite0", weights: str | None = "imagenet"):
    """An `Embedder` for cnn, hog or hist: the same ones `reslab embed` builds indexes with."""
    from ..embeddings import make_embedder

    if method == "cnn":
        return make_embedder("cnn", model=model, weights=weights)
    return make_embedder(method)


def cosine_of_embeddings(embedder, image_a: Image.Image, image_b: Image.Image) -> float:
    vectors = np.asarray(embedder.embed([embedder.preprocess(image_a), embedder.preprocess(image_b)]), np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    if norms.min() == 0:
        return 0.0
    return float(vectors[0] @ vectors[1] / (norms[0] * norms[1]))


def compare_images(
    image_a: Image.Image | str | Path,
    image_b: Image.Image | str | Path,
    method: str = "cnn",
    model: str = "efficientnet_lite0",
    weights: str | None = "imagenet",
    embedder=None,
) -> Comparison:
    """Score how similar two images are with `method` (see the module doc). Paths or PIL images.

    `embedder`: reuse an already built embedder for cnn/hog/hist (e.g. when comparing many pairs).
    """
    from ..imageio import load_image

    if method not in COMPARE_METHODS:
        raise ReslabError(f"unknown comparison method '{method}'; use one of {', '.join(COMPARE_METHODS)}")
    a = image_a if isinstance(image_a, Image.Image) else load_image(image_a)
    b = image_b if isinstance(image_b, Image.Image) else load_image(image_b)
    if method in ("sift", "orb"):
        result = match_images(a, b, detector=method)
        return Comparison(method, result.score, result)
    embedder = embedder or embedder_for(method, model, weights)
    return Comparison(method, cosine_of_embeddings(embedder, a, b))


def save_match_image(image_a, image_b, comparison: Comparison, out: str | Path) -> Path:
    """Draw the inlier matches of a sift/orb comparison into a PNG at `out` (atomically)."""
    import io

    from ..fileio import atomic_write_bytes
    from ..imageio import load_image

    if comparison.matches is None:
        raise ReslabError(f"a {comparison.method} comparison has no keypoint matches to draw; use --method sift or orb")
    a = image_a if isinstance(image_a, Image.Image) else load_image(image_a)
    b = image_b if isinstance(image_b, Image.Image) else load_image(image_b)
    buf = io.BytesIO()
    draw_matches(a, b, comparison.matches).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
