"""Embedders: images -> L2-normalised vectors, one protocol for CNN features and classical descriptors.

    from reslab.embeddings import make_embedder

    cnn = make_embedder("cnn", model="efficientnet_lite0", runtime="auto")  # any spec reslab.inference loads
    orb = make_embedder("orb", vocab_size=256)                               # HOG, histograms, SIFT/ORB BoVW
    ph = make_embedder("phash")                                              # perceptual hashes (binary index)

This layer sits below `search/`, `features/` and `web/`, and above `reslab.inference`, which
loads and runs the networks; it imports neither search nor train.
"""

from .cnn import CnnEmbedder
from .base import CLASSICAL_METHODS, HASH_METHODS, METHODS, Embedder, describe, describe_difference, identity, l2_normalize
from .methods import embedder_from_manifest, make_embedder

__all__ = [
    "CLASSICAL_METHODS",
    "HASH_METHODS",
    "METHODS",
    "CnnEmbedder",
    "Embedder",
    "describe",
    "describe_difference",
    "embedder_from_manifest",
    "identity",
    "l2_normalize",
    "make_embedder",
]
