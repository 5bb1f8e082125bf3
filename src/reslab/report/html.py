"""`reslab report RUN`: one self-contained HTML page about a training run.

Curves from metrics.jsonl; then, when the model and its validation data can be loaded, the
confusion matrix, per-class accuracy, most-confused pairs, sample predictions, Grad-CAM heatmaps
(and attention rollout beside them for a ViT) and a 2-D map of validation embeddings. Every image is a PNG embedded as a base64 data URI, so
the page can be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ReslabError
from ..fileio import atomic_write_text


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of `run_dir/metrics.jsonl` (the training engine's reader), with user-facing errors."""
    from ..train.logging import read_metrics as read_rows

    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ReslabError(f"{path} does not exist; give a run folder written by `reslab train`")
    try:
        return read_rows(Path(run_dir))
    except json.JSONDecodeError as e:
        raise ReslabError(f"{path} holds a line that is not JSON ({e.msg}); the file is damaged: re-run or fix that line") from None


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ReslabError(f"{path} is not valid TOML ({e}); fix it or re-run the training") from None


@dataclass(frozen=True)
class RunSummary:
    epochs: int
    best_val_top1: float | None
    best_epoch: int | None
    final_val_top1: float | None
    final_train_loss: float | None
    final_val_loss: float | None
    images_per_s: float | None
    wall_time: float | None


def _last(rows: list[dict], key: str):
    for row in reversed(rows):
        value = row.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return value
    return None


def run_summary(rows: list[dict]) -> RunSummary:
    """Key numbers of a run from its metric rows (accuracies in percent)."""
    with_val = [r for r in rows if r.get("val_top1") is not None]
    best = max(with_val, key=lambda r: r["val_top1"]) if with_val else None
    epochs = max((int(r.get("epoch", 0)) for r in rows), default=0)
    return RunSummary(
        epochs=epochs,
        best_val_top1=best["val_top1"] if best else None,
        best_epoch=best.get("epoch") if best else None,
        final_val_top1=_last(rows, "val_top1"),
        final_train_loss=_last(rows, "train_loss"),
        final_val_loss=_last(rows, "val_loss"),
        images_per_s=_last(rows, "images_per_s"),
        wall_time=_last(rows, "wall_time"),
    )


