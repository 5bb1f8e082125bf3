"""Fine-tuning pretrained weights on a small photo folder: what the data decides, and the linear probe.

Around `fit` (the `finetune` recipe turns them on):
- `adapt_to_data`: with `finetune.auto`, the batch size and the number of epochs follow the training
  set's size (never a batch larger than the data), photos are decoded once into memory when they
  fit, and the network sees its pretrained weights' own normalisation. The resolved values go into
  the run's config.toml, so a resume or a rerun of that file trains the same way.
- `linear_probe`: the frozen backbone's pooled features of every training image (plain, and a few
  augmented views) and of the validation images are computed once; a logistic-regression head is
  fitted on them in seconds and copied into the classifier. Full fine-tuning then starts from a head
  that already classifies, so the first steps do not push a random head's gradients through the
  pretrained features (LP-FT: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features").
- `class_weights` for imbalanced folders, `bn_frozen` / `freeze_bn` for small batches.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ReslabError
from .config import TrainConfig, replace

log = logging.getLogger(__name__)
BN_FREEZE_BELOW = 64  # bn = auto: a batch smaller than this keeps pretrained BatchNorm statistics fixed
IMBALANCE_RATIO = 1.5  # class_balance = auto: weigh the loss when the largest class has more than this x the smallest
PROBE_DECAYS = (1e-4, 1e-3, 1e-2)  # L2 strengths tried by the probe; the one with the lowest validation loss wins


def auto_batch_size(n_train: int, largest: int) -> int:
    """The largest power of two <= `largest` and <= a quarter of the training set (at least 1)."""
    cap = max(1, min(largest, n_train // 4))
    return 1 << (cap.bit_length() - 1)


def auto_epochs(n_train: int, images_per_run: int, lo: int, hi: int) -> int:
    """Epochs so that a run sees about `images_per_run` images, within [lo, hi]."""
    return int(min(hi, max(lo, round(images_per_run / max(1, n_train)))))


def adapt_to_data(cfg: TrainConfig, world_size: int = 1) -> tuple[TrainConfig, dict]:
    """With finetune.auto: fill batch size, epochs, in-memory decoding and normalisation from the data.

    Only values left at "auto" (batch_size 0, epochs and steps 0, in_memory auto, no mean/std) are
    filled; anything the user set stays. Returns (config, what was decided, for meta.json).
    """
    f = cfg.finetune
    if not f.auto:
        return cfg, {}
    from ..data.build import select_splits
    from ..data.formats import FileSplit, open_source
    from ..models import model_entry

    source = open_source(cfg.data.path, cfg.data.format)
    train, evaluation, eval_name = select_splits(source, cfg.data)
    n_train = len(train)
    data, section = {}, {}
    if cfg.train.batch_size == 0:
        section["batch_size"] = auto_batch_size(n_train // world_size, f.max_batch_size)
    if cfg.train.epochs == 0 and cfg.train.steps == 0:
        section["epochs"] = float(auto_epochs(n_train, f.images_per_run, f.min_epochs, f.max_epochs))
    entry = model_entry(cfg.model.name)
    if cfg.model.weights and not cfg.data.mean and not cfg.data.std:
        data["mean"], data["std"] = tuple(entry.mean), tuple(entry.std)  # the statistics the weights were trained with
    in_memory = cfg.data.in_memory
    if in_memory == "auto" and isinstance(train, FileSplit):
        n_decoded = n_train + (len(evaluation) if evaluation is not None else 0)
        decoded_gb = n_decoded * cfg.data.channels * cfg.data.image_size**2 / 1e9
        in_memory = data["in_memory"] = "yes" if decoded_gb <= cfg.data.max_in_memory_gb else "no"
    if in_memory == "no" and not cfg.data.eval_resize:
        data["eval_resize"] = round(entry.resize * cfg.data.image_size / entry.input_size[1])  # the weights' crop ratio
    counts = np.bincount(train.labels, minlength=len(source.classes))
    decided = {
        "train_images": n_train,
        "eval_images": len(evaluation) if evaluation is not None else 0,
        "eval_split": eval_name,
        "class_counts": dict(zip(source.classes, counts.tolist())),
        **{f"train.{k}": v for k, v in section.items()},
        **{f"data.{k}": list(v) if isinstance(v, tuple) else v for k, v in data.items()},
    }
    log.info("fine-tuning on %d training images (%s split: %d): %s", n_train, eval_name, decided["eval_images"],
             ", ".join(f"{k} {v}" for k, v in decided.items() if k.startswith(("train.", "data.in_memory"))) or "as configured")
    return replace(cfg, data=data, train=section), decided


def train_labels(data) -> np.ndarray:
    loader = data.train
    labels = loader.labels if hasattr(loader, "labels") else loader.split.labels
    return labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    """Loss weights 1/count per class, with mean 1 over the classes present (None when not weighting).

    mode: off | loss | auto (weights only when the largest class has > IMBALANCE_RATIO x the smallest).
    """
    if mode not in ("off", "loss", "auto"):
        raise ReslabError(f"train.class_balance is '{mode}'; choose off, loss or auto")
    if mode == "off":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    if mode == "auto" and counts[present].max() <= IMBALANCE_RATIO * counts[present].min():
        return None
    w = np.zeros(num_classes)
    w[present] = 1.0 / counts[present]
    w *= present.sum() / w.sum()
    return torch.tensor(w, dtype=torch.float32)


def bn_frozen(cfg: TrainConfig, batch_size: int) -> bool:
    """train.bn: train | frozen | auto (frozen when starting from pretrained weights with a small batch)."""
    mode = cfg.train.bn
    if mode not in ("train", "frozen", "auto"):
        raise ReslabError(f"train.bn is '{mode}'; choose train, frozen or auto")
    if mode == "auto":
        return bool(cfg.model.weights) and batch_size < BN_FREEZE_BELOW
    return mode == "frozen"


def freeze_stages(model: nn.Module, stages: int) -> list[str]:
    """Freeze every parameter up to the end of the model's `stages`-th stage (`model.feature_names`,
    in forward order); returns the frozen parameter names. Early layers hold generic edges and
    textures (Yosinski et al. 2014) and are the most expensive to backpropagate through at full
    resolution: freezing them costs little accuracy on small data and halves the step time."""
    if stages <= 0:
        return []
    names = list(getattr(model, "feature_names", []))
    if stages > len(names):
        raise ReslabError(f"finetune.frozen_stages is {stages} but the model has {len(names)} stages; use 0..{len(names)}")
    params = list(model.named_parameters())
    last = names[stages - 1]
    cut = max((i for i, (n, _) in enumerate(params) if n.startswith(last + ".")), default=None)
    if cut is None:  # a stage that is not a module of its own (ResNet's "stem"): up to the next stage
        following = names[stages] if stages < len(names) else None
        first = next((i for i, (n, _) in enumerate(params) if following and n.startswith(following + ".")), None)
        if first is None:
            raise ReslabError(f"cannot tell which parameters form the first {stages} stage(s) of this model; lower finetune.frozen_stages")
        cut = first - 1
    frozen = [n for n, _ in params[: cut + 1]]
    for _, p in params[: cut + 1]:
        p.requires_grad_(False)
    # every module all of whose parameters are frozen runs in eval mode while training: BatchNorm
    # keeps its statistics and stochastic depth (drop-path) stays off in blocks that do not learn
    model.frozen_modules = [m for name, m in model.named_modules()
                            if name and (ps := list(m.parameters())) and not any(p.requires_grad for p in ps)]  # fmt: skip
    return frozen


def freeze_bn(model: nn.Module, only_frozen: bool = False) -> None:
    """BatchNorm layers in eval mode: they normalise with their running (pretrained) statistics and
    leave them unchanged; their affine weights still train. A batch of 8-16 photos of one folder
    gives noisy statistics that would overwrite what ImageNet estimated over millions of images.
    only_frozen: just the modules of frozen stages (`freeze_stages`), which run wholly in eval mode."""
    if only_frozen:
        for m in getattr(model, "frozen_modules", []):
            m.eval()
        return
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def eval_frozen_parts(model: nn.Module, bn_statistics_frozen: bool) -> None:
    """After `model.train()`: frozen stages wholly in eval mode, and every BatchNorm when its statistics are frozen."""
    freeze_bn(model, only_frozen=True)
    if bn_statistics_frozen:
        freeze_bn(model)


# ------------------------------------------------------------------------------- linear probe


@torch.no_grad()
def pooled_features(model: nn.Module, batches, device: torch.device, amp: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D) float32 on the CPU, labels (N,)) of the model's pooled pre-logits features."""
    from .evaluate import autocast

    feats, labels = [], []
    for x, y in batches:
        with autocast(device, amp):
            f = model.forward_head(model.forward_features(x.to(device)), pre_logits=True)
        feats.append(f.float().cpu())
        labels.append(y.cpu())
    if not feats:
        raise ReslabError("the linear probe got no images; check the training data")
    return torch.cat(feats), torch.cat(labels)


