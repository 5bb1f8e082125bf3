"""The course's training lessons, each one comparison with a table, a figure and a verdict.

- dropout (Fashion-MNIST): the same network with and without dropout; without it, it memorises
  (training error near zero, test error and test loss rising: "a high score, low ability");
- early stopping (Fashion-MNIST): the validation curve, the epoch it stops at, the test accuracy
  of the weights it keeps against training on;
- data augmentation off vs on, and label smoothing 0 vs 0.1 with its calibration (ECE), on CIFAR-10;
- learning-rate warm-up and the linear scaling rule (Goyal et al. 2017): batch 128 -> 1024 with
  the learning rate x8, with and without warm-up;
- optimisers: SGD, SGD with momentum and AdamW on the same budget.

Every run goes through `train_net` (reused when finished, resumed when stopped) under OUT/runs;
the CIFAR runs share one baseline (augmentation on, no smoothing, SGD with momentum, batch 128).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import ReslabError
from .common import Changes, ExperimentSetup, Preset, RunResult, train_net, write_results

log = logging.getLogger(__name__)

LESSONS = ("dropout", "early_stopping", "augmentation", "label_smoothing", "warmup", "optimisers")
FASHION_LESSONS = ("dropout", "early_stopping")


DROPOUT = 0.5  # Hinton et al. 2012 and AlexNet: 0.5 on the fully connected layers
SMOOTHING = 0.1  # Szegedy et al. 2016
BASE_LR = 0.1  # the CIFAR baseline's SGD learning rate, at the preset's batch


@dataclass(frozen=True)
class TricksPreset:
    name: str
    cifar: Preset  # the CIFAR-10 runs' recipe and overrides
    fashion: Preset  # the Fashion-MNIST runs'
    patience: int  # early stopping: evaluations without a lower validation loss
    description: str
    batch: int = 128  # the CIFAR baseline's batch (at lr 0.1)
    large_batch: int = 1024  # the linear scaling rule's larger batch (lr x large_batch / batch)
    warmup_epochs: float = 2  # the large batch's warm-up, from 0.1 x its lr (Goyal et al.: 5 of 90 epochs)


def _fashion_preset(name: str, per_class: int, epochs: int, eval_per_class: int = 0) -> Preset:
    """The dropout and early-stopping lessons' Fashion-MNIST runs: no augmentation or weight decay, so
    memorising shows; the presets differ in images per class, epochs and evaluation images per class
    (0 = all: 10,000 test images, a 6,000-image hold-out)."""
    evaluated = f", evaluated on {eval_per_class:,}/class" if eval_per_class else ""
    return Preset(
        name=name, recipe=None,
        overrides=("model.name=mini_alexnet", f"data.limit_per_class={per_class}", "data.val_fraction=0.1", "data.augment=none",
                   "data.image_size=28", "optim.lr=0.05", "optim.weight_decay=0", "schedule.name=constant",
                   # bf16 + channels_last: 1.3x on Zen 5 (avx512_bf16), more with AMX; the lessons are unchanged
                   "train.amp=auto", "train.channels_last=true",
                   f"train.epochs={epochs}", "train.batch_size=64", "train.eval_every=1",
                   f"data.eval_limit_per_class={eval_per_class}"),
        description=f"Fashion-MNIST, {per_class:,}/class, no augmentation or weight decay, {epochs} epochs, batch 64 (bf16){evaluated}",
    )  # fmt: skip


# quick: minutes on 2 CPU cores, sized for the Intel CI machine's 10 minutes (3 min 40 s measured on
# 2 quiet Zen 5 cores, so ~8-9 on the CI machine, which trains ResNet-20 2.1-2.4x slower; the first quick preset, CIFAR 1,000/class for 10 epochs and Fashion-MNIST
# evaluated on all 10,000 test images and a 6,000-image hold-out every epoch, cost ~3x). CIFAR-10 at
# 16x16, 500 training images per class, 6 epochs of cosine schedule, curves on a 2% hold-out (1,000
# images) and the final numbers on the 10,000 test images; Fashion-MNIST with 500 images per class,
# no augmentation and no weight decay, so that the 3.3M-parameter network memorises them within 20
# epochs (300/class for 15 epochs did not: 10% training error, no rising test loss), evaluated on
# 200 images per class every epoch.
QUICK_TRICKS = TricksPreset(
    name="quick",
    cifar=Preset(
        name="quick", recipe="cifar_resnet_paper",
        overrides=("data.limit_per_class=500", "data.image_size=16", "data.cifar_pad=2", "data.val_fraction=0.02",
                   "data.eval_split=holdout", "train.steps=0", "train.epochs=6", "train.batch_size=128", f"optim.lr={BASE_LR}",
                   "schedule.name=cosine", "schedule.unit=epoch", "train.eval_every=1", "train.amp=bf16",
                   "train.channels_last=true"),
        description="CIFAR-10 at 16x16, 500/class, 6 epochs, batch 128 (bf16)",
    ),  # fmt: skip
    fashion=_fashion_preset("quick", per_class=500, epochs=20, eval_per_class=200),
    patience=3,
    description="CPU minutes: small subsets and few epochs; trends, not benchmark numbers",
)
# full: a GPU's worth. All 49,000 CIFAR-10 training images at 32x32 for 60 epochs; Fashion-MNIST
# with 1,000 images per class for 60 epochs.
FULL_TRICKS = TricksPreset(
    name="full",
    cifar=Preset(
        name="full", recipe="cifar_resnet_paper",
        overrides=("data.val_fraction=0.02", "data.eval_split=holdout", "train.steps=0", "train.epochs=60",
                   "train.batch_size=128", f"optim.lr={BASE_LR}", "schedule.name=cosine", "schedule.unit=epoch", "train.eval_every=1",
                   "train.amp=auto", "train.channels_last=true"),
        description="CIFAR-10 at 32x32, 49,000 training images, 60 epochs, batch 128",
    ),  # fmt: skip
    fashion=_fashion_preset("full", per_class=1000, epochs=60),
    patience=5,
    description="GPU minutes: all of CIFAR-10, longer training",
)
TRICKS_PRESETS = {p.name: p for p in (QUICK_TRICKS, FULL_TRICKS)}


FASHION_NETS = ("fmnist-plain", "fmnist-dropout", "fmnist-early-stop")
CIFAR_NETS = ("base", "no-augment", "smoothing", "sgd", "adamw", "large-batch", "large-batch-warmup")


def cifar_changes(net: str, preset: TricksPreset) -> Changes:
    """What each CIFAR run changes from the baseline (augmentation on, no smoothing, SGD + momentum)."""
    large = {"train": {"batch_size": preset.large_batch}, "optim": {"lr": BASE_LR * preset.large_batch / preset.batch}}
    return {
        "base": {},
        "no-augment": {"data": {"augment": "none"}},
        "smoothing": {"train": {"label_smoothing": SMOOTHING}},
        "sgd": {"optim": {"momentum": 0.0}},
        "adamw": {"optim": {"name": "adamw", "lr": 0.002, "weight_decay": 0.05}},
        "large-batch": large,
        "large-batch-warmup": {**large, "schedule": {"warmup": float(preset.warmup_epochs), "warmup_start": 0.1}},
    }[net]


NETS_OF_LESSON = {
    "dropout": ("fmnist-plain", "fmnist-dropout"),
    "early_stopping": ("fmnist-plain", "fmnist-early-stop"),
    "augmentation": ("base", "no-augment"),
    "label_smoothing": ("base", "smoothing"),
    "warmup": ("base", "large-batch", "large-batch-warmup"),
    "optimisers": ("sgd", "base", "adamw"),
}


def fashion_changes(net: str, patience: int) -> Changes:
    """The Fashion-MNIST runs see the same 4,500 training images (the 10% hold-out is always cut);
    the dropout pair evaluates on the test set each epoch, the early-stopping run on the hold-out."""
    if net == "fmnist-early-stop":
        return {"data": {"eval_split": "holdout"}, "train": {"early_stop_metric": "val_loss", "early_stop_patience": patience}}
    changes: Changes = {"data": {"eval_split": "test"}}
    if net == "fmnist-dropout":
        changes["model"] = {"options": {"dropout": DROPOUT}}
    return changes


def parse_lessons(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip().replace("-", "_") for s in text.split(",") if s.strip())
    unknown = [c for c in chosen if c not in LESSONS]
    if unknown or not chosen:
        raise ReslabError(f"--lessons {text}: choose from {', '.join(LESSONS)} (comma-separated)")
    return chosen


def train_lesson_runs(cifar: ExperimentSetup | None, fashion: ExperimentSetup | None, preset: TricksPreset,
                      lessons: Sequence[str]) -> dict[str, list[RunResult]]:  # fmt: skip
    """Train (or reuse) every network the lessons need, once per seed; {net: [RunResult per seed]}."""
    nets = list(dict.fromkeys(n for lesson in lessons for n in NETS_OF_LESSON[lesson]))
    runs: dict[str, list[RunResult]] = {}
    for net in nets:
        setup = fashion if net.startswith("fmnist") else cifar
        if setup is None:
            need = "--fashion-mnist" if net.startswith("fmnist") else "--data (CIFAR-10)"
            raise ReslabError(f"the lessons {', '.join(lessons)} need {need}; give it or choose --lessons without them")
        changes = fashion_changes(net, preset.patience) if net.startswith("fmnist") else cifar_changes(net, preset)
        runs[net] = [train_net(setup, net, changes, seed) for seed in setup.seeds]
    return runs


def run_tricks(out: Path, *, cifar: str | None, fashion: str | None, preset: TricksPreset = QUICK_TRICKS,
               seeds: Sequence[int] = (0,), extra: Sequence[str] = (), device: str = "auto",
               lessons: Sequence[str] = LESSONS) -> dict:  # fmt: skip
    """Train every lesson's runs, evaluate them on the test sets, write figures, tables and verdicts."""
    from .tricks_report import summarise_lessons

    out = Path(out)
    base = ExperimentSetup(data="", out=out, seeds=tuple(seeds), extra=tuple(extra), device=device)
    cifar_setup = dataclasses.replace(base, data=str(cifar), preset=preset.cifar) if cifar else None
    fashion_setup = dataclasses.replace(base, data=str(fashion), preset=preset.fashion) if fashion else None
    runs = train_lesson_runs(cifar_setup, fashion_setup, preset, lessons)
    summary = summarise_lessons(out, runs, preset, lessons, device)
    # one provenance footer for both datasets: each run's resolved config is in results.json
    both = Preset(name=preset.name, recipe=f"{preset.cifar.recipe} (CIFAR-10), defaults (Fashion-MNIST)",
                  overrides=(), description=f"{preset.cifar.description}; {preset.fashion.description}")
    setup = dataclasses.replace(base, preset=both, data=f"CIFAR-10 {cifar or '(not used)'}, Fashion-MNIST {fashion or '(not used)'}")
    write_results(out, "tricks", setup, [r for rs in runs.values() for r in rs], summary["json"], summary["markdown"])
    return summary["json"]
