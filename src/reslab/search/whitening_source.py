"""PCA-whitening fitted on another index (`reslab embed FOLDER --out X --whiten-from OTHER`).

A whitening inverts the covariance of the descriptors; estimated on the few hundred photos of one folder
it amplifies noise (docs/search.md: -5 to -30 points of P@10), estimated on a larger collection of the
same kind of photos it lifts retrieval. The other index must hold vectors of the same embedder (same
network, weights, layer and pooling parameters), or its covariance describes another space.

The fitted whitening is stored in the new index's manifest like its own whitening (base64 float32 +
sha256), with where it came from ({"index", "count", "updated", "embedder"}). When `reslab embed`
finalises the index again, the whitening is refitted if the other index has changed since, kept as
it is if it has not, and kept (with a note in the log) if the other index is gone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..embeddings import describe, describe_difference, identity
from ..errors import ReslabError
from .postprocess import PostOptions, Postprocess
from .stores import IndexMissing, open_store

log = logging.getLogger(__name__)


def source_path(whiten_from: str | Path) -> str:
    """The other index's folder as the manifest records it (absolute)."""
    return str(Path(whiten_from).expanduser().resolve())


def check_source(options: PostOptions, manifest: dict, target: str | Path | None = None) -> dict:
    """Refuse, before anything is embedded, another index that cannot whiten this one; its description.

    manifest: the new index's (its embedder's identity); target: the new index's folder."""
    where = source_path(options.whiten_from)
    if target is not None and Path(where) == Path(target).expanduser().resolve():
        raise ReslabError(f"--whiten-from {options.whiten_from} is the index being built; use --whiten to fit the whitening on "
                          "its own collection, or give another index")  # fmt: skip
    try:
        with open_store(where) as st:
            source = st.read_manifest() or {}
            count = len(st)
    except IndexMissing:
        raise ReslabError(f"--whiten-from {options.whiten_from}: there is no index there; build one from a larger collection of "
                          f"the same kind of photos first (`reslab embed PHOTOS --out {options.whiten_from}`)") from None  # fmt: skip
    if "count" not in source:
        raise ReslabError(f"--whiten-from {options.whiten_from}: that index is incomplete (its first `reslab embed` run did not "
                          "finish); rerun it to resume, then embed this folder again")  # fmt: skip
    if source.get("metric") == "hamming":
        raise ReslabError(f"--whiten-from {options.whiten_from} holds perceptual hashes; whitening needs an index of vectors "
                          "built with the same embedder as this one")  # fmt: skip
    if identity(source) != identity(manifest):
        theirs, ours = describe_difference(source, manifest)
        raise ReslabError(f"--whiten-from {options.whiten_from} was built with {theirs}, but this index with {ours}; whitening is "
                          "only valid on vectors of the same embedder: give an index embedded with the same --model, --weights and "
                          "--param, or drop --whiten-from")  # fmt: skip
    need = 2 * options.whiten_dim
    if count < need:
        raise ReslabError(f"--whiten-from {options.whiten_from} holds {count} items; a whitening to {options.whiten_dim} axes "
                          f"needs at least {need} to estimate the covariance it inverts: embed more photos into it, or "
                          f"lower --whiten-dim to {max(1, count // 2)}")  # fmt: skip
    return {"index": where, "count": count, "updated": source.get("updated"), "embedder": describe(source)}


def fit_from_source(options: PostOptions, manifest: dict, previous: Postprocess | None) -> Postprocess:
    """The post-processing of an index whitened on another one (see the module docstring for when it is refitted)."""
    where = source_path(options.whiten_from)
    kept = previous if previous is not None and previous.whitening is not None and previous.source else None
    if kept is not None and (kept.source.get("index") != where or kept.options.whiten_dim != options.whiten_dim
                             or kept.options.whiten_shrinkage != options.whiten_shrinkage):  # fmt: skip
        kept = None  # another source or other whitening options: fit anew
    if kept is not None and not Path(where).exists():
        log.info("the whitening source %s is gone; keeping the whitening fitted on it (%d items)", where, kept.source["count"])
        return Postprocess(options, kept.whitening, kept.source)
    source = check_source(options, manifest)
    if kept is not None and {k: kept.source.get(k) for k in ("count", "updated")} == {k: source[k] for k in ("count", "updated")}:
        return Postprocess(options, kept.whitening, kept.source)  # the source has not changed: the same fit
    with open_store(where) as st:
        _ids, vectors = st.all_vectors()
    log.info("fitting the whitening on %s (%d items)", where, len(vectors))
    return Postprocess.fit_on_source(options, vectors.reshape(-1, int(manifest["dim"])), source)
