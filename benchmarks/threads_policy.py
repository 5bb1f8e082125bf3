"""The threads policy's measurement: where image decoding runs beside the network, in one process.

The embed pipeline (walk, decode + preprocess, the network on the chosen runtime, commit) is timed
for each setting, round-robin, best of three, on the same photos, beside the network alone on
pre-decoded inputs:
- intra-op threads of the network: one per core, or one fewer (a core left to decoding);
- decoding: in this process between batches, in 1 or 2 threads of this process up to two batches
  ahead (Pillow releases the GIL; `--workers 0`), or in 1-2 worker processes (`--workers N`).
The defaults in `reslab.inference.threads` are the settings that keep the pipeline closest to the
network alone. Results: benchmarks/results/threads_policy[_TAG].json.

    python benchmarks/threads_policy.py [SRC] [--n 256] [--batch-size 32] [--runtime auto] [--tag photos]

SRC: a folder of photos (default: photos made from the bundled samples).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", type=Path, default=None)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from reslab.embeddings import CnnEmbedder
    from reslab.imageio import load_image
    from reslab.inference import default_weights, open_session
    from reslab.inference.threads import physical_cores
    from reslab.provenance import save_benchmark
    from reslab.search import embed as embed_module
    from reslab.search.bench import _photo_folder
    from reslab.search.embed import EmbedOptions, build_index
    from reslab.search.walk import walk_images

    work = Path(tempfile.mkdtemp(prefix="reslab-threads-"))
    try:
        if args.src is None:
            src, source = _photo_folder(args.n, work), f"{args.n} photos made from the bundled samples"
        else:  # exactly n files of SRC, in a folder of their own
            src, source = work / "photos", str(args.src)
            src.mkdir()
            for i, p in zip(range(args.n), walk_images(args.src)):
                (src / f"{i:05d}{p.suffix}").symlink_to(p.resolve())
        cores = physical_cores()
        embedders = {}  # intra-op threads -> embedder (a session per thread count)
        for threads in sorted({cores, max(1, cores - 1)}):
            emb = CnnEmbedder(model=args.model, weights=default_weights(args.model), runtime=args.runtime, batch_size=args.batch_size)
            emb._session = open_session(emb.loaded, args.runtime, batch_size=args.batch_size, threads=threads)
            embedders[threads] = emb
        first = embedders[cores]
        decoded = [first.preprocess(load_image(p, min_size=first.min_size)) for p in walk_images(src)]
        batches = [decoded[i : i + args.batch_size] for i in range(0, len(decoded), args.batch_size)]
        sizes = sorted({load_image(p).size for p in walk_images(src)})

        def pipeline(threads: int, decode: str):
            workers = int(decode.split()[0]) if decode.endswith("workers") else 0
            decode_threads = int(decode.split()[0]) if "thread" in decode else 0

            def run():
                embed_module.DECODE_THREADS = decode_threads
                try:
                    build_index(src, work / f"index-{time.perf_counter_ns()}", embedders[threads],
                                EmbedOptions(batch_size=args.batch_size, workers=workers, progress=False))
                finally:
                    embed_module.DECODE_THREADS = default_decode_threads
            return run

        default_decode_threads = embed_module.DECODE_THREADS
        runs = {f"model alone, {t} threads": (lambda e=e: [e.embed(b) for b in batches]) for t, e in embedders.items()}
        for threads in embedders:
            for decode in ("in-process", "1 decode thread", "2 decode threads", "1 workers", "2 workers"):
                runs[f"pipeline, {threads} threads, {decode}"] = pipeline(threads, decode)
        for fn in runs.values():
            fn()  # warm-up
        best = {name: float("inf") for name in runs}
        for _ in range(3):
            for name, fn in runs.items():
                time.sleep(0.05)  # the previous setting's threads stop spinning
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
        rates = {name: len(decoded) / t for name, t in best.items()}
        model_best = max(v for k, v in rates.items() if k.startswith("model alone"))
        command = (f"python benchmarks/threads_policy.py{' ' + str(args.src) if args.src else ''} --n {args.n} "
                   f"--batch-size {args.batch_size} --runtime {args.runtime}" + (f" --tag {args.tag}" if args.tag else ""))
        result = {
            "benchmark": "threads_policy",
            "model": args.model,
            "runtime": str(first.session.choice),
            "source": source,
            "images": len(decoded),
            "image_sizes": f"{sizes[0][0]}x{sizes[0][1]} .. {sizes[-1][0]}x{sizes[-1][1]}",
            "batch_size": args.batch_size,
            "physical_cores": cores,
            "images_per_s": rates,
            "over_model_alone": {k: v / model_best for k, v in rates.items()},
            "command": command,
        }
        path = save_benchmark("threads_policy" + (f"_{args.tag}" if args.tag else ""), result, args.out)
        print(f"{source}: {len(decoded)} images, {result['image_sizes']}, runtime {result['runtime']}")
        for name, rate in rates.items():
            print(f"{name:>45}: {rate:7.1f} images/s ({rate / model_best:.2f}x the model alone)")
        print(f"saved {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
