"""`reslab eval-classifier`: evaluate a run or checkpoint on a dataset split and write RUN/eval/."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from ..devices import resolve_device
from ..errors import ReslabError
from ..fileio import atomic_write_text
from .evaluate import evaluate
from .runs import run_folder

log = logging.getLogger(__name__)


def run_eval(
    run: str | Path,
    *,
    data: str | None = None,
    split: str = "auto",
    tta: str = "",
    which: str = "last",
    batch_size: int = 256,
    out: str | Path | None = None,
    device: str = "auto",
    runtime: str = "torch",
    precision: str | None = None,
) -> dict:
    """Evaluate and write metrics.json, per_class.csv, confusion.csv and confusion.png; returns the metrics.

    runtime, precision: how the network runs (`reslab.inference.open_session`; "auto" measures once).
    """
    from ..inference import load, open_session
    from ..inference.runs import is_self_supervised, no_classifier_error
    from ..data import DataConfig, build_data
    from ..plots import plot_confusion_matrix

    run = Path(run)
    dev = resolve_device(device)
    loaded = load(run, device=dev, which=which)
    if loaded.kind != "run":
        raise ReslabError(f"{run} is not a training run; `reslab eval` needs a run folder, a .pt checkpoint or its model.safetensors")
    config, classes, preprocess = loaded.config, loaded.classes, loaded.preprocess
    if is_self_supervised(config):
        raise no_classifier_error(run, "be evaluated as a classifier")
    fields = dict(config.get("data", {}))
    if data is not None:
        fields["path"] = data
    if not fields.get("path"):
        raise ReslabError("the run does not name its dataset; pass --data PATH")
    if split != "auto":
        fields["eval_split"] = split
    # the run's normalisation, not statistics of the evaluation data
    fields.update(mean=list(preprocess.mean[: preprocess.channels]), std=list(preprocess.std[: preprocess.channels]),
                  eval_batch_size=batch_size, limit_per_class=0)
    known = set(DataConfig.__dataclass_fields__)
    cfg = DataConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in fields.items() if k in known})
    dataset = build_data(cfg, batch_size=1, seed=0, device=dev)
    if dataset.eval is None:
        raise ReslabError(f"{cfg.path} has no '{split}' split to evaluate; use --split val, test or holdout")
    if list(dataset.classes) != list(classes):
        raise ReslabError(
            f"the classes of {cfg.path} ({len(dataset.classes)}: {', '.join(dataset.classes[:5])}...) differ from the "
            f"model's ({len(classes)}: {', '.join(classes[:5])}...); evaluate on the dataset the model was trained for"
        )
    loader = dataset.eval_tta(tta) if tta else dataset.eval
    session = open_session(loaded, runtime, precision, batch_size=batch_size)
    result = evaluate(session.logits_module(), loader, dev, num_classes=len(classes))
    out_dir = Path(out) if out else run_folder(run) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"top1": result["top1"], "top5": result["top5"], "loss": result["loss"], "count": result["count"],
               "split": dataset.eval_split, "tta": tta or "none", "weights": which, "runtime": str(session.choice), "data": str(cfg.path),
               "per_class_accuracy": dict(zip(classes, map(float, result["per_class_accuracy"])))}
    atomic_write_text(out_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out_dir / "per_class.csv", _csv(
        ["class", "accuracy", "count"],
        [[c, f"{a:.4f}", int(n)] for c, a, n in zip(classes, result["per_class_accuracy"], result["confusion"].sum(axis=1))]))
    atomic_write_text(out_dir / "confusion.csv", _csv(
        ["true\\predicted", *classes], [[c, *row.tolist()] for c, row in zip(classes, result["confusion"])]))
    plot_confusion_matrix(result["confusion"], classes, out_dir / "confusion.png",
                          title=f"{config['model']['name']} on {dataset.eval_split}: top-1 {result['top1']:.2f}%")
    return {**summary, "out_dir": out_dir, "confusion": result["confusion"]}


def _csv(header: list, rows: list) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
