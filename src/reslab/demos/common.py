"""What the demo's training stages share: the data, the recipe, where runs go, and how many threads.

The `train` and `experiments` stages train on the same data with the same recipe and put their
runs in one folder (`demo-output/runs`), so the experiment reuses the two nets the training stage
trained (and trains them itself when run alone).

Budget: the whole demo in well under 5 minutes on 2 cores even while another job keeps one of
them busy. Two things make that hold:
- sizes: scikit-learn's digits at 16x16 (the digits are 8x8, nothing is lost), 1,438 training
  images, 8 epochs at batch 64 (180 steps per net);
- threads, measured: with one core taken by another process, two spinning OpenMP threads can
  be ten times slower than one (each parallel region waits for the thread that shares its core),
  so `use_free_cores` times a few training steps with every core and with one, and keeps the faster.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

IMAGE_SIZE = 16  # the digits are 8x8: nothing is lost

DEMO_PRESET = dict(
    name="demo",
    recipe="cifar_resnet_paper",
    overrides=(
        f"data.image_size={IMAGE_SIZE}",
        "data.cifar_pad=2",
        "data.hflip=false",  # a mirrored 2 or 5 is another glyph
        "data.val_fraction=0",
        "data.eval_split=val",
        "train.steps=0",
        "train.epochs=8",
        "train.batch_size=64",
        "schedule.unit=epoch",
        "schedule.milestones=[5, 7]",
        "schedule.warmup=1",  # one epoch from lr 0.01 up to 0.1: a cold 0.1 blows up resnet56's first steps
        "run.tensorboard=false",
    ),
    description="digits 16x16 (1,438 train / 359 val), 8 epochs, batch 64 (180 steps), lr warmed up from 0.01 to 0.1 "
    "over the first epoch, /10 after epochs 5 and 7",
)


def demo_setup(out_root: Path):
    """The digits folder (written once) and an ExperimentSetup whose runs go to OUT_ROOT/runs."""
    from ..data import digits
    from ..experiments.common import ExperimentSetup, Preset

    data = digits.write_digits_folder(Path(out_root) / "digits", size=IMAGE_SIZE)
    return ExperimentSetup(data=str(data), out=Path(out_root) / "experiments" / "degradation", preset=Preset(**DEMO_PRESET),
                           seeds=(0,), device="auto", runs_dir=Path(out_root) / "runs")  # fmt: skip


def use_free_cores(console: Console, steps: int = 6) -> int:
    """Time `steps` training steps of ResNet-20 (a demo batch) with one thread, then with every core; keep the faster.

    The every-core run stops as soon as it is slower than the one-thread run was in all: on a
    machine where another job holds a core it can be ten times slower, and the probe would
    otherwise cost more than it saves.
    """
    import torch

    from ..models import create_model
    from ..provenance import cores

    available = cores()
    if available <= 1:
        torch.set_num_threads(1)
        return 1
    model = create_model("resnet20")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 3, IMAGE_SIZE, IMAGE_SIZE), torch.randint(0, 10, (64,))

    def seconds(threads: int, limit: float = float("inf")) -> float:
        torch.set_num_threads(threads)
        for i in range(steps + 1):  # one warm-up step
            if i == 1:
                start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i >= 1 and time.perf_counter() - start > limit:
                return float("inf")  # already lost
        return time.perf_counter() - start

    one = seconds(1)
    every = seconds(available, limit=one)
    best = available if every < one else 1
    torch.set_num_threads(best)
    shown = f"1 thread {64 * steps / one:,.0f} img/s, {available} threads " + (
        f"{64 * steps / every:,.0f} img/s" if every < float("inf") else "slower (stopped early)")
    console.print(f"[dim]torch threads: {best} (measured: {shown})[/]")
    return best
