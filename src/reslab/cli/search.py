"""`reslab embed/search/duplicates/eval-retrieval/export` and `reslab bench embed/search`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from ..errors import ReslabError
from .app import app, bench_app


def _quiet_faiss() -> None:
    # faiss logs its CPU-feature probing at INFO on import; users do not need it
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def _parse_params(params: list[str] | None) -> dict:
    out = {}
    for p in params or []:
        if "=" not in p:
            raise ReslabError(f"--param '{p}' should be key=value, e.g. --param vocab_size=256")
        key, value = p.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command()
def embed(
    src: Optional[Path] = typer.Argument(None, help="Folder of images, walked recursively (labels: parent folder names)."),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder: created, or updated incrementally."),
    method: Optional[str] = typer.Option(None, help="cnn | hog | hist | sift | orb (default cnn, or the index's own)."),
    model: Optional[str] = typer.Option(None, help="Zoo model for --method cnn (default efficientnet_lite0)."),
    weights: Optional[str] = typer.Option(None, help="Weights tag or file (default imagenet)."),
    run: Optional[Path] = typer.Option(None, help="A training run folder: embed with the trained network."),
    layer: Optional[str] = typer.Option(None, help="Embed this layer (global-average-pooled) instead of the pooled features."),
    param: Optional[list[str]] = typer.Option(None, help="Embedder parameter key=value (classical methods), repeatable."),
    index_kind: str = typer.Option("auto", help="flat (exact) | ivf | hnsw | auto (flat below 100k items)."),
    nprobe: int = typer.Option(16, help="IVF cells searched per query."),
    ef_search: int = typer.Option(64, help="HNSW candidate list per query."),
    batch_size: int = typer.Option(32, help="Images per forward pass."),
    workers: int = typer.Option(2, help="Decode worker processes (0: decode in the main process)."),
    chunk_size: int = typer.Option(256, help="Images per committed chunk (what a kill can lose)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda when available)."),
    bf16: bool = typer.Option(False, help="bfloat16 autocast for the network."),
    channels_last: bool = typer.Option(False, help="channels_last memory format."),
    onnx: bool = typer.Option(False, help="Run the network with ONNX Runtime."),
    merge: Optional[list[Path]] = typer.Option(None, help="Merge these shard indexes (from torchrun ranks) into --out instead of embedding."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Embed a folder of images into a similarity-search index (incremental and resumable)."""
    _quiet_faiss()
    from ..search.embed import EmbedOptions, build_index, check_requested, read_manifest
    from ..search.embedders import embedder_from_manifest, make_embedder
    from ..search.sharding import distributed_env, embed_distributed, merge_indexes

    options = EmbedOptions(
        batch_size=batch_size, workers=workers, chunk_size=chunk_size, index_kind=index_kind, nprobe=nprobe, ef_search=ef_search
    )
    if merge:
        report = merge_indexes(merge, out, options)
        _print_report(report, out, json_out)
        return
    if src is None:
        raise ReslabError("give the folder of images to index: `reslab embed SRC --out INDEX` (or --merge SHARD... to merge shards)")
    runtime = {k: v for k, v in {"device": device, "bf16": bf16, "channels_last": channels_last, "onnx": onnx}.items() if v}
    explicit = any(v is not None for v in (method, model, weights, run, layer)) or bool(param)

    existing = read_manifest(out if distributed_env() is None else out / "shards" / "rank-0")
    if existing is not None and explicit:
        check_requested(existing, out, method=method, model=model, layer=layer, run=run)

    def build_embedder(dev: str | None):
        rt = {**runtime, **({"device": dev} if dev else {})}
        if not explicit and existing is not None:  # an existing index: its own embedder, run the way asked
            index_dir = out if distributed_env() is None else out / "shards" / "rank-0"
            return embedder_from_manifest(existing, index_dir, **(rt if existing.get("method") == "cnn" else {}))
        return make_embedder(
            method or "cnn", model=model or "efficientnet_lite0", weights=weights if weights is not None or run else "imagenet",
            run=run, layer=layer, **_parse_params(param), **(rt if (method or "cnn") == "cnn" else {}),
        )

    if distributed_env() is not None:
        report = embed_distributed(src, out, build_embedder, options)
        if report is not None:
            _print_report(report, out, json_out)
        return
    report = build_index(src, out, build_embedder(None), options)
    _print_report(report, out, json_out)


def _print_report(report, out: Path, json_out: bool) -> None:
    from rich.console import Console

    if json_out:
        print(json.dumps({**report.__dict__, "index": str(out)}, indent=2))
        return
    console = Console()
    console.print(f"[bold]{out}[/]: {report.summary()}")
    for path, reason in report.bad[:20]:
        console.print(f"  [yellow]skipped[/] {path}: {reason}", highlight=False)
    if len(report.bad) > 20:
        console.print(f"  ... and {len(report.bad) - 20} more bad files")


