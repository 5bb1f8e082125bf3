"""The incremental, resumable indexing pipeline behind `reslab embed`.

    walk (generator) -> decode + preprocess in worker processes -> batches -> embedder
        -> chunks committed to the index's store (local SQLite + vector shards, or Milvus)
        -> (end of run) the search structure + manifest

Only new or changed files are embedded: a file whose size and mtime match its row is skipped
without being read; one whose stat changed is hashed, and re-embedded only if its bytes did.
Work is committed in chunks, so a run killed at any point resumes where it stopped. Memory is
bounded by the decode window and one chunk, whatever the size of the folder.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


from .. import __version__
from ..errors import ReslabError
from ..embeddings import Embedder, describe, describe_difference, embedder_from_manifest, identity
from ..processes import FolderLock, StopRequests, WorkerInit, signal_name, stop_on_signals, stop_signals_blocked
from .postprocess import PostOptions, Postprocess
from .store import NewItem
from .stores import IndexMissing, IndexStore, open_store
from .walk import Decoded, decode_file, decode_many, label_of, shard_of, walk_images

log = logging.getLogger(__name__)

ARTIFACT_KEYS = ("vocabulary", "idf")  # manifest keys naming files an embedder keeps with its index (bag of visual words)


@dataclass(frozen=True)
class EmbedOptions:
    batch_size: int = 32  # images per forward pass
    workers: int | None = None  # decode processes; 0 decodes in this process; None: reslab.inference.threads.decode_workers()
    chunk_size: int = 256  # images per committed transaction (the most a kill can lose)
    index_kind: str = "auto"  # flat | ivf | hnsw | auto (flat below 100k items)
    nprobe: int = 16  # IVF cells searched per query
    ef_search: int = 64  # HNSW candidate list per query
    fit_samples: int = 300  # images used to fit a bag-of-words vocabulary
    post: PostOptions | None = None  # whitening, DBA, QE; None: the index's own, or DEFAULT_POST for a new index
    rank: int = 0  # this process's shard (under torchrun)
    world_size: int = 1
    progress: bool = True


@dataclass
class EmbedReport:
    embedded: int = 0  # new or changed files embedded in this run
    unchanged: int = 0  # skipped: same size and mtime, or same bytes
    removed: int = 0  # dropped: the file is gone
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), new in this run
    known_bad: int = 0  # failed before and unchanged since: not retried
    count: int = 0  # items in the index after the run
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.count} items: {self.embedded} embedded, {self.unchanged} unchanged, {self.removed} removed, "
            f"{len(self.bad)} bad" + (f" (+{self.known_bad} known bad, not retried)" if self.known_bad else "") + f" in {self.seconds:.1f} s"
        )


def read_manifest(index: str | Path, store: str | None = None) -> dict | None:
    """The manifest of an index wherever it is stored, or None when there is no index yet."""
    try:
        with open_store(index, store) as st:
            return st.read_manifest()
    except IndexMissing:
        return None


def load_index_embedder(index: str | Path, store: str | None = None, runtime: dict | None = None) -> Embedder:
    """The embedder an existing index was built with, run the way `runtime` asks (device, runtime, precision, batch_size)."""
    with open_store(index, store) as st:
        return index_embedder(st, st.read_manifest(), runtime)


def check_same_embedder(existing: dict, requested: dict, index_name) -> None:
    """Refuse to mix vectors of two embedders in one index (they are not comparable)."""
    # a bag of words compares its options here; its fitted vocabulary is the index's own
    if identity(existing) != identity(requested):
        was, now = describe_difference(existing, requested)
        raise ReslabError(
            f"the index {index_name} was built with {was}, not {now}; "
            "use another --out for a new index, or drop the options to use the index's own embedder"
        )


def check_requested(existing: dict, index_name, method=None, model=None, layer=None, run=None) -> None:
    """Refuse, before loading anything, options that contradict the embedder an index was built with."""
    wanted = {"method": method, "model": model, "layer": layer, "run": str(run) if run is not None else None}
    wrong = [f"{k} '{v}'" for k, v in wanted.items() if v is not None and v != existing.get(k)]
    if wrong:
        raise ReslabError(
            f"the index {index_name} was built with {describe(existing)}, not {', '.join(wrong)}; "
            "use another --out for a new index, or drop the options to use the index's own embedder"
        )


def index_embedder(store: IndexStore, manifest: dict, runtime: dict | None = None) -> Embedder:
    """The embedder an index was built with (runtime: device, runtime, precision, batch_size for a CNN)."""
    return embedder_from_manifest(manifest, store.files_dir(), **((runtime or {}) if manifest.get("method") == "cnn" else {}))


def prepare_embedder(store: IndexStore, embedder: Embedder | None, runtime: dict | None = None) -> Embedder:
    """The embedder for an index: the index's own when it exists (checked against `embedder`), else `embedder`."""
    existing = store.read_manifest()
    if existing is None:
        if embedder is None:
            from ..embeddings import make_embedder

            embedder = make_embedder("cnn", **(runtime or {}))
        return embedder
    if embedder is not None:
        check_same_embedder(existing, {**embedder.manifest(), "needs_fit": embedder.needs_fit}, store.describe())
        if not embedder.needs_fit:
            return embedder
    return index_embedder(store, existing, runtime)


