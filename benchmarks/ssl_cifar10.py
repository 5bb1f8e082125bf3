"""Self-supervised pre-training on CIFAR-10 in a fixed CPU budget, scored by the kNN protocol.

    python benchmarks/ssl_cifar10.py --data CIFAR10_ROOT --phase compare   # SimCLR vs MoCo v2 vs BYOL, 5 min each
    python benchmarks/ssl_cifar10.py --data CIFAR10_ROOT --phase budget --method simclr   # 30 min
    python benchmarks/ssl_cifar10.py --data CIFAR10_ROOT --phase random     # the random-initialisation baseline

A budget is minutes of training on the CI machine (2 quiet CPU cores). It is turned into optimizer
steps, so that the same work is done whatever else loads the machine that measures it:
seconds per step = 2 x batch / (the engine's quiet ResNet-20 training throughput, from
benchmarks/results/bench_train_resnet20.json) x (the method's cost relative to SimCLR, measured
in this process with interleaved timed steps). The kNN monitor's time is not part of the budget.
Every run's final features are scored with the full protocol (`reslab eval-ssl`: bank = the 50,000
training images, queries = the 10,000 test images, k = 200, T = 0.1) and a linear probe.
Results: benchmarks/results/ssl_cifar10_<phase>.json (commands, load average, CPU flags).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from reslab.provenance import bench_results_dir, machine

REPO = Path(__file__).resolve().parents[1]
BATCH = 256
RECIPES = {"simclr": "ssl_simclr", "moco": "ssl_moco", "byol": "ssl_byol"}


def load_average() -> list[float]:
    return machine()["load_average"]


def cpu_flags() -> dict:
    """The CPU model and the flags that decide speed (reslab.provenance, as every benchmark records them)."""
    info = machine()
    return {"cpu": info["cpu"], "cores": info["cores"], "flags": info["cpu_flags"]}


def quiet_step_seconds() -> float:
    """SimCLR's seconds per step on the quiet CI machine: 2 x batch views at the engine's measured throughput."""
    bench = json.loads((bench_results_dir() / "bench_train_resnet20.json").read_text())
    return 2 * BATCH / bench["engine_bf16_channels_last_images_per_s"]


def relative_costs(methods, repeats: int = 2, steps: int = 4) -> dict[str, float]:
    """Seconds per training step of each method over SimCLR's, timed interleaved in this process."""
    import torch

    from reslab.ssl.task import build_ssl_model
    from reslab.train import load_config
    from reslab.train.evaluate import autocast

    models = {}
    for m in sorted(set(methods) | {"simclr"}):
        torch.manual_seed(0)
        model = build_ssl_model(load_config(RECIPES[m])).to(memory_format=torch.channels_last).train()
        models[m] = (model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9))
    x = torch.randn(2 * BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    times = {m: [] for m in models}
    for r in range(repeats + 1):
        for m, (model, opt) in models.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                with autocast(torch.device("cpu"), "bf16"):
                    loss = model(x, torch.Generator().manual_seed(0))["loss"]
                loss.backward()
                opt.step()
                opt.zero_grad()
                if hasattr(model, "update_teacher"):
                    model.update_teacher(0.99)
            if r:  # the first round warms up
                times[m].append((time.perf_counter() - t0) / steps)
    base = min(times["simclr"])
    return {m: min(t) / base for m, t in times.items()}


def augmentation_share(repeats: int = 5) -> dict:
    """Two-view batched augmentation of 256 CIFAR images (SimCLR's recipe) against one SimCLR step, timed here."""
    import torch

    from reslab.data.batch_augment import BatchTrainAugment
    from reslab.ssl.task import build_ssl_model
    from reslab.train import load_config
    from reslab.train.evaluate import autocast

    cfg = load_config("ssl_simclr")
    augment = BatchTrainAugment(cfg.data, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), 3)
    x = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8)
    model = build_ssl_model(cfg).to(memory_format=torch.channels_last).train()
    aug_t, step_t = [], []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        views = augment(x, torch.Generator().manual_seed(r)).contiguous(memory_format=torch.channels_last)
        t1 = time.perf_counter()
        with autocast(torch.device("cpu"), "bf16"):
            model(views)["loss"].backward()
        t2 = time.perf_counter()
        if r:
            aug_t.append(t1 - t0)
            step_t.append(t2 - t1)
    return {"augment_s_per_batch": round(min(aug_t), 4), "simclr_forward_backward_s_per_batch": round(min(step_t), 4),
            "augment_share_of_step": round(min(aug_t) / min(step_t), 4)}  # fmt: skip


