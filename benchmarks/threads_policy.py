"""The threads policy's measurement: decode workers x their priority x intra-op threads, in one process.

The embed pipeline (walk, decode in worker processes, the network on the chosen runtime, commit)
is timed for each setting, round-robin, best of three, on the same photos, beside the network alone
on pre-decoded inputs. The policy in `reslab.inference.threads` is the setting that keeps the
pipeline closest to the network alone. Results: benchmarks/results/threads_policy.json.

    python benchmarks/threads_policy.py [--n 192] [--batch-size 32] [--runtime auto]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--n", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runtime", default="auto")
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
        src = _photo_folder(args.n, work)
        cores = physical_cores()
        embedders = {}  # intra-op threads -> embedder (a session per thread count)
        for threads in sorted({cores, max(1, cores - 1)}):
            emb = CnnEmbedder(model=args.model, weights=default_weights(args.model), runtime=args.runtime, batch_size=args.batch_size)
            emb._session = open_session(emb.loaded, args.runtime, batch_size=args.batch_size, threads=threads)
            embedders[threads] = emb
        first = embedders[cores]
        decoded = [first.preprocess(load_image(p, min_size=first.min_size)) for p in walk_images(src)]
        batches = [decoded[i : i + args.batch_size] for i in range(0, len(decoded), args.batch_size)]
        real_init = embed_module._worker_init

        def niced_init():
            real_init()
            os.nice(10)

        def pipeline(threads: int, workers: int, nice: bool):
            def run():
                embed_module._worker_init = niced_init if nice else real_init
                try:
                    build_index(src, work / f"index-{time.perf_counter_ns()}", embedders[threads],
                                EmbedOptions(batch_size=args.batch_size, workers=workers, progress=False))
                finally:
                    embed_module._worker_init = real_init
            return run

        runs = {f"model alone, {t} threads": (lambda e=e: [e.embed(b) for b in batches]) for t, e in embedders.items()}
        for threads in embedders:
            for workers in (0, 1, 2):
                for nice in ((False, True) if workers else (False,)):
                    runs[f"pipeline, {threads} threads, {workers} workers{' niced' if nice else ''}"] = pipeline(threads, workers, nice)
        for fn in runs.values():
            fn()  # warm-up
        best = {name: float("inf") for name in runs}
        for _ in range(3):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
        rates = {name: len(decoded) / t for name, t in best.items()}
        model_best = max(v for k, v in rates.items() if k.startswith("model alone"))
        result = {
            "benchmark": "threads_policy",
            "model": args.model,
            "runtime": str(first.session.choice),
            "images": len(decoded),
            "batch_size": args.batch_size,
            "physical_cores": cores,
            "images_per_s": rates,
            "over_model_alone": {k: v / model_best for k, v in rates.items()},
            "command": f"python benchmarks/threads_policy.py --n {args.n} --batch-size {args.batch_size} --runtime {args.runtime}",
        }
        path = save_benchmark("threads_policy", result, args.out)
        for name, rate in rates.items():
            print(f"{name:>45}: {rate:7.1f} images/s ({rate / model_best:.2f}x the model alone)")
        print(f"saved {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
