"""Which embedder a method name means, and rebuilding an index's embedder from its manifest."""

from __future__ import annotations

from pathlib import Path

from ..errors import ReslabError
from .base import CLASSICAL_METHODS, HASH_METHODS, METHODS, Embedder

# options of the CNN path (how the network runs) that mean nothing to classical descriptors
RUNTIME_OPTIONS = ("device", "runtime", "precision", "batch_size")
# the CNN's retrieval descriptor (reslab.inference.pooling), recorded in an index's params
POOLING_OPTIONS = ("pool", "gem_p", "scales", "flip", "layers", "whole_small")


def make_embedder(method: str = "cnn", *, model: str = "efficientnet_lite0", weights: str | None = "imagenet", run=None, layer=None, **params) -> Embedder:
    """The embedder for `method`: "cnn" (a zoo model, a trained run, an exported file), a classical
    descriptor (hog, hist, sift, orb) or a perceptual hash (ahash, dhash, phash, whash).

    params: for "cnn", runtime options (device, runtime, precision, batch_size) and the descriptor's
    (pool, gem_p, scales, flip, layers, whole_small; default `reslab.inference.pooling.DEFAULT_PARAMS`); the
    descriptor's options for classical methods (e.g. vocab_size=512 for sift/orb); hash_size for hashes.
    """
    if method == "cnn":
        from ..inference.pooling import DEFAULT_PARAMS
        from .cnn import CnnEmbedder

        unknown = sorted(set(params) - set(POOLING_OPTIONS) - set(RUNTIME_OPTIONS))
        if unknown:
            raise ReslabError(f"the cnn embedder has no option {', '.join(unknown)}; its options are {', '.join(POOLING_OPTIONS)}")
        return CnnEmbedder(model=model, weights=weights, run=run, layer=layer, **{**DEFAULT_PARAMS, **params})
    # runtime options of the CNN path mean nothing to classical descriptors and hashes
    params = {k: v for k, v in params.items() if k not in RUNTIME_OPTIONS}
    if method in HASH_METHODS:
        from .hashes import HashEmbedder

        unknown = sorted(set(params) - {"hash_size"})
        if unknown:
            raise ReslabError(f"the {method} hash has no option {', '.join(unknown)}; its only option is hash_size (bits = hash_size^2)")
        return HashEmbedder(method, **params)
    return _classical_module(method).make_classical_embedder(method, **params)


def embedder_from_manifest(manifest: dict, index_dir: Path, **runtime) -> Embedder:
    """Rebuild the embedder an index was made with (runtime: device, runtime, precision, batch_size for CNNs)."""
    method = manifest.get("method")
    if method == "cnn":
        from .cnn import CnnEmbedder

        return CnnEmbedder.from_manifest(manifest, Path(index_dir), **runtime)
    if method in HASH_METHODS:
        from .hashes import HashEmbedder

        return HashEmbedder.from_manifest(manifest, Path(index_dir))
    return _classical_module(method).classical_from_manifest(manifest, Path(index_dir))


def _classical_module(method: str):
    if method not in CLASSICAL_METHODS:
        raise ReslabError(f"unknown embedding method '{method}'; choose one of {', '.join(METHODS)}")
    from . import classical

    return classical
