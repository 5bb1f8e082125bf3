"""The embedder protocol, and what every method shares: normalisation and manifest identity.

An embedder turns images into L2-normalised float32 rows. `preprocess` runs in decode worker
processes (so it must be picklable and cheap); `embed` runs in the main process on a batch of
preprocessed inputs. `manifest()` records everything needed to rebuild the same embedder, and an
index re-creates its embedder from that record, so a query is always embedded the way the
collection was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Protocol, runtime_checkable

import numpy as np
from PIL import Image

CLASSICAL_METHODS = ("hog", "hist", "sift", "orb")
HASH_METHODS = ("ahash", "dhash", "phash", "whash")  # reslab.embeddings.hashes: binary index, Hamming distance
METHODS = ("cnn",) + CLASSICAL_METHODS + HASH_METHODS
# manifest keys that must agree for two embedders to produce comparable vectors
IDENTITY_KEYS = ("method", "model", "weights_sha256", "layer", "params")


@runtime_checkable
class Embedder(Protocol):
    method: str
    dim: int
    needs_fit: bool

    def preprocess(self, image: Image.Image): ...

    def embed(self, batch: list) -> np.ndarray: ...

    def fit(self, samples: Iterable[Image.Image]) -> None: ...

    def manifest(self) -> dict: ...

    @classmethod
    def from_manifest(cls, manifest: dict, index_dir: Path) -> "Embedder": ...


class Stateless:
    """For embedders with nothing to learn from the collection and nothing to store beside the
    index (HOG, colour histograms, perceptual hashes): `fit` and `save` do nothing."""

    def fit(self, samples: Iterable[Image.Image]) -> None:
        pass

    def save(self, index_dir: Path) -> None:
        pass


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row (a featureless image) stays zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def identity(manifest: dict) -> dict:
    """The part of a manifest that decides whether two embedders' vectors are comparable."""
    out = {k: manifest.get(k) for k in IDENTITY_KEYS}
    if manifest.get("method") == "cnn":  # older indexes record no pooling: they pooled the original way
        from ..inference.pooling import Pooling

        out["params"] = Pooling.from_params(manifest.get("params") or {}).as_params()
    return out


def describe(manifest: dict) -> str:
    """A short name for the embedder of a manifest: "cnn resnet50 (imagenet)", "orb (vocab 256)"."""
    if manifest.get("method") == "cnn":
        from ..inference.pooling import Pooling

        src = manifest.get("run") or manifest.get("exported") or manifest.get("weights")
        layer = f", layer {manifest['layer']}" if manifest.get("layer") else ""
        p = Pooling.from_params(manifest.get("params") or {})
        extra = ("" if p.pool == "avg" else f", gem p={p.gem_p:g}") + (", flip" if p.flip else "")
        extra += (f", scales {'/'.join(f'{x:g}' for x in p.scales)}" if p.scales != (1.0,) else "")
        extra += (f", + {'+'.join(p.layers)}" if p.layers else "") + (", small images whole" if p.whole_small else "")
        return f"cnn {manifest.get('model')} ({src}{layer}{extra})"
    params = manifest.get("params") or {}
    if "hash_size" in params:
        return f"{manifest.get('method')} ({params['hash_size'] ** 2} bits)"
    return f"{manifest.get('method')}" + (f" (vocab {params['vocab_size']})" if "vocab_size" in params else "")


def describe_difference(a: dict, b: dict) -> tuple[str, str]:
    """How two embedder manifests differ, each side in a few words (for refusal messages)."""
    if describe(a) != describe(b):
        return describe(a), describe(b)
    pa, pb = a.get("params") or {}, b.get("params") or {}
    keys = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
    if keys:
        fmt = lambda p: ", ".join(f"{k}={p.get(k)}" for k in keys)  # noqa: E731
        return f"{describe(a)} [{fmt(pa)}]", f"{describe(b)} [{fmt(pb)}]"
    return f"{describe(a)} [weights {str(a.get('weights_sha256'))[:12]}]", f"{describe(b)} [weights {str(b.get('weights_sha256'))[:12]}]"
