"""What every experiment shares: presets, training one run, provenance, mean +- std, writing results.

An experiment trains several runs (one per network and seed) with one recipe, under
`OUT/runs/<net>-s<seed>`, and writes `results.json`, `results.md` and PNGs to `OUT`. Run again,
a finished run (its `model.safetensors` exists) with the same config is reused and a stopped one
resumes from its last checkpoint, so a long GPU experiment continues where it stopped; a run
with another config is an error, never overwritten.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import ReslabError
from ..fileio import atomic_write_text
from ..provenance import code_version, machine

log = logging.getLogger(__name__)

PAPER_RECIPE = "cifar_resnet_paper"
Changes = dict[str, dict]  # config keys by section: {"model": {"name": "resnet56", "options": {}}}


@dataclass(frozen=True)
class Preset:
    """A recipe plus overrides applied to every run of an experiment."""

    name: str
    recipe: str | None  # a shipped recipe name or a TOML path; None = the config defaults
    overrides: tuple[str, ...] = ()
    description: str = ""


# quick: the paper's recipe on a CIFAR-10 subset: 1,000 training images per class at 16x16 (a
# quarter of the compute of 32x32; padding 2 instead of 4 to match), a seeded 2% hold-out
# (1,000 images) for the test-error curves, 12 epochs at batch 128 (about 940 steps), a one-epoch
# lr warm-up from 0.01 (the paper warms ResNet-110 up the same way), lr /10 after epochs 8 and 11.
# Measured: plain20/plain56/resnet20/resnet56 in 5 minutes on 2 CPU cores, with plain56 40 points
# of training error behind plain20 and resnet56 within 5 points of resnet20. Trends, not the
# paper's numbers.
QUICK = Preset(
    name="quick",
    recipe=PAPER_RECIPE,
    overrides=(
        "data.limit_per_class=1000",
        "data.image_size=16",
        "data.cifar_pad=2",
        "data.val_fraction=0.02",
        "data.eval_split=holdout",
        "train.steps=0",
        "train.epochs=12",
        "train.batch_size=128",
        "schedule.unit=epoch",
        "schedule.milestones=[8, 11]",
        "schedule.warmup=1",  # lr 0.01 -> 0.1 over the first epoch: a cold 0.1 can blow up the deep plain nets
        "train.eval_every=1",
    ),
    description="CIFAR-10 subset at 16x16 (1,000/class for training, 1,000 held out), 12 epochs, batch 128: CPU minutes, trends only",
)
# full: the paper's recipe (batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, 64k
# iterations) on all 50k training images, test error on the 10k test set, as in its Table 6.
FULL = Preset(
    name="full",
    recipe=PAPER_RECIPE,
    overrides=("data.val_fraction=0", "data.eval_split=test"),
    description="the paper's CIFAR-10 recipe, 50k train / 10k test (GPU hours)",
)
# gpu10: every depth of Table 6 (20, 32, 44, 56, 110) on all 50k images in about ten minutes on one
# data-centre GPU, all five networks together. Budget: one image through the five nets costs
# 3.2 GFLOP of training work (forward + backward; ResNet-20 0.24, ResNet-110 1.3), so 20 epochs are
# 3.2 PFLOP; CIFAR ResNets reach only 5-10 TFLOP/s of bf16 on an A100 (small 16-64 channel convs),
# i.e. 5-10 minutes. Batch 512 at lr 0.4 (the paper's 0.1 at 128, scaled linearly) with a 2-epoch
# warm-up and a cosine decay: the usual short-schedule recipe; deeper nets still gain from depth at
# 20 epochs, which is the ordering the table is about (not the paper's absolute errors).
GPU10 = Preset(
    name="gpu10",
    recipe=PAPER_RECIPE,
    overrides=(
        "data.val_fraction=0",
        "data.eval_split=test",
        "train.steps=0",
        "train.epochs=20",
        "train.batch_size=512",
        "optim.lr=0.4",
        "schedule.name=cosine",
        "schedule.unit=epoch",
        "schedule.warmup=2",
        "schedule.warmup_start=0.1",
        "train.amp=bf16",
        "train.channels_last=true",
        "train.eval_every=5",
    ),
    description="all 50k training images at 32x32, 20 epochs, batch 512, lr 0.4 cosine, bf16: about 10 minutes for "
                "all five depths on one GPU (designed from FLOPs, not yet timed on one)",
)
# cpu: the ordering on two CPU cores: 2,500 training images per class at 16x16 (a quarter of the
# FLOPs of 32x32), the full 10k test set (at 16x16), 24 epochs at batch 128 (about 11,700 steps per
# network), lr 0.1 with a one-epoch warm-up, /10 after epochs 16 and 21. The five networks cost
# 0.8 GFLOP per image together at 16x16, so 600k images take about an hour at the ~150 GFLOP/s
# the engine reaches on two quiet cores. Five times the quick preset's data and twice its epochs,
# so that depth has data to pay off on (the quick preset's 10k images favour the smaller nets).
CPU = Preset(
    name="cpu",
    recipe=PAPER_RECIPE,
    overrides=(
        "data.limit_per_class=2500",
        "data.image_size=16",
        "data.cifar_pad=2",
        "data.val_fraction=0",
        "data.eval_split=test",
        "train.steps=0",
        "train.epochs=24",
        "train.batch_size=128",
        "schedule.unit=epoch",
        "schedule.milestones=[16, 21]",
        "schedule.warmup=1",
        "train.amp=bf16",
        "train.channels_last=true",
        "train.eval_every=4",
    ),
    description="CIFAR-10 subset at 16x16 (2,500/class, full test set), 24 epochs, batch 128, bf16: about an hour "
                "for all five depths on 2 CPU cores; the ordering, not the paper's numbers",
)
PRESETS = {p.name: p for p in (QUICK, CPU, GPU10, FULL)}


@dataclass(frozen=True)
class ExperimentSetup:
    data: str  # a CIFAR-10 folder or cifar-10-batches-py directory
    out: Path  # results folder; runs go to out/runs
    preset: Preset = QUICK
    seeds: tuple[int, ...] = (0,)
    extra: tuple[str, ...] = ()  # user --set overrides, applied last
    device: str = "auto"
    runs_dir: Path | None = None  # where runs are trained or reused; None = out/runs

    @property
    def runs_folder(self) -> Path:
        return Path(self.runs_dir) if self.runs_dir is not None else Path(self.out) / "runs"


@dataclass(frozen=True)
class RunResult:
    net: str  # the experiment's name for this network, e.g. "plain20" or "resnet20-B"
    seed: int
    run_dir: Path
    rows: list[dict] = field(hash=False)
    config: dict = field(hash=False)

    @property
    def final_train_error(self) -> float | None:
        return _final_error(self.rows, "train_top1")

    @property
    def final_test_error(self) -> float | None:
        return _final_error(self.rows, "val_top1")


def _final_error(rows: list[dict], key: str) -> float | None:
    for row in reversed(rows):
        if row.get(key) is not None:
            return 100.0 - float(row[key])
    return None


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2)."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ReslabError(f"--seeds must be integers separated by commas, like 0,1,2; got '{text}'") from None
    if not seeds:
        raise ReslabError("--seeds needs at least one seed, like 0 or 0,1,2")
    return seeds


def parse_depths(text: str, allowed: Sequence[int] | None = None) -> tuple[int, ...]:
    try:
        depths = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ReslabError(f"--depths must be integers separated by commas, like 20,56; got '{text}'") from None
    bad = [d for d in depths if (allowed is not None and d not in allowed) or d < 1]
    if bad or not depths:
        hint = f"; CIFAR nets come in depths {', '.join(map(str, allowed))}" if allowed else ""
        raise ReslabError(f"--depths {text} is not a list of available depths{hint}")
    return depths


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for a single value)."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def fmt_mean_std(values: Sequence[float], digits: int = 2) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if len(values) < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def run_config(setup: ExperimentSetup, net_changes: Changes, name: str, seed: int):
    """The preset's recipe and overrides, then the network's own keys, then where the run goes,
    then the user's --set (which wins)."""
    from ..train.config import apply_overrides, load_config, replace

    config = load_config(setup.preset.recipe, setup.preset.overrides)
    config = replace(config, **net_changes)
    config = replace(config, data={"path": str(setup.data)}, train={"seed": seed, "device": setup.device},
                     run={"dir": str(setup.runs_folder), "name": name})  # fmt: skip
    return apply_overrides(config, setup.extra)


