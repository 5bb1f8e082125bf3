"""The GPU check, in one command (`make gpu-bench`), in under five minutes on a data-centre GPU:

1. ResNet-50 training images/s, bf16 autocast + channels_last + fused SGD, batch 256, 224 px
   (NVIDIA's published A100 figure for PyTorch mixed precision is ~2,470 images/s with DALI);
2. CIFAR ResNet-20 training images/s (batch 512, in-memory data on the GPU);
3. the `cifar_fast` recipe's time to accuracy on the CIFAR-10 JPEG copy (one seed).

Each step is the engine itself (`reslab.train.fit`), eager, through `reslab bench train --fastest-only`'s
machinery; results go to benchmarks/results/gpu_bench.json with the machine.

    python benchmarks/gpu_bench.py                       # CUDA, full size
    python benchmarks/gpu_bench.py --data /data/cifar10  # a CIFAR-10 folder (default: the shared tarball, extracted once)
    python benchmarks/gpu_bench.py --device cpu --tiny   # the same code at toy sizes (the test suite runs this)
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
# the eager engine with every speed-up but torch.compile (compiling ResNet-50 would eat the time budget)
EAGER_FASTEST = ("train.amp=bf16", "train.channels_last=true", "optim.kernel=auto", "train.compile=off")


def cifar_folder(given: str | None) -> Path:
    if given:
        return Path(given)
    dest = Path.home() / ".cache" / "reslab" / "datasets" / "cifar10-jpeg"
    if not (dest / ".extracted").is_file():
        if not SHARED_CIFAR.is_file():
            sys.exit(f"no CIFAR-10 data: pass --data FOLDER (train/ and test/), or put {SHARED_CIFAR} in place")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(SHARED_CIFAR) as tar:
            tar.extractall(dest, filter="data")
        (dest / ".extracted").touch()
    return next((p for p in (dest, *sorted(dest.iterdir())) if (p / "train").is_dir()), dest)


def throughput(model: str, batch: int, steps: int, size: int, device: str, work: Path, data: Path | None = None) -> float:
    from reslab.train.bench import WARMUP_STEPS, engine_run, write_bench_images

    folder = data or write_bench_images(work / f"images-{model}", batch * (WARMUP_STEPS + steps) + batch,
                                        size if size <= 64 else 256)
    speed, _, _ = engine_run(model, folder, batch, steps, size, EAGER_FASTEST, work / "runs", device=device)
    return speed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data", help="CIFAR-10 folder with train/ and test/ (default: the shared JPEG copy)")
    ap.add_argument("--tiny", action="store_true", help="toy sizes, to test this script on a CPU")
    ap.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)

    import tempfile

    from reslab.console import say
    from reslab.provenance import save_benchmark
    from reslab.train.race import run_one

    tiny = args.tiny
    result = {"benchmark": "gpu_bench", "device": args.device, "tiny": tiny}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reslab-gpu-bench-") as tmp:
        work = Path(tmp)
        r50_batch, r50_steps, r50_size = (4, 2, 64) if tiny else (256, 20, 224)
        result["resnet50_images_per_s"] = throughput("resnet50", r50_batch, r50_steps, r50_size, args.device, work)
        result["resnet50_batch"], result["resnet50_image_size"] = r50_batch, r50_size
        say(f"ResNet-50, bf16 + channels_last, batch {r50_batch}, {r50_size} px: "
            f"{result['resnet50_images_per_s']:.0f} images/s (NVIDIA's A100 AMP figure: ~2,470)", markup=False)

        if tiny:
            from reslab.train.bench import write_bench_images

            cifar = write_bench_images(work / "cifar", 64, 32, num_classes=4)
            (cifar / "test").symlink_to(cifar / "train", target_is_directory=True)
        else:
            cifar = cifar_folder(args.data)
        r20_batch, r20_steps = (8, 2) if tiny else (512, 50)
        result["resnet20_images_per_s"] = throughput("resnet20", r20_batch, r20_steps, 32, args.device, work, data=cifar)
        say(f"CIFAR ResNet-20, bf16 + channels_last, batch {r20_batch}: {result['resnet20_images_per_s']:.0f} images/s",
            markup=False)

        overrides = [f"train.device={args.device}"]
        if tiny:
            overrides += ["model.options={widths = [8, 8, 8]}", "train.batch_size=8", "train.epochs=1",
                          "train.compile=off", "data.eval_batch_size=16"]
        run = run_one("cifar_fast", str(cifar), 0, overrides, work / "runs")
        result["cifar_fast"] = {k: run[k] for k in ("top1", "wall_s", "epochs", "steps", "compile")}
        say(f"cifar_fast: {run['top1']:.2f}% test top-1 in {run['wall_s']:.1f} s ({run['epochs']:.1f} epochs, one seed)",
            markup=False)
    result["total_s"] = time.perf_counter() - start
    path = save_benchmark("gpu_bench" + ("_tiny" if tiny else ""), result, args.out,
                          command="python benchmarks/gpu_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    say(f"{result['total_s']:.0f} s in all; saved {path}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