def _fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
th { background: #f3f3f3; } img { max-width: 100%; } .note { color: #777; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.key { font-size: 1.1em; }
"""


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    model=None,
    classes: list[str] | None = None,
    preprocess=None,
    batches: Iterable | None = None,
    device: str = "cpu",
    embedding: str = "pca",
    max_images: int = 2000,
    gradcam_images: int | None = None,
    data_note: str | None = None,
) -> Path:
    """Write the HTML report of `run_dir` to `out` (default run_dir/report.html) and return its path.

    gradcam_images: images in the Grad-CAM panel (default: one per class, at least 8 and at most 12).
    model/classes/preprocess: the trained model, its class names and eval preprocessing
    (`report_run` loads them with load_run_model); without a model the parameter count is n/a.
    batches: (images, labels) validation batches, normalised by `preprocess`; without them the page
    shows the curves and key numbers only, and says why (`data_note`).
    """
    from .. import plots

    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    config = read_config(run_dir)
    summary = run_summary(rows)
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    model_name = config.get("model", {}).get("name") if isinstance(config.get("model"), dict) else None
    if model is not None:
        model_name = getattr(model, "model_name", None) or model_name or type(model).__name__
    out = Path(out) if out is not None else run_dir / "report.html"

    sections: list[str] = []
    key_rows = [
        ["model", model_name or "n/a"],
        ["parameters", f"{sum(p.numel() for p in model.parameters()):,}" if model is not None else "n/a"],
        ["epochs", str(summary.epochs)],
        ["best val top-1", f"{_fmt(summary.best_val_top1, '.2f', '%')} (epoch {summary.best_epoch})" if summary.best_val_top1 is not None else "n/a"],
        ["final val top-1", _fmt(summary.final_val_top1, ".2f", "%")],
        ["final train loss", _fmt(summary.final_train_loss, ".4f")],
        ["final val loss", _fmt(summary.final_val_loss, ".4f")],
        ["throughput", _fmt(summary.images_per_s, ".0f", " images/s")],
        ["wall time", _fmt(summary.wall_time, ".0f", " s")],
        ["seed", str(meta.get("seed", config.get("train", {}).get("seed", "n/a")))],
        ["code version", f"reslab {meta.get('reslab', 'n/a')}, git {meta.get('git_commit') or 'n/a'}, torch {meta.get('torch', 'n/a')}"],
    ]
    self_supervised = bool(config.get("ssl", {}).get("method"))
    if self_supervised:  # no classifier: the kNN monitor is its accuracy
        knn = [r["knn_top1"] for r in rows if r.get("knn_top1") is not None]
        best = max(range(len(rows)), key=lambda i: rows[i].get("knn_top1", -1.0)) if knn else None
        key_rows[2:7] = [
            ["epochs", str(summary.epochs)],
            ["method", f"self-supervised {config['ssl']['method']}"],
            ["best kNN top-1", f"{rows[best]['knn_top1']:.2f}% (epoch {rows[best]['epoch']})" if knn else "n/a (no ssl.knn_data)"],
            ["final kNN top-1", f"{knn[-1]:.2f}%" if knn else "n/a"],
            ["final train loss", _fmt(summary.final_train_loss, ".4f")],
        ]
    with tempfile.TemporaryDirectory(prefix="reslab-report-") as tmp:
        tmp = Path(tmp)
        sections.append("<h2>Key numbers</h2>" + _table(["", "value"], key_rows))
        if rows and self_supervised:
            plots.plot_training_curves([(run_dir.name, rows)], tmp / "curves.png", metrics=("loss", "knn", "lr"))
            sections.append("<h2>Training curves</h2><p class='note'>the self-supervised loss, and the weighted kNN "
                            "accuracy of the backbone's features on the labelled ssl.knn_data (k=200, T=0.1)</p>"
                            + _img(tmp / "curves.png", "training curves"))
        elif rows:
            plots.plot_training_curves([(run_dir.name, rows)], tmp / "curves.png")
            sections.append("<h2>Training curves</h2><p class='note'>dashed: training, bold: validation; error = 100 - top-1</p>"
                            + _img(tmp / "curves.png", "training curves"))
        if self_supervised and model is not None and batches is not None and classes:
            sections.extend(_feature_sections(model, classes, batches, device, embedding, max_images, tmp))
        elif model is not None and batches is not None and classes:
            sections.extend(_evaluation_sections(model, classes, preprocess, batches, device, embedding, max_images, gradcam_images, tmp))
        else:
            sections.append(f"<h2>Validation analysis</h2><p class='note'>{html.escape(data_note or 'no validation data given')}</p>")
        if (run_dir / "config.toml").is_file():
            sections.append("<h2>Resolved config</h2><details><summary>config.toml</summary><pre>"
                            + html.escape((run_dir / "config.toml").read_text(encoding="utf-8")) + "</pre></details>")
        title = f"reslab report: {run_dir.name}"
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
                f"<p class='note'>run folder: {html.escape(str(run_dir.resolve()))}</p>" + "\n".join(sections) + "</body></html>")
    atomic_write_text(out, page)
    return out


def _evaluation_sections(model, classes, preprocess, batches, device, embedding, max_images, gradcam_images, tmp: Path) -> list[str]:
    from .. import plots
    from .embedding_map import embedding_map_2d, plot_embedding_map
    from .evaluation import across_classes, display_image, evaluate_for_report, most_confused_pairs
    from .attention import attention_rollout, has_attention
    from .gradcam import grad_cam_batch, overlay_heatmap

    ev = evaluate_for_report(model, batches, len(classes), device=device, max_images=max_images)
    n = len(ev.labels)
    out = [f"<h2>Validation analysis</h2><p class='key'>top-1 on {n:,} validation images: "
           f"<b>{ev.top1:.2f}%</b>, mean loss {ev.loss:.4f}</p>"]
    plots.plot_confusion_matrix(ev.confusion, classes, tmp / "cm.png")
    plots.plot_per_class_accuracy(np.nan_to_num(ev.per_class_accuracy), classes, tmp / "pc.png")
    out.append("<h3>Confusion matrix</h3>" + _img(tmp / "cm.png", "confusion matrix"))
    out.append("<h3>Per-class accuracy</h3>" + _img(tmp / "pc.png", "per-class accuracy"))
    pairs = most_confused_pairs(ev.confusion, classes, k=8)
    if pairs:
        out.append("<h3>Most confused pairs</h3>" + _table(
            ["true", "predicted as", "images", "% of true class"], [[t, p, str(c), f"{f:.1f}%"] for t, p, c, f in pairs]))

    mean = getattr(preprocess, "mean", (0.0, 0.0, 0.0))
    std = getattr(preprocess, "std", (1.0, 1.0, 1.0))
    shown = [display_image(x, mean, std) for x in ev.kept_images]
    kept_pred = ev.predictions[ev.kept_index]
    kept_true = ev.labels[ev.kept_index]
    # every class in turn, so that a loader sorted by class does not fill the panels with its first
    # classes; with up to 12 classes a column is a class: two rows right, one row wrong
    columns = len(classes) if len(classes) <= 12 else 8
    right = across_classes([i for i in range(len(shown)) if kept_pred[i] == kept_true[i]], kept_true, 2 * columns)
    wrong = across_classes([i for i in range(len(shown)) if kept_pred[i] != kept_true[i]], kept_true, columns)
    order = right + wrong
    if order:
        plots.plot_image_grid(
            [shown[i] for i in order], tmp / "samples.png",
            captions=[f"{classes[kept_pred[i]]}" + ("" if kept_pred[i] == kept_true[i] else f"\n(true {classes[kept_true[i]]})") for i in order],
            caption_colours=["green" if kept_pred[i] == kept_true[i] else "red" for i in order], columns=columns, cmap="gray")
        out.append(f"<h3>Sample predictions</h3><p class='note'>{len(right)} right (green), then {len(wrong)} wrong (red, with the true class)</p>"
                   + _img(tmp / "samples.png", "sample predictions"))

    n_cams = gradcam_images if gradcam_images is not None else min(max(len(classes), 8), 12)
    picks = across_classes(wrong[: n_cams // 2] + right, kept_true, n_cams)
    if picks:
        x = ev.kept_images[picks].to(device)
        cams, _ = grad_cam_batch(model, x, target_classes=[int(kept_pred[i]) for i in picks])
        # a ViT: attention rollout beside Grad-CAM on its patch tokens
        rollouts = attention_rollout(model, x) if has_attention(model) else None
        tiles, captions = [], []
        for k, (cam, i) in enumerate(zip(cams, picks)):
            tiles += [shown[i], overlay_heatmap(shown[i], cam)]
            captions += [f"true {classes[kept_true[i]]}", f"Grad-CAM: {classes[kept_pred[i]]}"]
            if rollouts is not None:
                tiles.append(overlay_heatmap(shown[i], rollouts[k]))
                captions.append("attention rollout")
        per_image = 2 if rollouts is None else 3
        rows = math.ceil(len(picks) / 5)  # rows of at most five images, as even as they go: 10 -> 5+5, 8 -> 4+4
        plots.plot_image_grid(tiles, tmp / "gradcam.png", captions=captions, columns=math.ceil(len(picks) / rows) * per_image, cmap="gray")
        if rollouts is None:
            out.append("<h3>Grad-CAM</h3><p class='note'>where the evidence for the predicted class lies (last feature map)</p>"
                       + _img(tmp / "gradcam.png", "Grad-CAM heatmaps"))
        else:
            out.append("<h3>Attention rollout and Grad-CAM</h3><p class='note'>attention rollout: the image patches the "
                       "class token draws on through every block (Abnar &amp; Zuidema 2020, class-agnostic); Grad-CAM: "
                       "the evidence for the predicted class in the last block's patch tokens</p>"
                       + _img(tmp / "gradcam.png", "attention rollout and Grad-CAM heatmaps"))

    if n >= 3:
        points = embedding_map_2d(ev.embeddings, method=embedding)
        plot_embedding_map(points, ev.labels, classes, tmp / "embedding.png",
                           title=f"validation embeddings ({embedding.upper()}, {n:,} images, {ev.embeddings.shape[1]}-d)")
        out.append("<h3>Embedding map</h3>" + _img(tmp / "embedding.png", "embedding map"))
    return out


def _feature_sections(model, classes, batches, device, embedding, max_images, tmp: Path) -> list[str]:
    """A backbone without classifier: a 2-D map of its features of labelled images, coloured by class."""
    import torch

    from .embedding_map import embedding_map_2d, plot_embedding_map

    feats, labels, n = [], [], 0
    with torch.no_grad():
        for images, target in batches:
            images = images[: max_images - n]
            feats.append(model.forward_head(model.forward_features(images.to(device)), pre_logits=True).float().cpu().numpy())
            labels.append(target[: len(images)].cpu().numpy())
            n += len(images)
            if n >= max_images:
                break
    if n < 3:
        return ["<h2>Features</h2><p class='note'>fewer than 3 labelled images: no embedding map</p>"]
    feats, labels = np.concatenate(feats), np.concatenate(labels)
    plot_embedding_map(embedding_map_2d(feats, method=embedding), labels, classes, tmp / "embedding.png",
                       title=f"backbone features of labelled images ({embedding.upper()}, {n:,} images, {feats.shape[1]}-d)")
    return ["<h2>Features</h2><p class='note'>the self-supervised backbone never saw these labels: classes that "
            "form their own regions are what the kNN monitor counts</p>" + _img(tmp / "embedding.png", "embedding map")]


def report_run(run: str | Path, data: str | None = None, out: str | Path | None = None, device: str = "cpu",
               embedding: str = "pca", max_images: int = 2000) -> Path:
    """Load a run (folder, checkpoint or model.safetensors) and its validation data; write its report.

    data: replaces the data path in the run's config. Without reachable data the page still has
    the curves and key numbers, and says how to add the rest.
    """
    from ..inference import load
    from ..train.runs import run_folder
    from .evaluation import eval_batches

    run = Path(run)
    run_dir = run_folder(run)
    loaded = load(run, device=device)
    if loaded.kind != "run":
        raise ReslabError(f"{run} is not a training run; `reslab report` needs a run folder, a .pt checkpoint or its model.safetensors")
    model, config, classes, preprocess = loaded.network, loaded.config, loaded.classes or [], loaded.preprocess
    if config.get("ssl", {}).get("method"):
        return _report_ssl_run(run_dir, model, config, preprocess, data, out, device, embedding, max_images)
    batches, note = None, None
    data_path = data or config.get("data", {}).get("path")
    if data is not None and not Path(data).exists():
        raise ReslabError(f"--data {data} does not exist; give the folder the run was trained on")
    if data_path and Path(data_path).exists():
        loaded, batches = eval_batches(config, data, device=device, mean=preprocess.mean, std=preprocess.std, max_images=max_images)
        if list(loaded.classes) != list(classes):
            raise ReslabError(f"the classes in {data_path} ({len(loaded.classes)}) differ from the run's ({len(classes)}); "
                              "pass the --data the run was trained on")
    else:
        note = (f"the run's data ({data_path or 'no path in config'}) is not reachable from here; "
                f"re-run `reslab report {run} --data PATH` for the confusion matrix, samples, Grad-CAM and embeddings")
    return write_report(run_dir, out, model=model, classes=classes, preprocess=preprocess, batches=batches, device=device,
                        embedding=embedding, max_images=max_images, data_note=note)


def _report_ssl_run(run_dir: Path, model, config: dict, preprocess, data: str | None, out, device: str, embedding: str,
                    max_images: int) -> Path:  # fmt: skip
    """A self-supervised run: curves with the kNN monitor, and an embedding map of labelled images
    (--data, else the run's ssl.knn_data; its test or val split, else its training split)."""
    from ..data import build_eval_loader
    from ..data.formats import open_source
    from ..ssl.evaluate import labelled_config

    labelled = data or config["ssl"].get("knn_data")
    if data is not None and not Path(data).exists():
        raise ReslabError(f"--data {data} does not exist; give a labelled folder (class folders) for the embedding map")
    if not labelled or not Path(labelled).exists():
        note = (f"a self-supervised run has no classifier to evaluate; re-run `reslab report {run_dir} --data LABELLED` "
                "with a labelled folder for the map of its features")
        return write_report(run_dir, out, model=model, classes=[], preprocess=preprocess, device=device, data_note=note)
    cfg = labelled_config(labelled, preprocess)
    source = open_source(cfg.path, cfg.format)
    split = next((s for s in ("test", "val") if s in source.splits), "train")
    per_class = -(-max_images // max(1, len(source.classes)))  # every class on the map, not the first few
    loader, classes = build_eval_loader(cfg, split, 200, mean=cfg.mean, std=cfg.std, device=device, per_class=per_class)
    return write_report(run_dir, out, model=model, classes=classes, preprocess=preprocess, batches=loader.batches(),
                        device=device, embedding=embedding, max_images=max_images)