@app.command()
def search(
    index: Path = typer.Argument(..., help="An index folder made by `reslab embed`."),
    query: str = typer.Argument(..., help="An image file, an indexed path, or id:N."),
    k: int = typer.Option(10, "-k", help="How many results."),
    method: Optional[str] = typer.Option(None, help="Only as a check: refused if the index was built with another method."),
    model: Optional[str] = typer.Option(None, help="Only as a check: refused if the index was built with another model."),
    layer: Optional[str] = typer.Option(None, help="Only as a check: refused if the index was built from another layer."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The k most similar indexed images to a query image or item."""
    _quiet_faiss()
    from ..search.index import SearchIndex

    with SearchIndex.open(index) as idx:
        idx.check_query_options(method=method, model=model, layer=layer)
        item_id, path = idx.resolve_query(query)
        hits = idx.search_item(item_id, k) if item_id is not None else idx.search_image(path, k)
    if json_out:
        print(json.dumps({"query": query, "hits": [h.__dict__ for h in hits]}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{query} in {index} ({len(idx)} items)")
    for col in ("rank", "score", "id", "label", "path"):
        table.add_column(col, justify="right" if col in ("rank", "score", "id") else "left")
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), f"{h.score:.4f}", str(h.id), h.label, h.path)
    Console().print(table)


@app.command()
def duplicates(
    index: Path = typer.Argument(..., help="An index folder made by `reslab embed`."),
    threshold: float = typer.Option(0.95, help="Cosine similarity at or above which two images are duplicates."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Groups of near-duplicate images (union-find over range search; no N x N matrix)."""
    _quiet_faiss()
    from ..search.duplicates import find_duplicates
    from ..search.index import SearchIndex

    if not -1.0 <= threshold <= 1.0:
        raise ReslabError(f"--threshold {threshold} is not a cosine similarity; give a value in [-1, 1], e.g. 0.95")
    with SearchIndex.open(index) as idx:
        groups = find_duplicates(idx, threshold)
    if json_out:
        print(json.dumps([{"min_score": g.min_score, "items": [h.__dict__ for h in g.items]} for g in groups], indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(f"{len(groups)} groups of near-duplicates (cosine >= {threshold}) in {index}")
    for n, g in enumerate(groups, 1):
        console.print(f"[bold]group {n}[/] ({len(g.items)} images, weakest link {g.min_score:.3f})")
        for h in g.items:
            console.print(f"  {h.id:>6}  {h.path}", highlight=False)


@app.command("eval-retrieval")
def eval_retrieval(
    indexes: list[Path] = typer.Argument(..., help="One or more indexes of the same images (e.g. one per method)."),
    k: str = typer.Option("1,5,10", "-k", help="Comma-separated cut-offs."),
    plot: Optional[Path] = typer.Option(None, help="Also draw precision@k per index to this PNG."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """precision@k, recall@k and mAP with folder labels as relevance (leave-one-out), one row per index."""
    _quiet_faiss()
    from ..search.embedders import describe
    from ..search.index import SearchIndex
    from ..search.retrieval import evaluate_index

    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
    except ValueError:
        raise ReslabError(f"-k '{k}' should be comma-separated integers, e.g. -k 1,5,10") from None
    rows = []
    for path in indexes:
        with SearchIndex.open(path) as idx:
            scores = evaluate_index(idx, ks)
            rows.append({"index": str(path), "method": describe(idx.manifest), "items": len(idx), **_flat_scores(scores)})
    if json_out:
        print(json.dumps(rows, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        keys = [c for c in rows[0] if c.startswith(("P@", "R@"))] + ["mAP", "queries"]
        table = Table(title="Retrieval with folder labels as relevance (leave-one-out)")
        for col in ["index", "method", *keys]:
            table.add_column(col, justify="left" if col in ("index", "method") else "right")
        for r in rows:
            table.add_row(r["index"], r["method"], *(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in keys))
        Console().print(table)
    if plot is not None:
        _plot_precision(rows, plot)


def _flat_scores(scores) -> dict:
    out = {f"P@{k}": v for k, v in scores.precision.items()}
    out.update({f"R@{k}": v for k, v in scores.recall.items()})
    out["mAP"] = scores.mean_ap
    out["queries"] = scores.queries
    return out


def _plot_precision(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_open

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ks = [int(c[2:]) for c in r if c.startswith("P@")]
        ax.plot(ks, [r[f"P@{k}"] for k in ks], marker="o", label=f"{r['method']} (mAP {r['mAP']:.3f})")
    ax.set_xlabel("k")
    ax.set_ylabel("precision@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Retrieval precision, folder labels as relevance")
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


@app.command()
def export(
    model: str = typer.Argument(..., help="A zoo model name (see `reslab models`)."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx file."),
    weights: Optional[str] = typer.Option("imagenet", help="Weights tag or file."),
    run: Optional[Path] = typer.Option(None, help="A training run folder instead of --weights."),
    embedding: bool = typer.Option(False, help="Export the embedding head (pooled features) instead of the logits."),
) -> None:
    """Export a model (or its embedding head) to ONNX with a dynamic batch axis, checked with ONNX Runtime."""
    from ..search.onnx_export import export_model

    path, diff = export_model(model, onnx, weights=None if run else weights, run=run, embedding=embedding)
    what = "embedding head" if embedding else "classifier"
    print(f"wrote {path} ({what} of {model}); ONNX Runtime vs PyTorch max abs diff {diff:.2e}")


@bench_app.command("embed")
def bench_embed_cmd(
    src: Optional[Path] = typer.Argument(None, help="Folder of images (default: photos made from the bundled samples)."),
    model: str = typer.Option("efficientnet_lite0", help="Zoo model."),
    n: int = typer.Option(256, help="Images to embed."),
    batch_size: int = typer.Option(32),
    workers: int = typer.Option(2, help="Decode worker processes."),
    onnx: bool = typer.Option(True, help="Also time the ONNX Runtime path."),
    out: Path = typer.Option(Path("benchmarks/results"), help="Folder for bench_embed.json."),
) -> None:
    """Images/s of the whole embed pipeline vs the model alone (same run), and of fp32/bf16/channels_last/ONNX."""
    _quiet_faiss()
    from ..search.bench import bench_embed, save_result

    r = bench_embed(src, model=model, n=n, batch_size=batch_size, workers=workers, onnx=onnx)
    r["command"] = "reslab bench embed" + (f" {src}" if src else "") + f" --model {model} --n {n} --batch-size {batch_size} --workers {workers}"
    path = save_result("bench_embed", r, out)
    print(f"{r['command']}\n  {r['images']} images ({r['source']})")
    print(f"  pipeline (walk+decode+model+index): {r['pipeline_images_per_s']:.1f} images/s")
    print(f"  model alone on pre-decoded inputs:   {r['model_only_images_per_s']:.1f} images/s")
    print(f"  pipeline / model = {r['pipeline_over_model']:.2f}x")
    for name, rate in r["model_paths_images_per_s"].items():
        print(f"  {name:>14}: {rate:7.1f} images/s ({r['model_paths_over_fp32'][name]:.2f}x fp32)")
    print(f"saved {path}")


@bench_app.command("search")
def bench_search_cmd(
    n: int = typer.Option(200_000, help="Vectors in the collection."),
    dim: int = typer.Option(512, help="Dimension."),
    queries: int = typer.Option(1000, help="Query vectors."),
    k: int = typer.Option(10, "-k"),
    nprobe: int = typer.Option(16, help="IVF cells searched per query."),
    ef_search: int = typer.Option(64, help="HNSW candidate list per query."),
    kinds: str = typer.Option("flat,ivf,hnsw", help="Comma-separated index kinds to measure (flat is always measured: it is the baseline)."),
    out: Path = typer.Option(Path("benchmarks/results"), help="Folder for bench_search.json."),
) -> None:
    """Recall@k against exact search and ms/query (batch and single) of flat, IVF and HNSW on clustered vectors."""
    _quiet_faiss()
    from ..search.bench import bench_search, save_result

    chosen = ["flat"] + [x.strip() for x in kinds.split(",") if x.strip() and x.strip() != "flat"]
    for kind in chosen:
        if kind not in ("flat", "ivf", "hnsw"):
            raise ReslabError(f"--kinds: unknown index kind '{kind}'; choose from flat, ivf, hnsw")
    r = bench_search(n=n, dim=dim, queries=queries, k=k, kinds=tuple(chosen), nprobe=nprobe, ef_search=ef_search)
    r["command"] = f"reslab bench search --n {n} --dim {dim} --queries {queries} -k {k} --nprobe {nprobe} --ef-search {ef_search} --kinds {','.join(chosen)}"
    name = "bench_search" if n == 200_000 and dim == 512 else f"bench_search_{n}x{dim}"
    if chosen != ["flat", "ivf", "hnsw"]:
        name += "_" + "-".join(chosen)
    path = save_result(name, r, out)
    print(f"{r['command']}\n  {n} x {dim} clustered vectors, {queries} queries, k={k}")
    print(f"  {'kind':>5}  {'recall@k':>8}  {'batch ms/q':>10}  {'single ms/q':>11}  {'vs flat':>7}  {'build s':>7}")
    for kind, v in r["kinds"].items():
        print(f"  {kind:>5}  {v['recall_at_k']:8.3f}  {v['batch_ms_per_query']:10.3f}  {v['single_ms_per_query']:11.3f}  {v['single_speedup_vs_flat']:6.1f}x  {v['build_s']:7.1f}")
    print(f"saved {path}")