def build_index(
    src: str | Path,
    out: str | Path,
    embedder: Embedder | None = None,
    options: EmbedOptions = EmbedOptions(),
    on_commit: Callable[[int], None] | None = None,
    store: str | None = None,
) -> EmbedReport:
    """Create or update the index `out` from the images under `src`; returns what was done.

    store: where the index lives: None (the local folder `out`, or what `out` records), or a
    Milvus URI (milvus:///path/photos.db, milvus://host:19530), the collection named after `out`.
    on_commit(n_committed_chunks) runs after each committed chunk (progress hooks, tests).
    """
    t0 = time.perf_counter()
    root = source_folder(src)
    # another index to whiten on is checked before anything is created or embedded
    checked = _check_whitening_source(options, embedder.manifest() if embedder is not None else read_manifest(out, store), out)
    with open_store(out, store, create=True) as st, writer_lock(st):
        embedder, manifest = prepare_index(st, root, embedder, options)
        if not checked:  # a new index of the default embedder: known only now
            _check_whitening_source(options, manifest, out)
        report = embed_files(st, embedder, root, options, on_commit)
        # the runtime a CNN ran on is known once it ran: queries and updates then run the same way
        ran_on = embedder.manifest().get("runtime")
        finalize(st, {**manifest, **({"runtime": ran_on} if ran_on else {})}, options)
        report.count = len(st)
    report.seconds = time.perf_counter() - t0
    for path, reason in report.bad:
        log.warning("skipped %s: %s", path, reason)
    return report


def _check_whitening_source(options: EmbedOptions, manifest: dict | None, out: str | Path) -> bool:
    """Whether `options` ask for no other index to whiten on, or the one they ask for suits `manifest`'s embedder."""
    if options.post is None or options.post.whiten_from is None:
        return True
    if manifest is None:
        return False
    from .whitening_source import check_source

    check_source(options.post, manifest, out)
    return True


def writer_lock(store: IndexStore) -> contextlib.AbstractContextManager:
    """One writing process per local index folder: a second `reslab embed` into it is refused
    (a Milvus server orders its clients' writes itself)."""
    folder = getattr(store, "dir", None)
    return FolderLock(folder, f"the index {folder}") if folder is not None else contextlib.nullcontext()


def source_folder(src: str | Path) -> Path:
    root = Path(src).expanduser().resolve()
    if not root.is_dir():
        raise ReslabError(f"{src} is not a folder; give the folder of images to index")
    return root


