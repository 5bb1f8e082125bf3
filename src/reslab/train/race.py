"""`reslab bench recipe`: time to accuracy of training recipes, over seeds, in one table.

Each recipe trains once per seed with `fit`, on the same data and machine. A run's time is the
wall time of the whole `fit` call: data loading (decoded images come from the cache after the
first run), the data-dependent initialisation, compiling, training, the evaluations the recipe
asks for and its final test-time-augmented evaluation. The table gives mean +- std of the final
top-1 (with the recipe's test-time views, else the last evaluation), the wall time, the epochs
and the work in FLOPs (training: forward + backward per image x images; evaluation: forward x views
x images), and saves benchmarks/results/recipe_<names>.json with every run.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch


def train_flops_per_image(model_name: str, options: dict, image_size: int, num_classes: int) -> tuple[float, float]:
    """(forward + backward, forward) FLOPs of one image (2 per multiply-accumulate), from torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import create_model

    model = create_model(model_name, num_classes=num_classes, **options).train()
    x = torch.randn(2, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
    forward = counter.get_total_flops() / 2
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    return counter.get_total_flops() / 2, forward


def run_one(recipe: str, data: str, seed: int, overrides: list[str], runs_dir: Path) -> dict:
    import json

    from .config import load_config
    from .engine import fit

    cfg = load_config(recipe, [f'data.path="{data}"', f"train.seed={seed}", "run.progress=false",
                               f'run.dir="{runs_dir}"', f"run.name={Path(str(recipe)).stem}-seed{seed}", *overrides])
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    history = fit(cfg)
    wall = time.perf_counter() - start
    meta = json.loads((history.run_dir / "meta.json").read_text())
    last = history.rows[-1] if history.rows else {}
    evaluations = sum(1 for r in history.rows if "val_top1" in r) * (2 if cfg.train.ema_decay > 0 else 1)
    return {
        "recipe": str(recipe), "seed": seed,
        "top1": history.final_eval["top1"] if history.final_eval else last.get("val_top1"),
        "last_eval_top1": last.get("val_top1"), "tta": cfg.train.eval_tta or None,
        "wall_s": wall, "train_and_eval_s": last.get("wall_time"),
        "steps": meta["total_steps"], "epochs": meta["total_steps"] / meta["steps_per_epoch"],
        "images": meta["total_steps"] * meta["global_batch"], "eval_images": (history.final_eval or {}).get("count"),
        "evaluations": evaluations, "eval_views": _views(cfg.train.eval_tta),
        "model": cfg.model.name, "model_options": dict(cfg.model.options), "image_size": cfg.data.image_size,
        "num_classes": _classes_of(history), "compile": _compile_state(history.run_dir),
        "run_dir": str(history.run_dir), "load_average_before": list(load_before) if load_before else None,
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }  # fmt: skip


def _classes_of(history) -> int:
    classifier = history.model.get_classifier() if hasattr(history.model, "get_classifier") else None
    return classifier.out_features if classifier is not None else 10


def _views(tta: str) -> int:
    return {"": 1, "flip": 2, "ten_crop": 10, "flip_shift": 6}.get(tta, 1)


def _compile_state(run_dir) -> dict:
    from .checkpoint import load_checkpoint

    try:
        return load_checkpoint(run_dir)["state"].get("compile", {})
    except Exception:  # noqa: BLE001 - informational only
        return {}


def summarise(runs: list[dict]) -> list[dict]:
    """One row per recipe: mean +- std over its seeds, and the FLOPs of one run."""
    rows = []
    for recipe in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == recipe]
        first = mine[0]
        train_flops, forward_flops = train_flops_per_image(first["model"], first["model_options"], first["image_size"],
                                                         first["num_classes"])
        eval_images = first["eval_images"] or 0
        eval_passes = first["eval_views"] + max(0, first["evaluations"])  # the final views and the epoch evaluations
        flops = train_flops * first["images"] + forward_flops * eval_passes * eval_images
        top1 = [r["top1"] for r in mine if r["top1"] is not None]
        wall = [r["wall_s"] for r in mine]
        rows.append({
            "recipe": recipe, "seeds": [r["seed"] for r in mine], "top1": top1,
            "top1_mean": statistics.fmean(top1) if top1 else None,
            "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
            "wall_s_mean": statistics.fmean(wall), "wall_s_std": statistics.stdev(wall) if len(wall) > 1 else 0.0,
            "epochs": first["epochs"], "train_images": first["images"], "pflop": flops / 1e15,
            "gflop_per_train_image": train_flops / 1e9, "model": first["model"], "tta": first["tta"],
        })  # fmt: skip
    return rows


def run_race(recipes: list[str], data: str, seeds: list[int], overrides: list[str] | None = None,
             out: Path | None = None, runs_dir: Path | None = None) -> dict:
    """Train every recipe with every seed; print and save the table (benchmarks/results/recipe_<names>.json)."""
    import tempfile

    from ..console import new_table, note, print_table, wrote
    from ..provenance import save_benchmark

    overrides = list(overrides or [])
    runs = []
    with tempfile.TemporaryDirectory(prefix="reslab-race-") as tmp:
        where = Path(runs_dir) if runs_dir else Path(tmp)
        for recipe in recipes:
            for seed in seeds:
                note(f"{recipe}, seed {seed} ...")
                r = run_one(recipe, data, seed, overrides, where)
                runs.append(r)
                note(f"  top-1 {r['top1']:.2f}% in {r['wall_s'] / 60:.1f} min")
    rows = summarise(runs)
    table = new_table("recipe", "top-1 % (mean ± std)", "wall min", "epochs", "PFLOP", "seeds",
                      right=("top-1 % (mean ± std)", "wall min", "epochs", "PFLOP"), title=f"time to accuracy on {data}")
    for row in rows:
        table.add_row(row["recipe"], f"{row['top1_mean']:.2f} ± {row['top1_std']:.2f}",
                      f"{row['wall_s_mean'] / 60:.1f} ± {row['wall_s_std'] / 60:.1f}", f"{row['epochs']:.1f}",
                      f"{row['pflop']:.2f}", str(len(row["seeds"])))
    print_table(table)
    result = {"benchmark": "recipe", "data": str(data), "seeds": seeds, "overrides": overrides, "rows": rows, "runs": runs}
    path = save_benchmark("recipe_" + "_vs_".join(Path(str(r)).stem for r in recipes), result, out)
    wrote(path)
    return result
