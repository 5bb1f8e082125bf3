"""Retrieval precision@10 on the ants/bees photos: self-supervised vs ImageNet-supervised vs random features.

    python benchmarks/ssl_retrieval.py --data HYMENOPTERA_ROOT [--method simclr] [--epochs 200] [--image-size 64]

1. self-supervised: `reslab train ssl_<method>` on the 244 training photos (labels ignored), at a
   CPU-sized input (64 px) and a CIFAR ResNet-20;
2. random: the same recipe's network at its random initialisation (one step at learning rate 0, so
   the run folder, input size and normalisation are the same as 1.'s);
3. ImageNet-supervised: EfficientNet-Lite0 with its ImageNet weights (224 px);
then `reslab embed val/ --run RUN` (or `--model efficientnet_lite0`) and `reslab eval-retrieval`
over the 153 validation photos (leave-one-out, folder labels as relevance).
Results: benchmarks/results/ssl_retrieval_hymenoptera.json (commands, load average, CPU flags).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ssl_cifar10 import cpu_flags, load_average  # noqa: E402

from reslab.provenance import bench_results_dir  # noqa: E402

RESLAB = [sys.executable, "-m", "reslab"]


def cli(*args) -> str:
    cmd = [*RESLAB, *map(str, args)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    print(f"$ reslab {' '.join(map(str, args))}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="hymenoptera: train/{ants,bees}/ and val/{ants,bees}/")
    p.add_argument("--method", default="simclr", choices=("simclr", "moco", "byol"))
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--knn-every", type=int, default=10, help="epochs between kNN monitor evaluations on the val photos")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--work", type=Path, default=Path("/tmp/ssl-retrieval"))
    p.add_argument("--out", type=Path, default=bench_results_dir(), help="default: $RESLAB_BENCH_RESULTS, else benchmarks/results")
    args = p.parse_args()
    work = args.work
    record = {"benchmark": "ssl_retrieval_hymenoptera", "load_average_start": load_average(), "cpu": cpu_flags(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": "python benchmarks/ssl_retrieval.py " + " ".join(sys.argv[1:]),
              "steps": []}  # fmt: skip
    common = ["--set", f'run.dir="{work / "runs"}"', "--set", "run.progress=false", "--set", f"data.image_size={args.image_size}",
              "--set", f"train.batch_size={args.batch_size}", "--set", f'ssl.knn_data="{args.data}"', "--set", f"ssl.knn_every={args.knn_every}"]  # fmt: skip
    runs = {"self-supervised": work / "runs" / f"{args.method}", "random": work / "runs" / "random"}
    if not (runs["self-supervised"] / "model.safetensors").is_file():
        cli("train", f"ssl_{args.method}", "--data", args.data, "--name", args.method, *common, "--set", f"train.epochs={args.epochs}")
    if not (runs["random"] / "model.safetensors").is_file():
        cli("train", f"ssl_{args.method}", "--data", args.data, "--name", "random", *common, "--set", "train.epochs=0",
            "--set", "train.steps=1", "--set", "optim.lr=0")
    rows = [json.loads(line) for line in (runs["self-supervised"] / "metrics.jsonl").read_text().splitlines()]
    record["ssl_training"] = {"epochs": args.epochs, "wall_s": rows[-1]["wall_time"], "final_knn_top1_val": rows[-1].get("knn_top1"),
                              "best_knn_top1_val": max(r.get("knn_top1", 0) for r in rows)}  # fmt: skip
    results = {}
    for label, source in (("self-supervised", ["--run", runs["self-supervised"]]), ("random", ["--run", runs["random"]]),
                          ("imagenet-supervised", ["--model", "efficientnet_lite0"])):  # fmt: skip
        index = work / f"index-{label}"
        if not index.exists():
            cli("embed", args.data / "val", "--out", index, *source, "--workers", "0", "--json")
        results[label] = json.loads(cli("eval-retrieval", index, "--cutoffs", "1,10", "--json"))[0]
        print(label, results[label], flush=True)
    record["retrieval"] = results
    record["load_average_end"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "ssl_retrieval_hymenoptera.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
