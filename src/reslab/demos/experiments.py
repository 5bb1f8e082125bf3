"""Demo stage: the degradation experiment in miniature, then the HTML report of its best run.

Plain and residual nets of depth 20 and 56 on scikit-learn's digits (written as 16x16 images:
the digits are 8x8, so nothing is lost), the paper's recipe shortened to 12 epochs (lr 0.1, divided by 10 after
epochs 8 and 11), one seed. About two minutes on two CPU cores.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

DEMO = dict(
    name="demo",
    recipe="cifar_resnet_paper",
    overrides=(
        "data.image_size=16",
        "data.cifar_pad=2",
        "data.hflip=false",  # a mirrored 2 or 5 is another glyph
        "data.val_fraction=0",
        "data.eval_split=val",
        "train.steps=0",
        "train.epochs=12",
        "train.batch_size=32",
        "schedule.unit=epoch",
        "schedule.milestones=[8, 11]",
        "schedule.warmup=1",  # one epoch from lr 0.01 up to 0.1: at batch 32 a cold 0.1 blows up resnet56's first steps
        "run.tensorboard=false",
    ),
    description="digits 16x16 (1,438 train / 359 val), 12 epochs, batch 32 (~540 steps), lr warmed up from 0.01 to 0.1 over the first epoch, /10 after epochs 8 and 11",
)


def run(out: Path, console: Console) -> None:
    from ..data.digits import write_digits_folder
    from ..experiments.common import ExperimentSetup, Preset
    from ..experiments.degradation import run_degradation
    from ..report.html import report_run

    out = Path(out)
    data = write_digits_folder(out / "digits", size=16)
    setup = ExperimentSetup(data=str(data), out=out / "degradation", preset=Preset(**DEMO), seeds=(0,), device="auto")
    console.print("training plain20, plain56, resnet20, resnet56 on digits (the paper's Figure 4 in miniature)")
    summary = run_degradation(setup, depths=(20, 56))
    for sentence in summary["verdict"]:
        console.print(f"  {sentence}")
    best = min(summary["errors"], key=lambda e: e["test_error_mean_std"][0])
    best_run = setup.out / "runs" / f"{best['net']}-s0"
    report = report_run(best_run, out=out / f"report-{best['net']}.html")
    console.print(f"degradation plot: {setup.out / 'degradation.png'}")
    console.print(f"results:          {setup.out / 'results.md'}")
    console.print(f"report of the best run ({best['net']}, test error {best['test_error_mean_std'][0]:.2f}%): {report}")