def _train_views(data, views: int, seed: int, batch_size: int):
    """Batches of every training image: the plain one, then `views` augmented views (in-memory data),
    or `views + 1` augmented passes through a file loader."""
    loader = data.train
    if hasattr(loader, "images") and hasattr(loader, "augment"):  # in memory: every image, every view
        from ..data.batch_augment import finish
        from ..data.loaders import derive_seed

        aug = loader.augment
        for view in range(views + 1):
            g = torch.Generator().manual_seed(derive_seed(seed, view, 0x9B0BE))
            for start in range(0, loader.num_samples, batch_size):
                x = loader.images[start : start + batch_size]
                x = finish(x.float().div(255), aug.mean, aug.std, aug.out_channels) if view == 0 else aug(x, g)
                yield x, loader.labels[start : start + batch_size]
        return
    for view in range(views + 1):  # file loaders augment every pass; epochs far from training's
        yield from loader.batches(epoch=1_000_000 + view)


def fit_linear_head(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, weight_decay: float,
                    weights: torch.Tensor | None = None, steps: int = 100) -> nn.Linear:  # fmt: skip
    """Multinomial logistic regression by full-batch L-BFGS: mean (weighted) cross-entropy + decay * |W|^2."""
    head = nn.Linear(train_x.shape[1], num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")
    w = None if weights is None else weights[train_y]

    def closure():
        opt.zero_grad()
        ce = F.cross_entropy(head(train_x), train_y, reduction="none")
        loss = (ce * w).sum() / w.sum() if w is not None else ce.mean()
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return head


def linear_probe(model: nn.Module, data, cfg: TrainConfig, device: torch.device, amp: str,
                 weights: torch.Tensor | None = None) -> dict:  # fmt: skip
    """Fit the classifier on cached frozen features; returns what it reached (for the log and meta.json)."""
    t0 = time.perf_counter()
    f = cfg.finetune
    classifier = model.get_classifier()
    was_training = model.training
    model.eval()
    bs = max(cfg.train.batch_size, 32)
    try:
        train_x, train_y = pooled_features(model, _train_views(data, f.probe_views, cfg.train.seed, bs), device, amp)
        val = pooled_features(model, data.eval.batches(), device, amp) if data.eval is not None else None
    finally:
        model.train(was_training)
    # standardise for the optimiser, fold the scaling back into the classifier afterwards
    mu, sigma = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    z = (train_x - mu) / sigma
    k = classifier.out_features
    candidates = []
    for decay in PROBE_DECAYS if val is not None else (f.probe_weight_decay,):
        head = fit_linear_head(z, train_y, k, decay, weights, f.probe_steps)
        score = {"weight_decay": decay}
        if val is not None:
            with torch.no_grad():
                logits = head((val[0] - mu) / sigma)
                score["val_loss"] = float(F.cross_entropy(logits, val[1]))
                score["val_top1"] = 100.0 * float((logits.argmax(1) == val[1]).float().mean())
        candidates.append((score.get("val_loss", 0.0), score, head))
    _, best, head = min(candidates, key=lambda c: c[0])
    with torch.no_grad():
        weight = head.weight / sigma  # W (x - mu) / sigma + b  =  (W / sigma) x + (b - W mu / sigma)
        classifier.weight.copy_(weight.to(classifier.weight))
        classifier.bias.copy_((head.bias - weight @ mu).to(classifier.bias))
        train_top1 = 100.0 * float((head(z).argmax(1) == train_y).float().mean())
    result = {**best, "train_top1": train_top1, "features": int(train_x.shape[0]), "dim": int(train_x.shape[1]),
              "views": f.probe_views, "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
    if val is not None:
        log.info("linear probe on frozen features: val top-1 %.2f%% (loss %.4f, L2 %g) from %d cached features in %.1f s",
                 best["val_top1"], best["val_loss"], best["weight_decay"], result["features"], result["seconds"])
    return result


def describe_balance(weights: torch.Tensor | None, classes: list[str]) -> str:
    if weights is None:
        return "classes balanced enough: unweighted loss"
    return "class-weighted loss: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(classes, weights.tolist()))