# keys that may change between the sessions of one experiment without changing its result
RESUMABLE_DIFFERENCES = {"data.path", "data.workers", "train.device", "run.progress", "run.tensorboard", "run.dir"}


def config_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (TOML lists == tuples)."""
    differ = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if f"{section}.{key}" in RESUMABLE_DIFFERENCES:
                continue
            va, vb = a.get(key), b.get(key)
            if isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)):
                va, vb = list(va), list(vb)
            if f"{section}.{key}" == "model.num_classes" and 0 in (va, vb):
                continue  # 0 = "as many as the data has", resolved in the saved config
            if va != vb:
                differ.append(f"{section}.{key}")
    return differ


def train_net(setup: ExperimentSetup, net: str, net_changes: Changes, seed: int, task=None) -> RunResult:
    """Train one network with one seed; reuse a finished run of the same config, resume a stopped one.

    net_changes: the network's own config keys by section, e.g. {"model": {"name": "resnet56"}}.
    task: optional `fn(config) -> task` for `fit` (default: what the config trains), e.g. a
    classification task that also records gradients.
    """
    from ..report.html import read_config, read_metrics
    from ..train import fit

    name = f"{net}-s{seed}"
    run_dir = setup.runs_folder / name
    config = run_config(setup, net_changes, name, seed)
    if run_dir.exists():
        differ = config_differences(read_config(run_dir), config.to_dict())
        if differ:
            raise ReslabError(f"{run_dir} was trained with another config ({', '.join(differ[:4])} differ); "
                              "use another --out, or move that run away to retrain it")
        if (run_dir / "model.safetensors").is_file():
            log.info("reusing the finished run %s", run_dir)
            return RunResult(net, seed, run_dir, read_metrics(run_dir), read_config(run_dir))
        if (run_dir / "checkpoints" / "last.pt").is_file():
            log.info("resuming the stopped run %s", run_dir)
            history = fit(config, resume=run_dir, task=task(config) if task else None)
            return RunResult(net, seed, Path(history.run_dir), list(history.rows), config.to_dict())
        _remove_unstarted_run(run_dir)
    log.info("training %s (seed %d) -> %s", net, seed, run_dir)
    history = fit(config, task=task(config) if task else None)
    return RunResult(net, seed, Path(history.run_dir), list(history.rows), config.to_dict())


def _remove_unstarted_run(run_dir: Path) -> None:
    """A run killed (kill -9, power loss) before its first checkpoint holds nothing to resume: its
    folder is removed so that the network trains again from the start, as the rerun expects.
    Refused while another process trains in it (its lock names the holder)."""
    import shutil

    from ..processes import FolderLock

    with FolderLock(run_dir, f"the run {run_dir}"):
        log.info("the run %s was stopped before its first checkpoint: training it again from the start", run_dir)
        shutil.rmtree(run_dir)


def by_net(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    grouped: dict[str, list[RunResult]] = {}
    for r in results:
        grouped.setdefault(r.net, []).append(r)
    return grouped


def mean_curve(runs: Sequence[RunResult], key: str) -> tuple[list[float], list[float]]:
    """Epochs and the seed-mean of `key` (as error, 100 - top1) at each epoch every seed reached."""
    per_epoch: dict[float, list[float]] = {}
    for r in runs:
        for row in r.rows:
            if row.get(key) is not None and row.get("epoch") is not None:
                per_epoch.setdefault(float(row["epoch"]), []).append(100.0 - float(row[key]))
    epochs = sorted(e for e, v in per_epoch.items() if len(v) == len(runs))
    return epochs, [sum(per_epoch[e]) / len(per_epoch[e]) for e in epochs]


def write_results(out: Path, experiment: str, setup: ExperimentSetup, results: Sequence[RunResult],
                  summary: dict, markdown: str, given_runs: bool = False) -> dict[str, Path]:
    """results.json (numbers, configs, seeds, code version) and results.md beside the plots.

    given_runs: the experiment measured runs the user passed and trained nothing, so no preset,
    recipe or seed of this invocation applies (the runs' own configs say how they were trained)."""
    out = Path(out)
    payload = {
        "experiment": experiment,
        "preset": None if given_runs else {"name": setup.preset.name, "recipe": setup.preset.recipe,
                                           "overrides": list(setup.preset.overrides), "description": setup.preset.description},
        "extra_overrides": list(setup.extra),
        "data": str(setup.data),
        "seeds": list(setup.seeds),
        "code_version": {**code_version(), **machine()},
        "summary": summary,
        "runs": [
            {"net": r.net, "seed": r.seed, "run_dir": str(r.run_dir), "final_train_error": r.final_train_error,
             "final_test_error": r.final_test_error, "epochs": len(r.rows), "config": r.config}
            for r in results
        ],
    }
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2, default=str) + "\n")
    version = payload["code_version"]
    data_note = setup.data or "each run's own data path"
    if given_runs:
        trained = f"\n\nMeasured on the given runs (nothing trained here; each run's config is in `results.json`, `summary.run_configs`). Data: `{data_note}`."
    else:
        trained = (f"\n\nPreset `{setup.preset.name}` ({setup.preset.description}); "
                   f"{f'recipe `{setup.preset.recipe}`' if setup.preset.recipe else 'each network its own recipe'}"
                   f"{' with ' + ', '.join(f'`{o}`' for o in (*setup.preset.overrides, *setup.extra)) if setup.preset.overrides or setup.extra else ''}."
                   f"\nSeeds: {', '.join(map(str, setup.seeds))}. Data: `{data_note}`.")
    footer = (trained
              + f"\nCode: reslab {version['reslab']}, git {version['git_commit'] or 'n/a'}, torch {version['torch']}."
              "\nResolved configs of every run: `results.json` (`runs[].config`) and `runs/<run>/config.toml`.\n")
    atomic_write_text(out / "results.md", markdown.rstrip() + footer)
    return {"json": out / "results.json", "markdown": out / "results.md"}

