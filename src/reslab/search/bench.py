"""Benchmarks of the search stack: `reslab bench embed` and `reslab bench search`.

Speeds are reported as ratios against a baseline measured in the same process: the embedding
pipeline against the model alone on pre-decoded inputs, approximate indexes against exact search.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np



# -- bench embed ---------------------------------------------------------------------------------
def _photo_folder(n: int, work: Path) -> Path:
    """n JPEG photos (the bundled ones, cycled through crops and scales) in a temporary folder."""
    from PIL import ImageOps

    from .samples import bundled_photos

    photos = list(bundled_photos().values())
    folder = work / "photos"
    folder.mkdir(parents=True)
    for i in range(n):
        im = photos[i % len(photos)]
        scale = 0.6 + 0.4 * ((i // len(photos)) % 5) / 4  # 0.6 .. 1.0: every file differs
        im = im.resize((max(64, int(im.width * scale)), max(64, int(im.height * scale))))
        if (i // len(photos)) % 2:
            im = ImageOps.mirror(im)
        im.save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_embed(src: Path | None, model: str = "efficientnet_lite0", n: int = 256, batch_size: int = 32, workers: int | None = None,
                runtime: str = "auto", precision: str | None = None, compare: bool = True) -> dict:
    """images/s of the whole pipeline vs the model alone on pre-decoded inputs (both on the chosen
    runtime), and of the model alone on every other runtime available here (`compare`)."""
    from ..embeddings import CnnEmbedder
    from ..imageio import load_image
    from ..inference import default_weights
    from ..inference.auto import SETTLE_S
    from ..inference.runtimes import candidates
    from .embed import EmbedOptions, build_index, resolved_workers
    from .walk import walk_images

    workers = resolved_workers(EmbedOptions(workers=workers))  # None: the threads policy's default here

    work = Path(tempfile.mkdtemp(prefix="reslab-bench-embed-"))
    try:
        if src is None:
            src = _photo_folder(n, work)
            source = f"{n} photos made from the scikit-image/scikit-learn samples"
        else:
            source = str(src)
        paths = [p for _, p in zip(range(n), walk_images(src))]
        n = len(paths)
        if src != work / "photos":  # index exactly the n files timed below
            sub = work / "subset"
            sub.mkdir()
            for i, p in enumerate(paths):
                shutil.copy(p, sub / f"{i:05d}{p.suffix}")
            src = sub
        weights = default_weights(model)
        emb = CnnEmbedder(model=model, weights=weights, runtime=runtime, precision=precision, batch_size=batch_size)
        chosen = str(emb.session.choice)
        decoded = [emb.preprocess(load_image(p, min_size=emb.min_size)) for p in walk_images(src)]
        batches = [decoded[i : i + batch_size] for i in range(0, n, batch_size)]
        variants = {chosen: emb}
        if compare:
            for c in candidates(emb.device):
                if str(c) not in variants and c.runtime != "torch-compile":  # compile: `reslab bench infer` measures it
                    variants[str(c)] = CnnEmbedder(model=model, weights=weights, runtime=c.runtime, precision=c.precision, batch_size=batch_size)
        for v in variants.values():
            v.embed(batches[0])  # warm-up: first-call allocations (and the one-time exports)

        def model_alone(v):
            return lambda: [v.embed(b) for b in batches]

        def pipeline():
            out = work / f"index-{time.perf_counter_ns()}"
            build_index(src, out, emb, EmbedOptions(batch_size=batch_size, workers=workers, progress=False))

        # round-robin, best of three each: a load spike from another process hits every path alike
        runs = {"pipeline": pipeline, **{name: model_alone(v) for name, v in variants.items()}}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(3):
            for name, fn in runs.items():
                time.sleep(SETTLE_S)  # the previous runtime's idle threads stop spinning
                times[name].append(_seconds(fn))
        rates = {name: n / min(t) for name, t in times.items()}
        pipeline_rate, model_rate = rates.pop("pipeline"), rates[chosen]
        fp32 = rates.get("torch fp32")
        return {
            "benchmark": "embed",
            "model": model,
            "weights": weights,
            "images": n,
            "source": source,
            "batch_size": batch_size,
            "workers": workers,
            "runtime": chosen,
            "pipeline_images_per_s": pipeline_rate,
            "model_only_images_per_s": model_rate,
            "pipeline_over_model": pipeline_rate / model_rate,
            "model_paths_images_per_s": rates,
            "model_paths_over_torch_fp32": {k: v / fp32 for k, v in rates.items()} if fp32 else {},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- bench search --------------------------------------------------------------------------------
def clustered_vectors(n: int, dim: int, clusters: int, seed: int = 0, spread: float = 0.35) -> np.ndarray:
    """L2-normalised points around random cluster centres: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):  # in blocks: a 1M x 512 set never exists twice in memory
        m = min(65536, n - start)
        x = centres[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true k nearest neighbours that the approximate search returned."""
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(f, t)) / k for f, t in zip(found, truth)]))


def bench_search(
    n: int = 200_000, dim: int = 512, queries: int = 1000, k: int = 10, kinds=("flat", "ivf", "hnsw"), nprobe: int = 16, ef_search: int = 64,
    store: str | None = None,
) -> dict:
    """FAISS (and, with `store`, Milvus) on the same clustered vectors: build time, recall@k against exact
    search, batch and single-query latency, and the bytes each structure takes per vector.

    store: "milvus" (a temporary Milvus Lite file) or a Milvus URI (a server: the collection
    reslab_bench_NxD is created there and dropped after).
    """
    from . import faiss_index

    t0 = time.perf_counter()
    clusters = max(10, int(np.sqrt(n)))
    data = clustered_vectors(n + queries, dim, clusters)
    base, q = data[:n], np.ascontiguousarray(data[n:])
    ids = np.arange(n, dtype=np.int64)
    results, truth = {}, None
    for kind in kinds:
        t_build = time.perf_counter()
        index = _build_faiss_kind(ids, base, kind, nprobe, ef_search, dim)
        build_s = time.perf_counter() - t_build
        t = time.perf_counter()
        _, found = index.search(q, k)
        batch_ms = (time.perf_counter() - t) * 1000 / queries
        single = q[: min(200, queries)]
        t = time.perf_counter()
        for row in single:
            index.search(row[None, :], k)
        single_ms = (time.perf_counter() - t) * 1000 / len(single)
        if truth is None:
            truth = found if kind == "flat" else faiss_index.build_faiss(ids, base, faiss_index.FaissParams("flat"), dim).search(q, k)[1]
        results[kind] = {
            "recall_at_k": recall_at_k(found, truth),
            "batch_ms_per_query": batch_ms,
            "single_ms_per_query": single_ms,
            "build_s": build_s,
            "bytes_per_vector": len(faiss_index.serialize(index)) / n,  # the serialised index: what it holds in memory
        }
        del index
    for r in results.values():
        r["single_speedup_vs_flat"] = results["flat"]["single_ms_per_query"] / r["single_ms_per_query"] if "flat" in results else None
    out = {
        "benchmark": "search",
        "n": n,
        "dim": dim,
        "queries": queries,
        "k": k,
        "clusters": clusters,
        "nprobe": nprobe,
        "ef_search": ef_search,
        "kinds": results,
    }
    if store is not None:
        out["milvus"] = bench_milvus(store, base, q, truth, [kd for kd in kinds if kd in ("flat", "ivf", "hnsw")], k, nprobe, ef_search)
        for kind, r in out["milvus"]["kinds"].items():
            r["single_speedup_vs_faiss_flat"] = results["flat"]["single_ms_per_query"] / r["single_ms_per_query"]
            if kind in results:
                r["single_ms_over_faiss_same_kind"] = r["single_ms_per_query"] / results[kind]["single_ms_per_query"]
                r["batch_ms_over_faiss_same_kind"] = r["batch_ms_per_query"] / results[kind]["batch_ms_per_query"]
    out["seconds"] = time.perf_counter() - t0
    return out


def _build_faiss_kind(ids, base, kind: str, nprobe: int, ef_search: int, dim: int):
    """An index of an embed kind (flat/ivf/hnsw), or "ivfpq": IVF with 8-bit product codes, dim/8 bytes a vector."""
    from . import faiss_index

    if kind != "ivfpq":
        return faiss_index.build_faiss(ids, base, faiss_index.FaissParams(kind=kind, nprobe=nprobe, ef_search=ef_search), dim)
    import faiss

    nlist = faiss_index.ivf_nlist(len(base))
    quantizer = faiss.IndexFlatIP(dim)
    ivfpq = faiss.IndexIVFPQ(quantizer, dim, nlist, dim // 8, 8, faiss.METRIC_INNER_PRODUCT)
    sample = base[np.random.default_rng(0).choice(len(base), min(len(base), max(64 * nlist, 65536)), replace=False)]
    ivfpq.train(sample)
    ivfpq.nprobe = min(nprobe, nlist)
    ivfpq.own_fields = True
    quantizer.this.disown()
    index = faiss.IndexIDMap2(ivfpq)
    index.own_fields = True
    ivfpq.this.disown()
    index.add_with_ids(base, ids)
    return index


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _PeakRss:
    """The highest resident set size while the block runs (sampled every 20 ms), in bytes above its start."""

    def __enter__(self):
        import threading

        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def _local_index(folder: Path, base: np.ndarray, block: int = 8192) -> float:
    """A complete local index of `base` (ids 0..n-1, flat search), as `embed` would leave it; returns the seconds taken."""
    from .embed import EmbedOptions, finalize
    from .local_store import LocalStore
    from .store import Item

    n, dim = base.shape
    t = time.perf_counter()
    with LocalStore(folder, create=True) as st:
        manifest = {"method": "bench", "model": None, "weights_sha256": None, "layer": None, "params": {}, "dim": dim,
                    "metric": "inner_product", "status": "building"}  # fmt: skip
        st.write_manifest(manifest)
        for start in range(0, n, block):
            st.import_items([Item(i, f"v{i}", 0, 0.0, "", "", 0, 0) for i in range(start, min(n, start + block))], base[start : start + block])
        finalize(st, manifest, EmbedOptions(index_kind="flat"))
    return time.perf_counter() - t


def _timed_copy(src, dst, src_store=None, dst_store=None) -> dict:
    """`index copy` (streamed in 4096-item chunks, verified, search structure rebuilt): its speed and memory."""
    from .copy import copy_index

    with _PeakRss() as rss:
        report = copy_index(src, dst, src_store=src_store, dst_store=dst_store)
    return {"seconds": report.seconds, "items_per_s": report.items / report.seconds, "peak_rss_growth_bytes_per_vector": rss.growth / report.items,
            "checked_items": report.checked}  # fmt: skip


def bench_milvus(store: str, base: np.ndarray, q: np.ndarray, truth: np.ndarray, kinds: list[str], k: int, nprobe: int, ef_search: int) -> dict:
    """The same measurements through the Milvus store, filled the way users fill it from a local index:
    `index copy` local -> Milvus (its throughput, against building the local index in the same process),
    then index build and search for each kind, then `index copy` Milvus -> local."""
    from .milvus_store import MilvusStore
    from .stores import collection_name, parse_store

    n, dim = base.shape
    work = Path(tempfile.mkdtemp(prefix="reslab-bench-milvus-"))
    lite = store == "milvus"
    uri = f"milvus://{work / 'bench.db'}" if lite else store
    address = parse_store(uri)
    name = work / f"reslab_bench_{n}x{dim}"  # the collection's name; the folder keeps the pointer manifest
    results: dict = {}
    st = None
    try:
        if not lite:  # a leftover of an interrupted run on a server: ours to drop
            with MilvusStore(address, collection_name(name), create=True) as leftover:
                _drop(leftover)
        local_s = _local_index(work / "source.index", base)
        rss0 = _rss_bytes()
        copy_in = _timed_copy(work / "source.index", name, dst_store=uri)
        copy_in["over_local_build"] = copy_in["seconds"] / local_s
        st = MilvusStore(address, collection_name(name), pointer_dir=name)
        manifest = st.read_manifest()
        single = q[: min(200, len(q))]
        for kind in kinds:
            t = time.perf_counter()
            built = st.build_search(kind, nprobe, ef_search)
            st.write_manifest({**manifest, "index_kind": built, "nprobe": nprobe, "ef_search": ef_search})
            st.search(single[:1], k)  # the first search loads what the index build left on disk
            index_s = time.perf_counter() - t
            t = time.perf_counter()
            _, found = st.search(q, k)
            batch_ms = (time.perf_counter() - t) * 1000 / len(q)
            # single queries until 200 or a minute (Milvus Lite scans in Python: at a million rows a query takes seconds)
            t, done = time.perf_counter(), 0
            for row in single:
                st.search(row[None, :], k)
                done += 1
                if done >= 5 and time.perf_counter() - t > 60:
                    break
            single_ms = (time.perf_counter() - t) * 1000 / done
            results[kind] = {
                "single_queries_timed": done,
                "recall_at_k": recall_at_k(found, truth),
                "batch_ms_per_query": batch_ms,
                "single_ms_per_query": single_ms,
                "insert_s": copy_in["seconds"],
                "index_s": index_s,
                "build_s": copy_in["seconds"] + index_s,
            }
        memory = {"rss_growth_bytes_per_vector": (_rss_bytes() - rss0) / n}
        if lite:
            memory["disk_bytes_per_vector"] = sum(f.stat().st_size for f in (work / "bench.db").rglob("*") if f.is_file()) / n
        st.close()
        st = None
        copy_out = _timed_copy(name, work / "back.index")
        copy_out["over_local_build"] = copy_out["seconds"] / local_s
        return {
            "store": "a temporary Milvus Lite file" if lite else address.public_uri(),
            "kinds": results,
            "memory": memory,
            "copy": {"local_index_build_s": local_s, "local_to_milvus": copy_in, "milvus_to_local": copy_out},
        }
    finally:
        if st is not None:
            st.close()
        if not lite:
            with MilvusStore(address, collection_name(name), create=True) as leftover:
                _drop(leftover)
        shutil.rmtree(work, ignore_errors=True)


def _drop(st) -> None:
    for name in (st.collection, st.meta):
        if st.client.has_collection(name):
            st.client.drop_collection(name)
