"""Similarity search: embed a folder of images, search it, find duplicates, measure retrieval.

    from reslab.search import SearchIndex, build_index, make_embedder
    build_index("photos/", "photos.index", make_embedder("cnn", model="efficientnet_lite0"))
    SearchIndex.open("photos.index").search_image("query.jpg", k=5)
    build_index("photos/", "photos.index", store="milvus://host:19530")   # the index kept in Milvus
    build_index("photos/", "photos.index", options=EmbedOptions(post=PostOptions(whiten_from="generic.index")))
    build_index("photos/", "photos.index", options=EmbedOptions(post=PostOptions(dba=3, qe=5, rerank=True, rerank_k1=30)))
    copy_index("photos.index", "photos-copy.index")                      # between stores, streamed
"""

from .copy import CopyReport, copy_index
from .embed import EmbedOptions, EmbedReport, build_index
from ..embeddings import CnnEmbedder, Embedder, embedder_from_manifest, make_embedder
from .index import Hit, SearchIndex
from .postprocess import PostOptions
from .sharding import merge_indexes
from .store import Item
from .stores import IndexStore, open_store

__all__ = [
    "CnnEmbedder",
    "CopyReport",
    "EmbedOptions",
    "EmbedReport",
    "Embedder",
    "Hit",
    "IndexStore",
    "Item",
    "PostOptions",
    "SearchIndex",
    "build_index",
    "copy_index",
    "embedder_from_manifest",
    "make_embedder",
    "merge_indexes",
    "open_store",
]
