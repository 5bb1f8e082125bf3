"""Benchmarks: `reslab bench data | train | recipe | embed | infer | search | features | near-duplicates`.

Each measures a ratio against a baseline run in the same process and saves its JSON, with the
command and the machine (`reslab.provenance`), under `--out` (default: $RESLAB_BENCH_RESULTS, else
benchmarks/results).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ReslabError
from .app import bench_app
from .options import BatchSize, DecodeWorkers, Device, Overrides, Precision, Runtime, TopK, Weights, Workers, comma_choices

ResultsDir = Annotated[
    Optional[Path],
    typer.Option("--out", help="Folder for the result JSON (default: $RESLAB_BENCH_RESULTS, else benchmarks/results)."),
]
INDEX_KINDS = ("flat", "ivf", "hnsw")


@bench_app.command("data")
def data(
    data: Annotated[
        Optional[Path],
        typer.Option(help="A folder of ~224-pixel-or-larger JPEG photos (train/<class>/*.jpg) "
                     "(default: 176 crops of the photos bundled with scikit-image and scikit-learn)."),
    ] = None,
    cifar: Annotated[Optional[Path], typer.Option(help="CIFAR data for the in-memory comparison (default: generated 32x32 images).")] = None,
    workers: Workers = -1,
    seconds: Annotated[float, typer.Option(min=0.01, help="Seconds to measure each configuration.")] = 10.0,
    out: ResultsDir = None,
) -> None:
    """Decode+augmentation images/s vs ResNet-18 training images/s; batched vs per-image CIFAR augmentation."""
    from ..data.bench import run_bench_data

    run_bench_data(data=data, cifar=cifar, workers=workers, seconds=seconds, out=out)


@bench_app.command("train")
def train(
    model: Annotated[str, typer.Argument(help="Model name (CIFAR ResNet-20 and ResNet-50 are the headline cases).")] = "resnet20",
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", min=1, help="Images per step (default 128 at CIFAR size, 32 at 224 px).")
    ] = None,
    steps: Annotated[
        Optional[int], typer.Option(min=1, help="Timed steps per contender after 3 warm-up steps (default 30, or 4 at 224 px).")
    ] = None,
    image_size: Annotated[int, typer.Option(min=0, help="Input size (default: the model's own, 32 for CIFAR nets).")] = 0,
    data: Annotated[Optional[str], typer.Option(help="An image folder to train on (default: generated JPEGs).")] = None,
    accuracy_steps: Annotated[
        int, typer.Option(min=0, help="Also train fp32 and bf16 this many steps and compare loss curves.")
    ] = 0,
    device: Device = "auto",
    fastest_only: Annotated[
        bool, typer.Option("--fastest-only", help="Time only the engine with every speed-up (no textbook loop, no ablation rows).")
    ] = False,
    out: ResultsDir = None,
) -> None:
    """Training images/s: a textbook fp32 loop, then the engine adding one speed-up per row
    (in-memory batches, channels_last, bf16, fused optimizer, torch.compile), same process."""
    from ..devices import resolve_device
    from ..train.bench import run_bench

    run_bench(model, batch=batch_size, steps=steps, image_size=image_size, data=data, accuracy_steps=accuracy_steps,
              out=out, device=str(resolve_device(device)), rows="fastest" if fastest_only else "all")


@bench_app.command("recipe")
def recipe(
    recipes: Annotated[list[str], typer.Argument(help="Recipes to race (shipped names or TOML files), e.g. cifar_fast cifar_airbench.")],
    data: Annotated[Path, typer.Option("--data", help="The dataset folder (train/ and test/), e.g. the extracted CIFAR-10 copy.")],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; each recipe trains once per seed.")] = "0,1,2",
    overrides: Overrides = None,
    runs_dir: Annotated[
        Optional[Path], typer.Option("--runs-dir", help="Keep the run folders here (default: a temporary folder, deleted).")
    ] = None,
    out: ResultsDir = None,
) -> None:
    """Time to accuracy: final top-1 (mean ± std over seeds), wall time, epochs and FLOPs of each recipe."""
    from ..train.race import run_race

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ReslabError(f"--seeds must be comma-separated integers such as 0,1,2, got '{seeds}'") from None
    if not seed_list:
        raise ReslabError("--seeds is empty; give at least one seed, e.g. --seeds 0")
    if not data.is_dir():
        raise ReslabError(f"--data {data} is not a folder; give the dataset folder (train/ and test/ inside)")
    run_race(recipes, str(data), seed_list, overrides or [], out=out, runs_dir=runs_dir)


@bench_app.command("embed")
def embed(
    src: Annotated[Optional[Path], typer.Argument(help="Folder of images (default: photos made from the bundled samples).")] = None,
    model: Annotated[str, typer.Option(help="Zoo model.")] = "efficientnet_lite0",
    n: Annotated[int, typer.Option(min=1, help="Images to embed.")] = 256,
    batch_size: BatchSize = 32,
    workers: DecodeWorkers = None,
    runtime: Runtime = "auto",
    precision: Precision = None,
    all_runtimes: Annotated[
        bool, typer.Option("--all-runtimes/--chosen-runtime-only", help="Also time the model alone on every other runtime available here.")
    ] = True,
    out: ResultsDir = None,
) -> None:
    """Images/s of the whole embed pipeline vs the model alone on the same runtime (same run), and of each runtime."""
    from ..console import say
    from ..data.progress import resolve_workers
    from ..provenance import save_benchmark
    from ..search.bench import bench_embed
    from .search import quiet_faiss

    quiet_faiss()
    from ..search.embed import EmbedOptions, resolved_workers

    workers = resolved_workers(EmbedOptions(workers=None if workers is None else resolve_workers(workers)))
    r = bench_embed(src, model=model, n=n, batch_size=batch_size, workers=workers, runtime=runtime, precision=precision, compare=all_runtimes)
    r["command"] = ("reslab bench embed" + (f" {src}" if src else "") + f" --model {model} --n {n} --batch-size {batch_size} "
                    f"--workers {workers} --runtime {runtime}" + (f" --precision {precision}" if precision else "") + ("" if all_runtimes else " --chosen-runtime-only"))  # fmt: skip
    path = save_benchmark("bench_embed", r, out)
    say(f"{r['command']}\n  {r['images']} images ({r['source']}), runtime {r['runtime']}", markup=False)
    say(f"  pipeline (walk+decode+model+index): {r['pipeline_images_per_s']:.1f} images/s")
    say(f"  model alone on pre-decoded inputs:   {r['model_only_images_per_s']:.1f} images/s")
    say(f"  pipeline / model = {r['pipeline_over_model']:.2f}x")
    for name, rate in r["model_paths_images_per_s"].items():
        ratio = r["model_paths_over_torch_fp32"].get(name)
        say(f"  {name:>18}: {rate:7.1f} images/s" + (f" ({ratio:.2f}x torch fp32)" if ratio else ""))
    say(f"saved {path}", markup=False)


@bench_app.command("infer")
def infer(
    model: Annotated[str, typer.Argument(help="A zoo model name, a run folder or an exported .onnx.")],
    batch_size: BatchSize = 32,
    weights: Weights = None,
    rounds: Annotated[int, typer.Option(min=1, help="Timed passes per runtime (round-robin, best kept).")] = 3,
    compile: Annotated[bool, typer.Option(help="Also time torch-compile (tens of seconds of compilation per precision on a CPU).")] = True,
    device: Device = "auto",
    out: ResultsDir = None,
) -> None:
    """Every runtime x precision side by side: images/s, ratio to torch fp32, cosine vs fp32, % of the matmul peak
    (measured in the same run), and what the default `--runtime auto` picks against the fastest."""
    from ..console import note, say
    from ..devices import resolve_device
    from ..inference import default_weights, load
    from ..inference.bench import bench_infer, format_table
    from ..models import list_models
    from ..provenance import save_benchmark

    if weights is None and model in list_models():
        weights = default_weights(model)
    loaded = load(model, weights, device=resolve_device(device))
    result = bench_infer(loaded, batch=batch_size, rounds=rounds, include_compile=compile, say=lambda text: note(text, markup=False))
    result["command"] = (f"reslab bench infer {model} --batch-size {batch_size}" + (f" --weights {weights}" if weights else "")
                         + f" --rounds {rounds}" + ("" if compile else " --no-compile") + f" --device {device}")  # fmt: skip
    where = "" if result["device"] == "cpu" else "_" + result["device"].split(":")[0]
    path = save_benchmark(f"bench_infer_{loaded.name}_b{batch_size}{where}", result, out)
    say(result["command"], markup=False)
    say(format_table(result), markup=False)
    say(f"saved {path}", markup=False)


@bench_app.command("search")
def search(
    n: Annotated[int, typer.Option(min=1, help="Vectors in the collection.")] = 200_000,
    dim: Annotated[int, typer.Option(min=1, help="Dimension.")] = 512,
    queries: Annotated[int, typer.Option(min=1, help="Query vectors.")] = 1000,
    k: TopK = 10,
    nprobe: Annotated[int, typer.Option(min=1, help="IVF cells searched per query.")] = 16,
    ef_search: Annotated[int, typer.Option(min=1, help="HNSW candidate list per query.")] = 64,
    kinds: Annotated[
        str, typer.Option(help="Index kinds to measure, comma-separated: flat, ivf, hnsw, ivfpq (FAISS only); flat is always measured: it is the baseline.")
    ] = "flat,ivf,hnsw",
    store: Annotated[
        Optional[str],
        typer.Option("--store", help="Also measure Milvus beside FAISS: milvus (a temporary Milvus Lite file) or a server URI (milvus://host:19530)."),
    ] = None,
    out: ResultsDir = None,
) -> None:
    """Recall@k against exact search, ms/query (batch and single), build time and bytes per vector of flat, IVF and HNSW
    on clustered vectors: FAISS, and with --store Milvus beside it, in one process."""
    from ..console import say
    from ..provenance import save_benchmark
    from ..search.bench import bench_search
    from .search import quiet_faiss

    quiet_faiss()
    chosen = ["flat"] + [k for k in comma_choices(kinds, "--kinds", (*INDEX_KINDS, "ivfpq")) if k != "flat"]
    if store is not None and store != "milvus":
        from ..search.stores import parse_store

        if parse_store(store) is None:
            raise ReslabError(f"--store {store}: FAISS is always measured; give milvus or a Milvus URI to measure Milvus beside it")
    r = bench_search(n=n, dim=dim, queries=queries, k=k, kinds=tuple(chosen), nprobe=nprobe, ef_search=ef_search, store=store)
    r["command"] = (f"reslab bench search --n {n} --dim {dim} --queries {queries} -k {k} --nprobe {nprobe} "
                    f"--ef-search {ef_search} --kinds {','.join(chosen)}" + (f" --store {store}" if store else ""))  # fmt: skip
    name = "bench_search" if n == 200_000 and dim == 512 and store is None else f"bench_search{'_milvus' if store else ''}_{n}x{dim}"
    if chosen != list(INDEX_KINDS):
        name += "_" + "-".join(chosen)
    path = save_benchmark(name, r, out)
    say(f"{r['command']}\n  {n} x {dim} clustered vectors, {queries} queries, k={k}", markup=False)
    say(f"  {'store':>6}  {'kind':>5}  {'recall@k':>8}  {'batch ms/q':>10}  {'single ms/q':>11}  {'vs flat':>7}  {'build s':>7}  {'bytes/vec':>9}")
    for kind, v in r["kinds"].items():
        say(f"  {'faiss':>6}  {kind:>5}  {v['recall_at_k']:8.3f}  {v['batch_ms_per_query']:10.3f}  {v['single_ms_per_query']:11.3f}  "
            f"{v['single_speedup_vs_flat']:6.1f}x  {v['build_s']:7.1f}  {v['bytes_per_vector']:9.0f}")  # fmt: skip
    for kind, v in r.get("milvus", {}).get("kinds", {}).items():
        say(f"  {'milvus':>6}  {kind:>5}  {v['recall_at_k']:8.3f}  {v['batch_ms_per_query']:10.3f}  {v['single_ms_per_query']:11.3f}  "
            f"{v['single_speedup_vs_faiss_flat']:6.1f}x  {v['build_s']:7.1f}")  # fmt: skip
    if "milvus" in r:
        memory = ", ".join(f"{name.replace('_', ' ')} {value:.0f}" for name, value in r["milvus"]["memory"].items())
        say(f"  milvus ({r['milvus']['store']}): {memory}; 'vs flat' is against FAISS flat; build = index copy + index", markup=False)
        c = r["milvus"]["copy"]
        say(f"  local index of the same vectors built in {c['local_index_build_s']:.1f} s", markup=False)
        for direction in ("local_to_milvus", "milvus_to_local"):
            v = c[direction]
            say(f"  index copy {direction.replace('_', ' ')}: {v['seconds']:.1f} s, {v['items_per_s']:,.0f} items/s "
                f"({v['over_local_build']:.1f}x the local build), peak memory +{v['peak_rss_growth_bytes_per_vector']:,.0f} bytes/vector, "
                f"{v['checked_items']} sampled items verified", markup=False)  # fmt: skip
    say(f"saved {path}", markup=False)


@bench_app.command("features")
def features(
    images: Annotated[int, typer.Option(min=4, help="Photos to embed per method (skimage sample photos, cycled and varied).")] = 64,
    out: ResultsDir = None,
) -> None:
    """Throughput of the classical embedders, pair matching and face detection, as ratios to the CNN embedder."""
    from ..features.bench import run_features_benchmark

    run_features_benchmark(images, out)


@bench_app.command("near-duplicates")
def near_duplicates(
    src: Annotated[Optional[Path], typer.Argument(help="Folder of photos to copy and edit (default: the photos bundled with scikit-image/learn).")] = None,
    n: Annotated[int, typer.Option(min=2, help="Originals (each gets 5 edited copies).")] = 200,
    methods: Annotated[str, typer.Option(help="Comma-separated: ahash, dhash, phash, whash, cnn.")] = "ahash,dhash,phash,whash,cnn",
    speed: Annotated[bool, typer.Option(help="Also time binary vs float search on a million items.")] = True,
    out: ResultsDir = None,
) -> None:
    """Recall of perceptual hashes and the CNN embedder on edited copies (resize, re-encode, crop, flip, brightness), with speed."""
    from ..console import say
    from ..provenance import save_benchmark
    from ..search.near_duplicates import bench_near_duplicates
    from .search import quiet_faiss

    quiet_faiss()
    chosen = tuple(comma_choices(methods, "--methods", ("ahash", "dhash", "phash", "whash", "cnn")))
    r = bench_near_duplicates(src, n=n, methods=chosen, speed=speed)
    r["command"] = "reslab bench near-duplicates" + (f" {src}" if src else "") + f" --n {n} --methods {','.join(chosen)}"
    path = save_benchmark("bench_near_duplicates", r, out)
    say(f"{r['command']}\n  {r['source']}, edits: {', '.join(r['edits'])}", markup=False)
    say(f"  {'method':<14} {'top-1':>6} {'recall@rule':>11} {'false pairs':>11} {'images/s':>9} " + " ".join(f"{e:>10}" for e in r["edits"]))
    for name, m in r["methods"].items():
        per_edit = " ".join(f"{m['edits'][e]['top1']:>10.3f}" for e in r["edits"])
        say(f"  {name:<14} {m['top1_all']:>6.3f} {m['recall_at_threshold_all']:>11.3f} {m['false_pairs']:>11d} "
            f"{m['images_per_s']:>9.1f} {per_edit}", markup=False)  # fmt: skip
    if "index_top1" in r["methods"].get("cnn", {}):
        t = r["methods"]["cnn"]["index_top1"]
        say("  cnn through an index built with `reslab embed`'s defaults, top-1: "
            + ", ".join(f"{e} {v:.3f}" for e, v in t.items()), markup=False)
    if "search_speed" in r:
        s = r["search_speed"]
        say(f"  search, one query, per million items: binary {s['binary_ms_per_query_per_million']:.2f} ms, "
            f"float {s['float_ms_per_query_per_million']:.1f} ms ({s['float_over_binary']:.0f}x)")
    say(f"saved {path}", markup=False)