def prepare_index(store: IndexStore, root: Path, embedder: Embedder | None, options: EmbedOptions, announce: bool = True) -> tuple[Embedder, dict]:
    """Check `root` and `embedder` against an existing index, or create the index.

    announce: mark the manifest "building" (a new index) or "updating": what a reader finds if this
    run never finishes, even after a kill -9 (the other ranks of a sharded run leave that to rank 0).
    """
    existing = store.read_manifest()
    if existing is not None and existing.get("root") and existing["root"] != str(root):
        raise ReslabError(f"the index {store.describe()} was built from {existing['root']}, not {root}; use another --out for another folder")
    embedder = prepare_embedder(store, embedder)
    manifest = existing or {}
    if existing is None:
        if embedder.needs_fit:
            _fit(embedder, root, options, store)
        manifest = _base_manifest(embedder, root, options)
    if announce:
        store.write_manifest({**manifest, "status": "building" if existing is None else "updating"})
    return embedder, {**manifest, **_base_manifest(embedder, root, options), "created": manifest.get("created")}


def embed_files(store: IndexStore, embedder: Embedder, root: Path, options: EmbedOptions, on_commit=None) -> EmbedReport:
    """Embed the new and changed files of this writer's share of `root`, drop the removed ones.

    Ctrl-C or SIGTERM (to the process or its group) commits what was embedded, marks the manifest
    "interrupted" and re-raises KeyboardInterrupt: a rerun continues after the committed items.
    """
    report = EmbedReport()
    with stop_on_signals() as stop:  # still handled while the stop is recorded: a repeat of the signal is not fatal
        try:
            _embed_new_files(store, embedder, root, options, report, on_commit, stop)
        except KeyboardInterrupt as interrupt:
            cause = signal_name(getattr(interrupt, "signum", signal.SIGINT))
            store.write_manifest({**(store.read_manifest() or {}), "status": "interrupted", "signal": cause})
            log.warning("%s: stopped with %d items committed; run the same command again to finish the index", cause, len(store))
            raise
    owns = None
    if options.world_size > 1:
        owns = lambda path: shard_of(Path(path).relative_to(root).as_posix(), options.world_size) == options.rank  # noqa: E731
    report.removed = store.delete_unseen(owns)
    store.compact()
    return report


