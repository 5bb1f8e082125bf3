"""`reslab eval-ssl`: how good are frozen features? kNN accuracy and a linear probe on a labelled set.

Works for any encoder: a self-supervised run, a supervised run (its pooled pre-classifier
features), or a zoo model with or without pretrained weights (e.g. the random-initialisation
baseline). The labelled data's training split is the kNN bank and the probe's training set; its
test (or val) split is evaluated. A folder with a single split is evaluated leave-one-out (kNN)
and on a seeded 20% hold-out (probe).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ReslabError
from ..fileio import atomic_write_text
from .knn import KNN_K, KNN_TEMPERATURE, PooledFeatures, embed_loader, knn_accuracy

log = logging.getLogger(__name__)
PROBE_HOLDOUT = 0.2  # single-split data: the share of images the probe is tested on
DECAY_HOLDOUT = 0.1  # share of the probe's training features that picks its L2 strength


def load_encoder(source: str, weights: str | None = None, device: torch.device | str = "cpu"):
    """(feature model in eval mode, EvalPreprocess, a description) for a run folder / checkpoint or a zoo name."""
    from ..inference import load

    loaded = load(source, weights or None, device=device)
    model = loaded.torch_network("evaluating features needs")
    if loaded.kind == "run":
        kind = "self-supervised" if loaded.config.get("ssl", {}).get("method") else "supervised"
        return PooledFeatures(model).eval(), loaded.preprocess, f"{kind} run {source} ({loaded.name})"
    return PooledFeatures(model).eval(), loaded.preprocess, f"{source} ({weights or 'random initialisation'})"


def labelled_config(data: str, pre, limit_per_class: int = 0):
    """The DataConfig that reads `data` as the encoder expects its inputs (size, crop, normalisation)."""
    from ..data import DataConfig

    channels = pre.channels
    return DataConfig(path=str(data), image_size=pre.crop, eval_resize=pre.resize, channels=channels,
                      mean=tuple(pre.mean[:channels]), std=tuple(pre.std[:channels]), augment="none",
                      limit_per_class=limit_per_class)  # fmt: skip


def stratified_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep, held) indices: a seeded share `fraction` of every class held out."""
    from ..data.formats import stratified_holdout

    keep, held = stratified_holdout(labels.numpy(), fraction, seed)
    return torch.from_numpy(keep), torch.from_numpy(held)


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                          num_classes: int, seed: int = 0) -> dict:  # fmt: skip
    """Logistic regression on standardised frozen features (L-BFGS); the L2 strength is picked on a
    hold-out of the training features, then the head is refitted on all of them."""
    from ..train.transfer import PROBE_DECAYS, fit_linear_head

    mu, sigma = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    z_train, z_test = (train_x - mu) / sigma, (test_x - mu) / sigma
    keep, held = stratified_split(train_y, DECAY_HOLDOUT, seed)
    scores = []
    for decay in PROBE_DECAYS:
        head = fit_linear_head(z_train[keep], train_y[keep], num_classes, decay)
        with torch.no_grad():
            scores.append((float(F.cross_entropy(head(z_train[held]), train_y[held])), decay))
    decay = min(scores)[1]
    head = fit_linear_head(z_train, train_y, num_classes, decay)
    with torch.no_grad():
        top1 = 100.0 * float((head(z_test).argmax(1) == test_y).float().mean())
    return {"probe_top1": top1, "probe_weight_decay": decay}


def open_labelled(path: str, name: str, why: str):
    """The labelled dataset at `path` (reslab.data.formats.Source), or one error naming `name` (the option or key)."""
    from ..data.formats import open_source

    if not Path(path).expanduser().exists():
        raise ReslabError(f"{name} {path} does not exist; give a labelled dataset (class folders, or train/ and test/ of them; "
                          f"a CIFAR or MNIST folder); {why}")  # fmt: skip
    try:
        source = open_source(path)
    except ReslabError as e:
        raise ReslabError(f"{name}: {e} ({why})") from None
    if len(source.classes) < 2:
        raise ReslabError(f"{name} {path} has {len(source.classes)} class; give two or more class folders ({why})")
    return source


def evaluate_features(source: str, data: str, *, weights: str | None = None, split: str = "auto", k: int = KNN_K,
                      temperature: float = KNN_TEMPERATURE, limit_per_class: int = 0, batch_size: int = 256,
                      probe: bool = True, device: str = "auto", out: str | Path | None = None) -> dict:  # fmt: skip
    """kNN (and linear-probe) accuracy of an encoder's frozen features on a labelled dataset."""
    from ..data import build_eval_loader
    from ..devices import resolve_device

    dev = resolve_device(device)
    t0 = time.perf_counter()
    source_data = open_labelled(data, "--data", "kNN and linear-probe accuracy need labelled images")
    model, pre, description = load_encoder(source, weights, dev)
    cfg = labelled_config(data, pre, limit_per_class)
    classes = list(source_data.classes)
    query_split = _query_split(split, source_data.splits)
    bank_loader, _ = build_eval_loader(cfg, "train", batch_size, mean=cfg.mean, std=cfg.std, device=dev)
    bank, bank_y = embed_loader(model, bank_loader, dev, normalize=False)
    if query_split is None:  # one labelled split: leave-one-out kNN, a held-out share for the probe
        normed = F.normalize(bank, dim=1)
        result = knn_accuracy(normed, bank_y, normed, bank_y, len(classes), k, temperature, exclude_self=True)
        protocol = "leave-one-out over the training split"
        if probe:
            keep, held = stratified_split(bank_y, PROBE_HOLDOUT)
            result.update(linear_probe_accuracy(bank[keep], bank_y[keep], bank[held], bank_y[held], len(classes)))
    else:
        query_loader, _ = build_eval_loader(cfg, query_split, batch_size, mean=cfg.mean, std=cfg.std, device=dev)
        query, query_y = embed_loader(model, query_loader, dev, normalize=False)
        result = knn_accuracy(F.normalize(query, dim=1), query_y, F.normalize(bank, dim=1), bank_y, len(classes), k, temperature)
        protocol = f"bank: the training split ({len(bank_y)} images); queries: the {query_split} split"
        if probe:
            result.update(linear_probe_accuracy(bank, bank_y, query, query_y, len(classes)))
    result.update(encoder=description, data=str(data), protocol=protocol, bank=int(len(bank_y)), k=k,
                  temperature=temperature, dim=int(bank.shape[1]), classes=len(classes), seconds=round(time.perf_counter() - t0, 1))  # fmt: skip
    out_dir = Path(out) if out else (Path(source) / "eval-ssl" if Path(source).is_dir() else None)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
        result["out_dir"] = str(out_dir)
    return result


def _query_split(split: str, splits: dict) -> str | None:
    if split == "auto":
        return next((s for s in ("test", "val") if s in splits), None)
    if split == "none":
        return None
    if split not in splits:
        raise ReslabError(f"the labelled data has no '{split}' split (it has {', '.join(splits)}); use --split auto")
    return split
