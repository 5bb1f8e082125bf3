"""Self-supervised training as an engine task: SimCLR, MoCo v2 or BYOL on unlabelled images.

The data are two augmented views of every image (`data.views = 2`: the loader yields the B first
views, then the B second views); labels are ignored. Each epoch, when `ssl.knn_data` names a
labelled dataset, the backbone's features are scored by the weighted kNN monitor (k = 200,
T = 0.1): `knn_top1`/`knn_top5` in metrics.jsonl, and best.pt is the best of them. The run exports
the backbone alone (the zoo model's state dict without its classifier).
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from ..errors import ReslabError
from ..train.config import TrainConfig
from .models import BYOL, MoCo, SimCLR, backbone, momentum_at

log = logging.getLogger(__name__)


def build_ssl_model(cfg: TrainConfig) -> nn.Module:
    s, m = cfg.ssl, cfg.model
    encoder = backbone(m.name, weights=m.weights or None, **m.options)
    if s.method == "simclr":
        return SimCLR(encoder, s.proj_hidden, s.proj_dim, s.temperature)
    if s.method == "byol":
        return BYOL(encoder, s.proj_hidden, s.proj_dim, s.pred_hidden)
    return MoCo(encoder, s.proj_hidden, s.proj_dim, s.temperature, s.queue_size, s.key_splits)


def check_config(cfg: TrainConfig) -> None:
    """What self-supervised training cannot do, said before any data is read."""
    if cfg.data.views != 2:
        raise ReslabError(f"ssl.method={cfg.ssl.method} compares two views of each image; set data.views = 2 "
                          "(the ssl_* recipes do)")  # fmt: skip
    if cfg.data.eval_split != "none":
        raise ReslabError("self-supervised training has no classifier to evaluate on data.eval_split; set "
                          "data.eval_split = none and name a labelled set in ssl.knn_data for the kNN monitor")  # fmt: skip
    t = cfg.train
    if t.mixup_alpha > 0 or t.cutmix_alpha > 0 or t.label_smoothing > 0:
        raise ReslabError("mixup, cutmix and label smoothing act on labels, which self-supervised training ignores; "
                          "set train.mixup_alpha, cutmix_alpha and label_smoothing to 0")  # fmt: skip
    if cfg.schedule.warmup_until_error > 0:
        raise ReslabError("schedule.warmup_until_error watches the training error of a classifier; self-supervised "
                          "training has none: use schedule.warmup (epochs) instead")  # fmt: skip
    if cfg.model.dropout > 0:
        raise ReslabError("model.dropout acts on the classifier, which a self-supervised backbone does not have; set it to 0")
    if cfg.ssl.knn_data:  # checked before training rather than after the first epoch
        from .evaluate import open_labelled

        open_labelled(cfg.ssl.knn_data, "ssl.knn_data", "the kNN monitor needs labelled images; leave it empty to train without")


class SelfSupervisedTask:
    kind = "self-supervised"
    reports_accuracy = False

    def __init__(self, cfg: TrainConfig):
        check_config(cfg)
        self.cfg = cfg
        self._knn = None  # (bank, bank labels, query loader or None, classes), built at the first evaluation

    def build_model(self, num_classes: int) -> nn.Module:
        return build_ssl_model(self.cfg)

    def step(self, ctx, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict:
        return ctx.train_model(images, generator)

    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        if hasattr(model, "update_teacher"):
            s = self.cfg.ssl
            model.update_teacher(momentum_at(s.momentum, step, total_steps, s.momentum_schedule))

    def export_model(self, model: nn.Module, classes: list[str]) -> tuple[nn.Module, list[str]]:
        return model.backbone, []

    def epoch_metrics(self, ctx) -> dict:
        """The kNN monitor on `ssl.knn_data`, every `knn_every` epochs and at the last one."""
        s = self.cfg.ssl
        last = ctx.state.step >= ctx.total_steps
        if not s.knn_data or not (last or (s.knn_every and (ctx.state.epoch + 1) % s.knn_every == 0)):
            return {}
        from ..train.distributed import broadcast_object

        result = knn_monitor(self, ctx) if ctx.info.is_main else None
        return broadcast_object(result, ctx.info)


def knn_monitor(task: SelfSupervisedTask, ctx) -> dict:
    """kNN accuracy of the backbone's pooled features: bank = the labelled training split, queries = its
    test (else val) split; leave-one-out when it has one split only."""
    from ..data import DataConfig, build_eval_loader
    from ..data.formats import open_source
    from .knn import PooledFeatures, embed_loader, knn_accuracy

    t0 = time.perf_counter()
    s, d = task.cfg.ssl, task.cfg.data
    cfg = DataConfig(path=s.knn_data, image_size=d.image_size, eval_resize=d.eval_resize, channels=d.channels,
                     mean=tuple(ctx.data.mean), std=tuple(ctx.data.std), augment="none", workers=d.workers,
                     limit_per_class=s.knn_limit_per_class, max_in_memory_gb=d.max_in_memory_gb,
                     cache_decoded=d.cache_decoded)  # fmt: skip
    if task._knn is None:
        source = open_source(cfg.path, cfg.format)
        query_split = next((name for name in ("test", "val") if name in source.splits), None)
        bs = d.eval_batch_size or 256
        bank_loader, classes = build_eval_loader(cfg, "train", bs, mean=cfg.mean, std=cfg.std, device=ctx.device)
        query_loader = build_eval_loader(cfg, query_split, bs, mean=cfg.mean, std=cfg.std, device=ctx.device)[0] if query_split else None
        task._knn = (bank_loader, query_loader, classes)
    bank_loader, query_loader, classes = task._knn
    encoder = PooledFeatures(ctx.model.backbone)
    kw = dict(device=ctx.device, amp=ctx.amp, channels_last=ctx.cfg.train.channels_last)
    bank, bank_y = embed_loader(encoder, bank_loader, **kw)
    if query_loader is None:
        result = knn_accuracy(bank, bank_y, bank, bank_y, len(classes), s.knn_k, s.knn_temperature, exclude_self=True)
    else:
        query, query_y = embed_loader(encoder, query_loader, **kw)
        result = knn_accuracy(query, query_y, bank, bank_y, len(classes), s.knn_k, s.knn_temperature)
    seconds = time.perf_counter() - t0
    log.info("kNN monitor: top-1 %.2f%%, top-5 %.2f%% (%d queries, %d bank images, %.1f s)", result["knn_top1"],
             result["knn_top5"], result["count"], len(bank_y), seconds)  # fmt: skip
    return {"knn_top1": result["knn_top1"], "knn_top5": result["knn_top5"], "knn_seconds": seconds}