def finalize(store: IndexStore, manifest: dict, options: EmbedOptions) -> dict:
    """Make the search structure match the committed vectors and write the final manifest.

    With whitening or DBA (`options.post`, else the index's own), they are fitted on the collection's
    vectors and the search structure is built over the transformed ones."""
    post_options = post_options_for(manifest, options, store.kind)
    post = Postprocess(PostOptions())
    if post_options.whiten or post_options.dba or post_options.qe or post_options.rerank:
        if manifest.get("metric") == "hamming":
            raise ReslabError("whitening, DBA, query expansion and re-ranking apply to vectors, not to perceptual hashes; drop them "
                              f"for --method {manifest.get('method')}")  # fmt: skip
        local_only = post_options.whiten or post_options.dba or post_options.rerank
        if local_only and store.kind != "local" and options.post is None:
            # inherited (an index copied or merged into this store): keep what this store can do
            log.warning("the %s store keeps indexed vectors as they are: whitening, DBA and re-ranking dropped, QE kept", store.kind)
            post_options = PostOptions(qe=post_options.qe, alpha=post_options.alpha)
        if (post_options.whiten or post_options.dba or post_options.rerank) and store.kind != "local":
            raise ReslabError(f"whitening, DBA and re-ranking need the indexed vectors' own search structure, which the {store.kind} "
                              "store keeps as it is; drop --whiten/--dba/--rerank for this store (--qe works), or use a local index")  # fmt: skip
        if post_options.whiten_from is not None:  # the whitening comes from another index (its vectors, not these)
            from .whitening_source import fit_from_source

            previous = Postprocess.from_manifest(manifest) if manifest.get("postprocess") else None
            post = fit_from_source(post_options, manifest, previous)
        else:
            _ids, vectors = store.all_vectors()
            post = Postprocess.fit(post_options, vectors.reshape(-1, int(manifest["dim"])))
    searched: dict = {}  # the rows the search structure holds, kept for the re-ranking graph

    def transform(v):
        searched["rows"] = post.database(post.transform(v))
        return searched["rows"]

    changes_rows = post.whitening is not None or post.options.dba or post.options.rerank
    kind = store.build_search(options.index_kind, options.nprobe, options.ef_search, transform=transform if changes_rows else None)
    if post.options.rerank:
        from .rerank import fit_rerank

        post.rerank_graph = fit_rerank(store, searched.get("rows"), post.options.rerank_k1)
    manifest = {
        **manifest,
        "postprocess": post.to_manifest(),
        "index_dim": int(post.dim_out or manifest["dim"]),
        "count": len(store),
        "index_kind": kind,
        "nprobe": options.nprobe,
        "ef_search": options.ef_search,
        "status": "complete",
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest["created"] = manifest.get("created") or manifest["updated"]
    store.write_manifest(manifest)
    if store.kind == "local":  # graph files of earlier runs, now that the manifest names the current one
        from .rerank import remove_stale_graphs

        remove_stale_graphs(store.files_dir(), (post.rerank_graph or {}).get("file"))
    return manifest


# a new index without explicit options: DBA over 3 neighbours and alpha-QE over 5 results (+1-3 points of
# P@10 and +2-5 of mAP on every selection folder); no whitening (fitted on a few hundred images it cost 5-30
# points); k-reciprocal re-ranking k1 30, k2 1, lambda 0.5 (+1.2 points of P@10 and +1.5 of mAP on the
# selection mean, P@1 -0.4; fitted from 61 to 1M items, finalize time about DBA's); see docs/search.md
DEFAULT_POST = PostOptions(dba=3, qe=5, rerank=True)


def post_options_for(manifest: dict, options: EmbedOptions, store_kind: str = "local") -> PostOptions:
    """The post-processing to fit: as asked, else the index's own, else the default for a new index.

    The default was measured on CNN descriptors in the local store (DBA transforms the indexed rows,
    which only the local store's FAISS index holds): other methods and stores get none unless asked."""
    if options.post is not None:
        return options.post
    if "postprocess" in manifest:  # an index built since these options existed: keep what it chose
        return Postprocess.options_of(manifest)
    new_index = manifest.get("status") == "building" or "count" not in manifest
    return DEFAULT_POST if new_index and manifest.get("method") == "cnn" and store_kind == "local" else PostOptions()


def _base_manifest(embedder: Embedder, root: Path, options: EmbedOptions) -> dict:
    m = embedder.manifest()
    return {
        **m,
        "dim": int(embedder.dim),
        # inner product on L2-normalised rows (cosine similarity); hashes: Hamming distance on their bits
        "metric": getattr(embedder, "metric", "inner_product"),
        "root": str(root),
        "reslab_version": __version__,
        "format": 1,
        "shard": {"rank": options.rank, "world_size": options.world_size} if options.world_size > 1 else None,
    }


def _fit(embedder: Embedder, root: Path, options: EmbedOptions, store: IndexStore) -> None:
    """Fit a bag-of-words vocabulary on an even spread of the collection (the first files would be one class)."""
    import tempfile

    from ..imageio import BadImageError, load_image

    paths = _spread_sample(root, options.fit_samples)
    log.info("fitting the %s vocabulary on %d images", embedder.method, len(paths))

    def images():
        for p in paths:
            try:
                yield load_image(p)
            except BadImageError:
                continue

    embedder.fit(images())
    if hasattr(embedder, "save"):
        with tempfile.TemporaryDirectory(prefix="reslab-embedder-") as folder:
            embedder.save(Path(folder))  # the vocabulary is kept with the index
            manifest = embedder.manifest()
            store.save_files(Path(folder), [manifest[k] for k in ARTIFACT_KEYS if isinstance(manifest.get(k), str)])


def _spread_sample(root: Path, want: int) -> list[Path]:
    """`want` files evenly spread over the walk: one pass to count, one to pick (no list of every path)."""
    total = sum(1 for _ in walk_images(root))
    step = max(1, total // max(1, want))
    return [p for i, p in enumerate(walk_images(root)) if i % step == 0][:want]


@dataclass(frozen=True)
class _Task:
    path: str
    size: int
    mtime: float
    label: str
    known_sha256: str | None


def _candidates(store: IndexStore, root: Path, options: EmbedOptions, report: EmbedReport, progress) -> Iterator[_Task]:
    """Files to (re-)read: new, or with a changed stat. Records every path seen, for deletions."""
    mine = (p for p in walk_images(root) if options.world_size == 1 or shard_of(p.relative_to(root).as_posix(), options.world_size) == options.rank)
    for group in _grouped(mine, 256):  # one lookup per group: a round trip to a server costs more than a file stat
        paths = [str(p) for p in group]
        store.mark_seen(paths)
        known = store.lookup_many(paths)
        stats = {}
        for path, p in zip(group, paths):
            try:
                stats[p] = path.stat()
            except OSError:  # a link loop or a vanished target: decoding reports it as bad, by name
                yield _Task(p, -1, 0.0, label_of(path, root), None)
        changed = set()
        for p, st in stats.items():
            row = known.get(p)
            if row is not None and row[1] == st.st_size and row[2] == st.st_mtime:
                report.unchanged += 1
                progress(1)
            else:
                changed.add(p)
        bad = store.bad_entries(sorted(changed)) if changed else {}
        for path, p in zip(group, paths):
            if p not in changed:
                continue
            st, entry = stats[p], bad.get(p)
            if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime:
                report.known_bad += 1
                progress(1)
                continue
            row = known.get(p)
            yield _Task(p, st.st_size, st.st_mtime, label_of(path, root), row[3] if row else None)


def resolved_workers(options: EmbedOptions) -> int:
    """The decode processes a run uses: as asked, else the threads policy's default for this machine."""
    if options.workers is not None:
        return options.workers
    from ..inference.threads import decode_workers

    return decode_workers()


def _decoded_stream(tasks: Iterator[_Task], embedder: Embedder, options: EmbedOptions) -> Iterator[tuple[_Task, Decoded]]:
    """Decode in worker processes, a bounded window ahead of the consumer, in input order."""
    min_size = getattr(embedder, "min_size", None)
    workers = resolved_workers(options)
    if workers <= 0:
        if DECODE_THREADS > 0:
            yield from _decoded_in_threads(tasks, embedder, options, min_size, DECODE_THREADS)
            return
        for t in tasks:
            yield t, decode_file(t.path, t.known_sha256, embedder.preprocess, min_size)
        return
    group = 4  # files per round trip: amortises pickling without starving the model
    window = max(4, workers * 4 + options.batch_size // group)
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    pending: deque = deque()
    # workers leave Ctrl-C/SIGTERM to this process (it commits, then stops) and die with it
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=WorkerInit(then=_worker_init))
    try:
        for tasks_group in _grouped(tasks, group):
            work = [(t.path, t.known_sha256) for t in tasks_group]
            with stop_signals_blocked():  # a submit may start the workers
                future = pool.submit(decode_many, work, embedder.preprocess, min_size)
            pending.append((tasks_group, future))
            while len(pending) > window:
                yield from _ready(pending.popleft())
        while pending:
            yield from _ready(pending.popleft())
    finally:
        # No cancel_futures: cancelling submitted work and then waiting can hang the executor forever
        # (CPython gh-94440, intermittent, seen in our test suite). On an error or Ctrl-C the bounded
        # window of pending decodes (a few dozen files) just finishes and is dropped.
        pool.shutdown(wait=True)


# --workers 0: decoding runs in this many threads of this process, up to two batches ahead of the
# network (0: between batches, in the main thread). Pillow releases the GIL while it decodes and
# resizes and the runtimes while they compute, so a thread overlaps decoding with the network
# without pickling or a second process (benchmarks/threads_policy.py; docs/inference.md, Threads).
DECODE_THREADS = 1


def _decoded_in_threads(tasks: Iterator[_Task], embedder: Embedder, options: EmbedOptions, min_size, threads: int) -> Iterator[tuple[_Task, Decoded]]:
    """Decode in `threads` threads of this process, in input order, a bounded window ahead."""
    from concurrent.futures import ThreadPoolExecutor

    pending: deque = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="reslab-decode") as pool:
        try:
            for t in tasks:
                pending.append((t, pool.submit(decode_file, t.path, t.known_sha256, embedder.preprocess, min_size)))
                while len(pending) > 2 * options.batch_size + threads:
                    t0, future = pending.popleft()
                    yield t0, future.result()
            while pending:
                t0, future = pending.popleft()
                yield t0, future.result()
        finally:
            for _, future in pending:  # a stop: what is queued is dropped, what runs finishes
                future.cancel()


def _ready(entry) -> Iterator[tuple[_Task, Decoded]]:
    tasks_group, future = entry
    yield from zip(tasks_group, future.result())


def _worker_init() -> None:
    # decode workers must not fight the main process's model for the cores
    os.environ["OMP_NUM_THREADS"] = "1"
    # No cv2.setNumThreads here: in a forked child whose parent already ran OpenMP code (faiss
    # k-means for a bag of words, numpy BLAS) it deadlocks; decode workers do not run OpenCV.
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _grouped(items: Iterator, n: int) -> Iterator[list]:
    group = []
    for item in items:
        group.append(item)
        if len(group) == n:
            yield group
            group = []
    if group:
        yield group


def _embed_new_files(store, embedder, root, options, report, on_commit, stop: StopRequests) -> None:
    """Embed and commit, chunk by chunk. On Ctrl-C or SIGTERM the items embedded so far are
    committed before the run stops, so a rerun starts after them."""
    store.start_walk()
    with _progress(root, options) as progress:
        batch: list[tuple[_Task, Decoded]] = []
        chunk: list[NewItem] = []
        bad: list[tuple[str, int, float, str]] = []
        touched: list[tuple[str, int, float]] = []
        commits = 0

        def run_batch():
            vectors = embedder.embed([d.data for _, d in batch])
            for (t, d), v in zip(batch, vectors):
                chunk.append(NewItem(t.path, t.size, t.mtime, d.sha256, t.label, d.width, d.height, v))
            progress(len(batch))
            batch.clear()

        def commit():
            nonlocal commits
            with stop.critical():  # a signal waits for the chunk's transaction (and is not committed twice)
                store.commit(chunk, bad, touched)
                report.embedded += len(chunk)
                chunk.clear(), bad.clear(), touched.clear()
                commits += 1
            if on_commit is not None:
                on_commit(commits)
            stop.check()

        try:
            for task, decoded in _decoded_stream(_candidates(store, root, options, report, progress), embedder, options):
                if decoded.unchanged:
                    touched.append((task.path, task.size, task.mtime))
                    report.unchanged += 1
                    progress(1)
                elif decoded.error is not None:
                    bad.append((task.path, task.size, task.mtime, decoded.error))
                    report.bad.append((task.path, decoded.error))
                    progress(1)
                else:
                    batch.append((task, decoded))
                    if len(batch) >= options.batch_size:
                        with stop.critical():
                            run_batch()
                        stop.check()
                if len(chunk) >= options.chunk_size:
                    commit()
            if batch:
                run_batch()
            if chunk or bad or touched:
                commit()
        except KeyboardInterrupt as interrupt:
            if getattr(interrupt, "safe", True) and (chunk or bad or touched):
                with stop.critical():
                    store.commit(chunk, bad, touched)
                    report.embedded += len(chunk)
            raise


class _progress:
    """A rich progress bar with images/s and ETA (the total comes from a cheap name-only walk)."""

    def __init__(self, root: Path, options: EmbedOptions):
        self.enabled = options.progress
        self.root, self.options = root, options

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from ..console import stderr

        total = sum(
            1
            for p in walk_images(self.root)
            if self.options.world_size == 1 or shard_of(p.relative_to(self.root).as_posix(), self.options.world_size) == self.options.rank
        )
        self.bar = Progress(
            TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
            console=stderr(),  # stdout stays clean for --json and pipes
        )
        self.bar.start()
        self.task = self.bar.add_task("embed", total=total, rate="")
        self.t0, self.done = time.perf_counter(), 0

        def advance(n: int) -> None:
            self.done += n
            rate = self.done / max(1e-9, time.perf_counter() - self.t0)
            self.bar.update(self.task, advance=n, rate=f"{rate:.1f} images/s")

        return advance

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False
