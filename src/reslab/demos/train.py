"""Demo stage `train`: CIFAR ResNet-20 against its plain twin on scikit-learn's digits (no download).

Both nets train with the demo's recipe (`demos/common.py`: 16x16 digits, 8 epochs), then
`reslab eval-classifier` writes their confusion matrices and one plot compares their curves. The
runs go to `demo-output/runs`, where the `experiments` stage reuses them.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .common import demo_setup, use_free_cores

NETS = ("resnet20", "plain20")


def run(out: Path, console: Console) -> None:
    from ..experiments.common import train_net
    from ..experiments.degradation import net_changes
    from ..plots import plot_training_curves
    from ..train.eval_run import run_eval

    out = Path(out)
    use_free_cores(console)
    setup = demo_setup(out.parent)
    console.print(f"digits written as a 16x16 image folder: {setup.data}")
    results = {}
    for net in NETS:
        console.print(f"training {net} ({setup.preset.description}) ...")
        run_result = train_net(setup, net, net_changes(net), seed=0)
        results[net] = (run_result, run_eval(run_result.run_dir, batch_size=256, out=out / f"eval-{net}"))
    curves = plot_training_curves([(net, r.rows) for net, (r, _) in results.items()], out / "resnet20_vs_plain20.png")
    for net, (run_result, evaluation) in results.items():
        console.print(f"{net}: validation top-1 {evaluation['top1']:.2f}%  run: {run_result.run_dir}  "
                      f"confusion: {evaluation['out_dir'] / 'confusion.png'}")  # fmt: skip
    console.print(f"training curves: {curves}")
