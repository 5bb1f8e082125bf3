"""Similarity search over an index: `reslab embed`, `search`, `duplicates`, `eval-retrieval`, `index copy|info`."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ReslabError
from .app import SEARCH, app, index_app
from .options import BatchSize, DecodeWorkers, Device, IndexPath, JsonOutput, Precision, Runtime, Store, TopK, Weights


class EmbedMethod(StrEnum):  # reslab.embeddings.METHODS
    cnn = "cnn"
    hog = "hog"
    hist = "hist"
    sift = "sift"
    orb = "orb"
    ahash = "ahash"
    dhash = "dhash"
    phash = "phash"
    whash = "whash"


class IndexKind(StrEnum):
    auto = "auto"
    flat = "flat"
    ivf = "ivf"
    hnsw = "hnsw"


def quiet_faiss() -> None:
    # faiss logs its CPU-feature probing at INFO on import; users do not need it
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


@app.command(rich_help_panel=SEARCH)
def embed(
    src: Annotated[Optional[Path], typer.Argument(help="Folder of images, walked recursively (labels: parent folder names).")] = None,
    out: Annotated[Path, typer.Option("--out", help="The index: created, or updated incrementally (a folder; with --store milvus..., its name).")] = ...,
    method: Annotated[Optional[EmbedMethod], typer.Option(help="How images become vectors (default cnn, or the index's own).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Zoo model, or an exported .onnx, for --method cnn (default efficientnet_lite0).")] = None,
    weights: Weights = None,
    run: Annotated[Optional[Path], typer.Option(help="A training run folder: embed with the trained network.")] = None,
    layer: Annotated[Optional[str], typer.Option(help="Embed this layer (global-average-pooled) instead of the pooled features.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        help="Embedder parameter key=value, repeatable. cnn: pool=gem|avg, gem_p=3, flip=true, scales=[1,0.707], "
        'layers=["features.5"], whole_small=true; hashes: hash_size=16; sift/orb: vocab_size=512.')] = None,
    whiten: Annotated[Optional[bool], typer.Option("--whiten/--no-whiten", help="PCA-whitening fitted on the indexed collection (default: see docs/search.md).")] = None,
    whiten_from: Annotated[Optional[Path], typer.Option(
        "--whiten-from", help="Fit the whitening on this other index (a larger collection of the same kind of photos, same embedder) "
        "instead of the indexed one.")] = None,
    whiten_dim: Annotated[Optional[int], typer.Option(min=1, help="Axes kept by the whitening.")] = None,
    whiten_shrinkage: Annotated[Optional[float], typer.Option(
        min=0.0, help="Added to each variance, times their mean, before whitening (0 = plain; more = milder).")] = None,
    dba: Annotated[Optional[int], typer.Option(min=0, help="Database-side augmentation: neighbours summed into each indexed vector (0 = off).")] = None,
    qe: Annotated[Optional[int], typer.Option(min=0, help="alpha-query expansion: results summed into each query (0 = off).")] = None,
    rerank: Annotated[Optional[bool], typer.Option(
        "--rerank/--no-rerank", help="k-reciprocal re-ranking of each query's first results (default: see docs/search.md).")] = None,
    rerank_k1: Annotated[Optional[int], typer.Option(help="Re-ranking: neighbours whose mutual sets are compared (implies --rerank).")] = None,
    rerank_k2: Annotated[Optional[int], typer.Option(help="Re-ranking: neighbours averaged into each encoding, 1 = none (implies --rerank).")] = None,
    rerank_first: Annotated[Optional[bool], typer.Option(
        "--rerank-first/--no-rerank-first", help="Re-ranking also moves the first result (default: cosine's nearest stays first; "
        "a copy of the query always does) (implies --rerank).")] = None,
    rerank_lambda: Annotated[Optional[float], typer.Option(
        help="Re-ranking: weight of the plain distance against the Jaccard one, 0 to 1 (implies --rerank).")] = None,
    index_kind: Annotated[IndexKind, typer.Option(help="flat (exact), ivf, hnsw, or auto (flat below 100k items).")] = IndexKind.auto,
    nprobe: Annotated[int, typer.Option(min=1, help="IVF cells searched per query.")] = 16,
    ef_search: Annotated[int, typer.Option(min=1, help="HNSW candidate list per query.")] = 64,
    batch_size: BatchSize = 32,
    workers: DecodeWorkers = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Images per committed chunk (what a kill can lose).")] = 256,
    device: Device = "auto",
    runtime: Runtime = "auto",
    precision: Precision = None,
    # the flags before --runtime/--precision, kept working: --onnx is --runtime onnxruntime, --bf16 is
    # --precision bf16; --channels-last is accepted and left to the runtime (torch bf16 uses channels_last;
    # the memory layout does not change the vectors)
    old_onnx: Annotated[bool, typer.Option("--onnx", hidden=True)] = False,
    old_bf16: Annotated[bool, typer.Option("--bf16", hidden=True)] = False,
    old_channels_last: Annotated[bool, typer.Option("--channels-last", hidden=True)] = False,
    merge: Annotated[
        Optional[list[Path]], typer.Option(help="Merge these shard indexes (from torchrun ranks) into --out instead of embedding.")
    ] = None,
    store: Store = None,
    as_json: JsonOutput = False,
) -> None:
    """Embed a folder of images into a similarity-search index (incremental and resumable).

    Without --weights, a zoo model uses its imagenet weights.
    """
    quiet_faiss()
    from ..data.progress import resolve_workers
    from ..devices import resolve_device
    from ..search.embed import EmbedOptions, build_index, check_requested, load_index_embedder, read_manifest
    from ..embeddings import make_embedder
    from ..search.sharding import distributed_env, embed_distributed, merge_indexes, shard_dir
    from ..search.stores import parse_store, read_pointer
    from ..tomlio import parse_assignments

    post = None
    rerank_values = {"rerank_k1": rerank_k1, "rerank_k2": rerank_k2, "rerank_lambda": rerank_lambda, "rerank_first": rerank_first}
    if any(v is not None for v in (whiten, whiten_from, whiten_dim, whiten_shrinkage, dba, qe, rerank, *rerank_values.values())):
        # else: the index's own, or the default for a new one
        import dataclasses

        from ..search.embed import DEFAULT_POST
        from ..search.postprocess import Postprocess
        from ..search.whitening_source import source_path

        if whiten is False and whiten_from is not None:
            raise ReslabError("--no-whiten and --whiten-from contradict each other; drop one")
        manifest = read_manifest(out, store)
        base = Postprocess.options_of(manifest) if manifest and "postprocess" in manifest else DEFAULT_POST
        asked = {"whiten": whiten, "whiten_dim": whiten_dim, "whiten_shrinkage": whiten_shrinkage, "dba": dba, "qe": qe}
        if whiten is not None or whiten_from is not None:  # --whiten alone: on the indexed collection itself
            asked["whiten_from"] = source_path(whiten_from) if whiten_from is not None else None
        if rerank is False and any(v is not None for v in rerank_values.values()):
            raise ReslabError("--no-rerank and --rerank-k1/--rerank-k2/--rerank-lambda/--rerank-first contradict each other; drop one")
        asked |= {**rerank_values, "rerank": True if any(v is not None for v in rerank_values.values()) else rerank}
        # checked here (PostOptions refuses bad values with one message) before any index folder is created
        post = dataclasses.replace(base, **{k: v for k, v in asked.items() if v is not None or k == "whiten_from"})
    options = EmbedOptions(batch_size=batch_size, workers=None if workers is None else resolve_workers(workers), chunk_size=chunk_size,
                           index_kind=index_kind.value, nprobe=nprobe, ef_search=ef_search, post=post)  # fmt: skip
    if merge:
        _print_report(merge_indexes(merge, out, options, store=store), out, as_json)
        return
    if src is None:
        raise ReslabError("give the folder of images to index: `reslab embed SRC --out INDEX` (or --merge SHARD... to merge shards)")
    params = parse_assignments(param or [], option="--param", example="vocab_size=256")
    chosen_device = None if device == "auto" else str(resolve_device(device))  # auto: per rank under torchrun
    runtime = "onnxruntime" if old_onnx else runtime
    precision = precision or ("bf16" if old_bf16 else None)
    # how the network runs; the embedder of an existing index prefers the runtime it was built with
    how = {"runtime": runtime, "precision": precision, "batch_size": batch_size, **({"device": chosen_device} if chosen_device else {})}
    explicit = any(v is not None for v in (method, model, weights, run, layer)) or bool(params)

    # under torchrun with the local store, each rank has its own shard index (rank 0's speaks for all)
    local_shards = distributed_env() is not None and parse_store(store) is None and read_pointer(out) is None
    index_dir, index_store = (shard_dir(out, 0), None) if local_shards else (out, store)
    existing = read_manifest(index_dir, index_store)
    if existing is not None and explicit:
        check_requested(existing, out, method=method and method.value, model=model, layer=layer, run=run)

    def build_embedder(dev: str | None):
        rt = {**how, **({"device": dev} if dev else {})}
        if not explicit and existing is not None:  # an existing index: its own embedder, run the way asked
            return load_index_embedder(index_dir, index_store, rt)
        chosen = method.value if method else "cnn"
        return make_embedder(
            chosen, model=model or "efficientnet_lite0", weights=weights if weights is not None or run else "imagenet",
            run=run, layer=layer, **params, **(rt if chosen == "cnn" else {}),
        )

    if distributed_env() is not None:
        report = embed_distributed(src, out, build_embedder, options, store=store)
        if report is not None:
            _print_report(report, out, as_json)
        return
    _print_report(build_index(src, out, build_embedder(None), options, store=store), out, as_json)


def _print_report(report, out: Path, as_json: bool) -> None:
    from ..console import print_json, say, shown

    if as_json:
        print_json({**report.__dict__, "index": str(out)})
        return
    say(f"[bold]{out}[/]: {report.summary()}")
    for path, reason in report.bad[:20]:
        say(f"  [yellow]skipped[/] {shown(path)}: {shown(reason)}")
    if len(report.bad) > 20:
        say(f"  ... and {len(report.bad) - 20} more bad files")


@app.command(rich_help_panel=SEARCH)
def search(
    index: IndexPath,
    query: Annotated[str, typer.Argument(help="An image file, an indexed path, or id:N.")],
    k: TopK = 10,
    method: Annotated[Optional[EmbedMethod], typer.Option(help="Only as a check: refused if the index was built with another method.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Only as a check: refused if the index was built with another model.")] = None,
    layer: Annotated[Optional[str], typer.Option(help="Only as a check: refused if the index was built from another layer.")] = None,
    store: Store = None,
    runtime: Runtime = "auto",
    precision: Precision = None,
    as_json: JsonOutput = False,
) -> None:
    """The k most similar indexed images to a query image or item."""
    quiet_faiss()
    from ..console import new_table, print_json, print_table, shown
    from ..search.index import SearchIndex

    with SearchIndex.open(index, store, runtime=runtime, precision=precision, batch_size=1) as idx:
        idx.check_query_options(method=method and method.value, model=model, layer=layer)
        item_id, path = idx.resolve_query(query)
        hits = idx.search_item(item_id, k) if item_id is not None else idx.search_image(path, k)
        count = len(idx)
    if as_json:
        print_json({"query": query, "hits": [h.__dict__ for h in hits]})
        return
    table = new_table("rank", "score", "id", "label", "path", title=f"{shown(query)} in {shown(index)} ({count} items)",
                      right=("rank", "score", "id"))  # fmt: skip
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), f"{h.score:.4f}", str(h.id), shown(h.label), shown(h.path))
    print_table(table)


@app.command(rich_help_panel=SEARCH)
def duplicates(
    index: IndexPath,
    threshold: Annotated[
        Optional[float],
        typer.Option(min=-1.0, max=1.0, help="Cosine similarity at or above which two images are duplicates (default 0.95)."),
    ] = None,
    max_distance: Annotated[
        Optional[int],
        typer.Option(min=0, help="Hash indexes (--method phash, ...): at most this many differing bits (default 10 per 64)."),
    ] = None,
    store: Store = None,
    as_json: JsonOutput = False,
) -> None:
    """Groups of near-duplicate images (union-find over range search; no N x N matrix)."""
    quiet_faiss()
    from ..console import print_json, printable, say
    from ..search.duplicates import duplicate_threshold, find_duplicates
    from ..search.index import SearchIndex

    with SearchIndex.open(index, store) as idx:
        threshold, rule = duplicate_threshold(idx.manifest, threshold, max_distance)
        groups = find_duplicates(idx, threshold)
    if as_json:
        print_json([{"min_score": g.min_score, "items": [h.__dict__ for h in g.items]} for g in groups])
        return
    say(f"{len(groups)} groups of near-duplicates ({rule}) in {printable(index)}", markup=False)
    for n, g in enumerate(groups, 1):
        say(f"[bold]group {n}[/] ({len(g.items)} images, weakest link {g.min_score:.3f})")
        for h in g.items:
            say(f"  {h.id:>6}  {printable(h.path)}", markup=False)


@app.command("eval-retrieval", rich_help_panel=SEARCH)
def eval_retrieval(
    indexes: Annotated[list[Path], typer.Argument(help="One or more indexes of the same images (e.g. one per method).")],
    cutoffs: Annotated[str, typer.Option("--cutoffs", help="The k of precision@k and recall@k, comma-separated.")] = "1,5,10",
    plot: Annotated[Optional[Path], typer.Option(help="Also draw precision@k per index to this PNG.")] = None,
    store: Store = None,
    as_json: JsonOutput = False,
) -> None:
    """Retrieval quality of indexes: precision@k, recall@k and mAP with folder labels as relevance (leave-one-out).

    (Accuracy of a trained classifier is `reslab eval-classifier`.)
    """
    quiet_faiss()
    from ..console import new_table, print_json, print_table
    from ..embeddings import describe
    from ..search.index import SearchIndex
    from ..search.retrieval import evaluate_index

    ks = _parse_cutoffs(cutoffs)
    rows = []
    for path in indexes:
        with SearchIndex.open(path, store) as idx:
            scores = evaluate_index(idx, ks)
            rows.append({"index": str(path), "method": describe(idx.manifest), "items": len(idx), **_flat_scores(scores)})
    if as_json:
        print_json(rows)
    else:
        keys = [c for c in rows[0] if c.startswith(("P@", "R@"))] + ["mAP", "queries"]
        table = new_table("index", "method", *keys, title="Retrieval with folder labels as relevance (leave-one-out)",
                          right=tuple(keys))  # fmt: skip
        for r in rows:
            table.add_row(r["index"], r["method"], *(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in keys))
        print_table(table)
    if plot is not None:
        from ..console import wrote
        from ..search.retrieval import plot_precision_at_k

        wrote(plot_precision_at_k(rows, plot))


def _parse_cutoffs(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise ReslabError(f"--cutoffs '{text}' should be positive integers separated by commas, e.g. --cutoffs 1,5,10")
    return ks


def _flat_scores(scores) -> dict:
    out = {f"P@{k}": v for k, v in scores.precision.items()}
    out.update({f"R@{k}": v for k, v in scores.recall.items()})
    out["mAP"] = scores.mean_ap
    out["queries"] = scores.queries
    return out


@index_app.command("copy")
def index_copy(
    src: Annotated[Path, typer.Argument(help="The index to copy: its folder (or, with --from-store, its name).")],
    dst: Annotated[Path, typer.Argument(help="The new index: a folder (or, with --store, the name of its collection).")],
    store: Store = None,
    from_store: Annotated[Optional[str], typer.Option("--from-store", help="Where SRC lives when its folder is absent (a Milvus URI).")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Items per streamed chunk (bounds the memory).")] = 4096,
    sample: Annotated[int, typer.Option(min=0, help="Items whose metadata and vector are compared after the copy.")] = 256,
    as_json: JsonOutput = False,
) -> None:
    """Copy an index to another store (local folder <-> Milvus), streamed; verifies counts and a sample of vectors.

    --store says where DST goes, as for `reslab embed`.
    """
    quiet_faiss()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..console import print_json, say, stderr
    from ..data.progress import RateColumn
    from ..search.copy import copy_index

    columns = (TextColumn("copying"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr(), transient=True) as bar:  # stderr: stdout stays one JSON document
        task = bar.add_task("copy", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = copy_index(src, dst, src_store=from_store, dst_store=store, chunk=chunk_size, sample=sample, progress=progress)
    if as_json:
        print_json(report.__dict__)
    else:
        say(report.summary(), markup=False)


@index_app.command("info")
def index_info(index: IndexPath, store: Store = None, as_json: JsonOutput = False) -> None:
    """Where an index is stored, what built it, how many items and bad files it holds."""
    quiet_faiss()
    from ..console import print_json, say
    from ..embeddings import describe
    from ..search.postprocess import Postprocess
    from ..search.stores import open_store

    with open_store(index, store) as st:
        manifest = st.read_manifest() or {}
        info = {
            "index": str(index), "store": st.kind, "where": st.describe(), "items": len(st), "bad_files": len(st.bad_records()),
            "embedder": describe(manifest) if manifest else None, "dim": manifest.get("dim"), "metric": manifest.get("metric"),
            "index_kind": manifest.get("index_kind"), "status": manifest.get("status"), "root": manifest.get("root"),
            "updated": manifest.get("updated"), "postprocess": Postprocess.from_manifest(manifest).describe(),
        }  # fmt: skip
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        say(f"{key:>11}: {value}", markup=False)
