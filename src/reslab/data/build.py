"""`build_data`: from a DataConfig to train/eval loaders, the class names and the normalisation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ReslabError
from .batch_augment import BatchTrainAugment
from .config import DataConfig
from .formats import ArraySplit, FileSplit, Source, open_source, per_class_subset, stratified_holdout
from .guard import BadFileLog
from .loaders import FileEvalLoader, FileTrainLoader, InMemoryEvalLoader, InMemoryTrainLoader
from .memory import decode_split, small_equal_images
from .progress import resolve_workers
from .transforms import IMAGENET_MEAN, IMAGENET_STD, FileEvalTransform, FileTrainTransform

log = logging.getLogger(__name__)
TTA_KINDS = ("ten_crop", "flip", "flip_shift")


@dataclass
class Data:
    """What the training engine gets: loaders, class names and the normalisation used."""

    classes: list[str]
    num_channels: int  # channels of the images the loaders yield (= cfg.channels)
    mean: tuple[float, ...]  # per yielded channel, on the [0, 1] scale
    std: tuple[float, ...]
    train: InMemoryTrainLoader | FileTrainLoader
    eval: InMemoryEvalLoader | FileEvalLoader | None
    in_memory: bool
    eval_split: str  # which split evaluates: val | test | holdout | none
    format: str
    make_eval: Callable[[str | None], object] | None = field(default=None, repr=False)  # views -> an eval loader
    holdout_files: tuple[str, ...] | None = None  # the held-out validation files, when the split was made here
    _tta: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_size(self) -> int:
        return self.train.num_samples

    @property
    def eval_size(self) -> int:
        return self.eval.num_samples if self.eval is not None else 0

    def eval_tta(self, kind: str):
        """An eval loader whose batches are (images (B, n_views, C, H, W), labels): "flip" gives 2
        views, "ten_crop" 10 (corners, centre and their mirrors), "flip_shift" 6 (the image, moved one
        pixel up-left and down-right, each with its mirror: airbench). Average the softmax over views
        (weighted by the loader's `view_weights` where it has them)."""
        if kind not in TTA_KINDS:
            raise ReslabError(f"unknown test-time augmentation '{kind}'; use one of {', '.join(TTA_KINDS)}")
        if self.make_eval is None:
            raise ReslabError("this dataset has no evaluation split; set data.eval_split or data.val_fraction")
        if kind not in self._tta:
            self._tta[kind] = self.make_eval(kind)
        return self._tta[kind]

    def describe(self) -> dict:
        return {"format": self.format, "classes": len(self.classes), "train_size": self.train_size,
                "eval_size": self.eval_size, "eval_split": self.eval_split, "in_memory": self.in_memory,
                "channels": self.num_channels, "mean": list(self.mean), "std": list(self.std)}  # fmt: skip


def select_splits(source: Source, cfg: DataConfig) -> tuple[object, object | None, str]:
    """(train split, eval split or None, eval split name) after hold-out and per-class limits."""
    train = source.splits["train"]
    holdout = None
    fraction = cfg.val_fraction
    if not fraction and cfg.auto_holdout > 0 and cfg.eval_split == "auto" and not {"val", "test"} & set(source.splits):
        fraction = cfg.auto_holdout  # a folder of class subfolders only: make the validation split
    if fraction > 0:
        keep, held = stratified_holdout(train.labels, fraction, cfg.split_seed)
        train, holdout = train.subset(keep), train.subset(held)
    if cfg.limit_per_class > 0:
        train = train.subset(per_class_subset(train.labels, cfg.limit_per_class, cfg.split_seed))
    name = cfg.eval_split
    if name == "auto":
        name = "holdout" if holdout is not None else next((s for s in ("val", "test") if s in source.splits), "none")
    if name == "none":
        return train, None, name
    if name == "holdout":
        if holdout is None:
            raise ReslabError("data.eval_split is 'holdout' but data.val_fraction is 0; set e.g. val_fraction = 0.1")
        chosen = holdout
    elif name not in source.splits:
        raise ReslabError(f"{source.root} has no '{name}' split (it has {', '.join(source.splits)}); set data.eval_split")
    else:
        chosen = source.splits[name]
    if cfg.eval_limit_per_class > 0:
        # per class, not the first N: splits are stored class by class
        chosen = chosen.subset(per_class_subset(chosen.labels, cfg.eval_limit_per_class, cfg.split_seed))
    return train, chosen, name


def check_labels(labels: np.ndarray, num_classes: int, what: str) -> None:
    """Every label names a class (0..K-1): a label past the class list would stop training in its loss."""
    wrong = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(wrong):
        raise ReslabError(
            f"{what}: {len(wrong)} label(s) outside 0..{num_classes - 1}, e.g. {int(labels[wrong[0]])} at row {int(wrong[0])}; "
            "`reslab data verify` lists them: fix the labels or the class list"
        )


def _decide_in_memory(cfg: DataConfig, train) -> bool:
    if isinstance(train, ArraySplit):
        return True  # already decoded
    if cfg.in_memory != "auto":
        return cfg.in_memory == "yes"
    if cfg.augment == "imagenet_paper":
        return False
    decoded_gb = len(train) * cfg.channels * cfg.image_size**2 / 1e9
    if cfg.views > 1:
        # several views of every image per step: decoding each file once into memory (at image_size)
        # and cropping the views there beats decoding every file twice per epoch
        return decoded_gb <= cfg.max_in_memory_gb
    hw = small_equal_images(train.paths)
    if hw is None:
        return False
    return decoded_gb <= cfg.max_in_memory_gb


def _to_array(split, cfg: DataConfig, bad_log: BadFileLog, what: str) -> ArraySplit:
    """Any split as uint8 (N, C, image_size, image_size); C = 1 for grey models, else as stored."""
    if isinstance(split, FileSplit):
        return decode_split(split, cfg.image_size, cfg.channels, cfg.workers, bad_log, cfg.cache_decoded, what)
    images = split.images
    if cfg.channels == 1 and images.shape[1] == 3:
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
        images = np.clip((images * luma).sum(1, keepdims=True).round(), 0, 255).astype(np.uint8)
    if images.shape[2:] != (cfg.image_size, cfg.image_size):
        t = torch.from_numpy(np.ascontiguousarray(images)).float()
        t = F.interpolate(t, size=(cfg.image_size, cfg.image_size), mode="bilinear", antialias=True, align_corners=False)
        images = t.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return ArraySplit(np.ascontiguousarray(images), split.labels)


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on [0, 1], accumulated in float64 over chunks (no full float copy)."""
    c = images.shape[1]
    s = np.zeros(c)
    s2 = np.zeros(c)
    for start in range(0, len(images), 4096):
        chunk = images[start : start + 4096].astype(np.float64) / 255.0
        s += chunk.sum(axis=(0, 2, 3))
        s2 += (chunk**2).sum(axis=(0, 2, 3))
    n = len(images) * images.shape[2] * images.shape[3]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 1e-12))
    return tuple(float(round(v, 4)) for v in mean), tuple(float(round(v, 4)) for v in std)


def build_data(
    cfg: DataConfig,
    batch_size: int,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> Data:
    """Read `cfg.path`, split it, and build the training and evaluation loaders (see `loaders`)."""
    device = torch.device(device)
    if not 0 <= rank < world_size:
        raise ReslabError(f"rank {rank} is outside world_size {world_size}")
    source = open_source(cfg.path, cfg.format, labelled=cfg.labelled)
    train, evaluation, eval_name = select_splits(source, cfg)
    for name, split in (("train", train), (eval_name, evaluation)):
        if split is not None:
            check_labels(split.labels, len(source.classes), f"{source.root} ({name})")
    if len(train) // world_size < batch_size:
        raise ReslabError(
            f"{len(train)} training images over {world_size} rank(s) make no full batch of {batch_size}; "
            "lower the batch size or use more data"
        )
    total_files = len(train) + (len(evaluation) if evaluation is not None else 0)
    in_memory = _decide_in_memory(cfg, train)
    workers = resolve_workers(cfg.workers)
    files = [p for split in (train, evaluation) if isinstance(split, FileSplit) for p in split.paths]
    bad_log = BadFileLog(total_files, cfg.max_bad_fraction, str(source.root), paths=files or None, workers=workers)
    holdout_files = tuple(str(p) for p in evaluation.paths) if eval_name == "holdout" and isinstance(evaluation, FileSplit) else None
    eval_bs = cfg.eval_batch_size or batch_size

    if in_memory:
        train = _to_array(train, cfg, bad_log, "train")
        if evaluation is not None:
            evaluation = _to_array(evaluation, cfg, bad_log, eval_name)
        bad_log.complete = True  # every file is decoded: decide on all of them at once
        bad_log.check()
        stored_channels = train.images.shape[1]
        mean, std = cfg.mean, cfg.std
        if not mean or not std:
            m, s = _channel_stats(train.images)
            mean, std = mean or m, std or s
            log.info("per-channel mean %s and std %s computed from the %d training images", mean, std, len(train))
        mean, std = _fit(mean, stored_channels), _fit(std, stored_channels)
        augment = BatchTrainAugment(cfg, mean, std, cfg.channels)
        train_loader = InMemoryTrainLoader(train, batch_size, augment, seed=seed, rank=rank, world_size=world_size,
                                           device=device, channels_last=channels_last)  # fmt: skip

        def make_eval(views):
            return InMemoryEvalLoader(evaluation, eval_bs, mean, std, cfg.channels, rank=rank, world_size=world_size,
                                      device=device, channels_last=channels_last, views=views, pad=cfg.cifar_pad)  # fmt: skip
    else:
        if cfg.alternate_flip:
            raise ReslabError("data.alternate_flip needs in-memory data, and these images are decoded from files; "
                              "set data.alternate_flip=false (or data.in_memory=yes for small images)")
        mean = _fit(cfg.mean or IMAGENET_MEAN, cfg.channels)
        std = _fit(cfg.std or IMAGENET_STD, cfg.channels)
        train_loader = FileTrainLoader(train, batch_size, FileTrainTransform(cfg, mean, std), bad_log, seed=seed, rank=rank,
                                       world_size=world_size, workers=workers, device=device, channels_last=channels_last)  # fmt: skip

        def make_eval(views):
            return FileEvalLoader(evaluation, eval_bs, FileEvalTransform(cfg, mean, std, views), bad_log, rank=rank,
                                  world_size=world_size, workers=workers, device=device, channels_last=channels_last)  # fmt: skip

    data = Data(
        classes=list(source.classes), num_channels=cfg.channels, mean=_fit(mean, cfg.channels), std=_fit(std, cfg.channels),
        train=train_loader, eval=make_eval(None) if evaluation is not None else None, in_memory=in_memory,
        eval_split=eval_name, format=source.format, make_eval=make_eval if evaluation is not None else None,
        holdout_files=holdout_files,
    )  # fmt: skip
    log.info(
        "data: %s %s, %d classes, %d train / %d %s images, %s",
        source.format, source.root, len(data.classes), data.train_size, data.eval_size, eval_name,
        "decoded in memory" if in_memory else f"decoded on the fly by {workers} worker(s)",
    )  # fmt: skip
    return data


def build_eval_loader(
    cfg: DataConfig,
    split: str,
    batch_size: int,
    *,
    mean=None,
    std=None,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    per_class: int = 0,
) -> tuple[object, list[str]]:
    """An unaugmented, fixed-order loader over one split, and the class names.

    split: "train" (after the hold-out and limit_per_class, as training sees it), "val", "test" or
    "holdout". mean, std: the normalisation a model was trained with (default: as build_data picks
    it). Frozen-feature evaluations use it: a kNN bank of the training images, a linear probe.
    per_class > 0: a seeded subset of at most that many images of each class (splits are stored
    class by class, so the first N images of a split would show only its first classes).
    """
    device = torch.device(device)
    source = open_source(cfg.path, cfg.format, labelled=cfg.labelled)
    if split == "train":
        chosen = select_splits(source, replace(cfg, eval_split="none"))[0]
    else:
        _train, chosen, _name = select_splits(source, replace(cfg, eval_split=split))
    if per_class > 0:
        chosen = chosen.subset(per_class_subset(chosen.labels, per_class, cfg.split_seed))
    bad_log = BadFileLog(len(chosen), cfg.max_bad_fraction, str(source.root))
    in_memory = _decide_in_memory(cfg, chosen)
    if in_memory:
        chosen = _to_array(chosen, cfg, bad_log, split)
        if mean is None or std is None:
            m, sd = _channel_stats(chosen.images)
            mean, std = mean or m, std or sd
        stored = chosen.images.shape[1]
        loader = InMemoryEvalLoader(chosen, batch_size, _fit(mean, stored), _fit(std, stored), cfg.channels, rank=rank,
                                    world_size=world_size, device=device, channels_last=channels_last)  # fmt: skip
    else:
        mean = _fit(mean or cfg.mean or IMAGENET_MEAN, cfg.channels)
        std = _fit(std or cfg.std or IMAGENET_STD, cfg.channels)
        loader = FileEvalLoader(chosen, batch_size, FileEvalTransform(cfg, mean, std), bad_log, rank=rank, world_size=world_size,
                                workers=resolve_workers(cfg.workers), device=device, channels_last=channels_last)  # fmt: skip
    return loader, list(source.classes)


def _fit(values, channels: int) -> tuple[float, ...]:
    """Mean/std for `channels` channels: one value is repeated; three collapse to their mean for grey."""
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if channels == 1:
        return (float(np.mean(values)),)
    raise ReslabError(f"{len(values)} normalisation values for {channels} channels; give one per channel")