def train(method: str, data: str, runs: Path, steps: int, name: str, knn_limit: int, extra: list[str] = ()) -> dict:
    from reslab.train import fit, load_config

    overrides = [f'data.path="{data}"', f'run.dir="{runs}"', f'run.name="{name}"', "train.epochs=0", f"train.steps={steps}",
                 f"train.batch_size={BATCH}", f'ssl.knn_data="{data}"', f"ssl.knn_limit_per_class={knn_limit}",
                 "run.progress=false", *extra]  # fmt: skip
    run_dir = runs / name
    t0, c0 = time.perf_counter(), time.process_time()
    if (run_dir / "model.safetensors").is_file():
        history = None
    else:
        resume = run_dir if (run_dir / "checkpoints" / "last.pt").is_file() else None
        history = fit(load_config(RECIPES[method], overrides), resume=resume)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"method": method, "run": str(run_dir), "steps": steps, "epochs": round(steps / (50000 // BATCH), 2),
            "wall_s_this_session": round(time.perf_counter() - t0, 1), "cpu_s_this_session": round(time.process_time() - c0, 1),
            "train_wall_s": rows[-1]["wall_time"], "knn_curve": [{k: r.get(k) for k in ("epoch", "step", "train_loss", "knn_top1", "knn_seconds", "wall_time")} for r in rows],
            "command": f"reslab train {RECIPES[method]} --data CIFAR10_ROOT " + " ".join(f"--set {o}" for o in overrides[3:] if "run." not in o),
            "resumed": history is None}  # fmt: skip


def score(source: str, data: str, weights: str | None = None) -> dict:
    """The full protocol's kNN and linear-probe scores; a run's earlier scores are reused when newer than its weights."""
    from reslab.ssl.evaluate import evaluate_features

    saved, model = Path(source) / "eval-ssl" / "metrics.json", Path(source) / "model.safetensors"
    if weights is None and saved.is_file() and model.is_file() and saved.stat().st_mtime > model.stat().st_mtime:
        result = json.loads(saved.read_text())
        if result.get("bank") == 50000 and result.get("count") == 10000:
            return {k: result.get(k) for k in ("knn_top1", "knn_top5", "probe_top1", "probe_weight_decay", "bank", "count", "dim", "seconds", "encoder")}
    result = evaluate_features(source, data, weights=weights, batch_size=500, device="cpu")
    return {k: result[k] for k in ("knn_top1", "knn_top5", "probe_top1", "probe_weight_decay", "bank", "count", "dim", "seconds", "encoder")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10: train/<class>/ and test/<class>/ (or cifar-10-batches-py)")
    p.add_argument("--phase", choices=("compare", "budget", "random"), required=True)
    p.add_argument("--method", default="simclr", choices=tuple(RECIPES), help="budget phase: the method to train (SimCLR: best in the 5-minute compare)")
    p.add_argument("--minutes", type=float, default=None, help="the budget (default: 5 to compare, 30 for budget)")
    p.add_argument("--runs", type=Path, default=Path("/tmp/ssl-cifar10-runs"))
    p.add_argument("--knn-limit-per-class", type=int, default=200, help="the per-epoch monitor's bank (the final score uses all)")
    p.add_argument("--out", type=Path, default=bench_results_dir(), help="default: $RESLAB_BENCH_RESULTS, else benchmarks/results")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run, e.g. train.compile=off (compiling on a loaded machine costs more than it saves)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(2)
    record = {"benchmark": f"ssl_cifar10_{args.phase}", "data": "CIFAR-10 JPEG copy (../shared/data/cifar10-jpeg.tar.gz)",
              "load_average_start": load_average(), "cpu": cpu_flags(), "python": platform.python_version(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": "python benchmarks/ssl_cifar10.py " + " ".join(sys.argv[1:])}  # fmt: skip
    if args.phase == "random":
        record["random_init"] = score("resnet20", args.data)
    else:
        minutes = args.minutes or (5.0 if args.phase == "compare" else 30.0)
        methods = list(RECIPES) if args.phase == "compare" else [args.method]
        costs = relative_costs(methods)
        record["two_view_augmentation"] = augmentation_share()
        quiet = quiet_step_seconds()
        record.update(minutes=minutes, quiet_simclr_step_s=round(quiet, 4), relative_step_cost=costs, runs=[])
        for method in methods:
            steps = int(round(minutes * 60 / (quiet * costs[method])))
            run = train(method, args.data, args.runs, steps, f"{method}-{minutes:g}min", args.knn_limit_per_class, args.extra)
            run["final"] = score(run["run"], args.data)
            record["runs"].append(run)
            print(json.dumps({k: run[k] for k in ("method", "steps", "epochs", "train_wall_s")} | run["final"]), flush=True)
    record["load_average_end"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ssl_cifar10_{args.phase}{'_' + args.method if args.phase == 'budget' else ''}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
