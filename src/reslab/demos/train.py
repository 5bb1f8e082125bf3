"""Demo stage `train`: CIFAR ResNet-20 against its plain twin on scikit-learn's digits (no download).

Budget: about 3.5 minutes on 2 cores. Both nets train with the same recipe (cifar_quick, shortened),
then `reslab eval` writes their confusion matrices and one plot compares their curves.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

EPOCHS = 10  # 10 x 1,438 images per net: about half a minute for both nets on 2 cores


def run(out: Path, console: Console) -> None:
    from ..data.digits import write_digits_folder
    from ..plots import plot_training_curves
    from ..train import fit, load_config
    from ..train.eval_run import run_eval

    out = Path(out)
    data = out / "digits"
    if not (data / "train").is_dir():
        write_digits_folder(data, size=32)
    console.print(f"digits written as an image folder: {data}")
    results = {}
    for model in ("resnet20", "plain20"):
        name = f"{model}-{time.strftime('%H%M%S')}"
        cfg = load_config("cifar_quick", [
            f'data.path="{data}"', "data.eval_split=val", f"model.name={model}", f"train.epochs={EPOCHS}",
            "train.batch_size=64", "train.ema_decay=0", f'run.dir="{out / "runs"}"', f"run.name={name}",
            "model.options={}" if model == "plain20" else "model.options.shortcut=A",  # plain nets have no shortcuts
        ])
        console.print(f"training {model} for {EPOCHS} epochs ...")
        history = fit(cfg)
        evaluation = run_eval(history.run_dir, batch_size=256)
        results[model] = (history, evaluation)
    curves = out / "resnet20_vs_plain20.png"
    plot_training_curves([(m, h.rows) for m, (h, _) in results.items()], curves)
    for model, (history, evaluation) in results.items():
        console.print(f"{model}: validation top-1 {evaluation['top1']:.2f}%  run: {history.run_dir}  "
                      f"confusion: {evaluation['out_dir'] / 'confusion.png'}")
    console.print(f"training curves: {curves}")
