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

DEMO_PRESET = dict(
    name="demo",
    recipe="cifar_resnet_paper",
    overrides=(
        "data.image_size=16",
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

    data = digits.write_digits_folder(Path(out_root) / "digits", size=16)
    return ExperimentSetup(data=str(data), out=Path(out_root) / "experiments" / "degradation", preset=Preset(**DEMO_PRESET),
                           seeds=(0,), device="auto", runs_dir=Path(out_root) / "runs")  # fmt: skip


def use_free_cores(console: Console, steps: int = 6) -> int:
    """Time `steps` training steps of ResNet-20 (16x16, batch 64) with every core and with one; keep the faster."""
    import torch

    from ..models import create_model
    from ..provenance import cores

    available = cores()
    if available <= 1:
        torch.set_num_threads(1)
        return 1
    model = create_model("resnet20")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,))

    def rate(threads: int) -> float:
        torch.set_num_threads(threads)
        for i in range(steps + 2):  # two warm-up steps
            if i == 2:
                start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return 64 * steps / (time.perf_counter() - start)

    rates = {n: rate(n) for n in (available, 1)}
    best = max(rates, key=rates.get)
    torch.set_num_threads(best)
    shown = ", ".join(f"{n} thread{'s' if n > 1 else ''} {r:,.0f} img/s" for n, r in rates.items())
    console.print(f"[dim]torch threads: {best} (measured: {shown})[/]")
    return best
