"""The training loop: `fit(config) -> History`, built from `train_step`, `train_one_epoch` and `evaluate`.

Exact resume: every optimizer step starts from a state that a checkpoint captures completely
(weights, optimizer, scaler, EMA, schedule, position, running epoch statistics, RNG states); the
data batches are pure functions of (seed, epoch, batch, rank), and so are the random draws of the
model's own stochastic layers (dropout, drop-path): the global generator is reseeded from
(seed, step, rank) at every step. So a run stopped after any step and resumed produces bit-for-bit
the weights of an uninterrupted run on CPU.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.loaders import derive_seed
from ..devices import resolve_device
from ..errors import ReslabError
from ..fileio import atomic_write_text, remove_stale_temporaries
from ..processes import FolderLock, StopRequests, signal_name, stop_on_signals
from . import checkpoint as ckpt_io
from . import transfer
from .config import TrainConfig, config_to_toml, replace
from .distributed import DistInfo, all_reduce_sum, average_buffers, barrier, broadcast_object, init_distributed
from .compile_policy import CompilePolicy, setup_key
from .ema import Lookahead, ModelEma
from .evaluate import autocast, evaluate
from .logging import Progress, TensorBoard, write_metrics
from .optim import build_optimizer, set_lr
from .runs import base_meta, export_safetensors, new_run_dir, preprocess_for, run_folder, write_meta
from .task import task_for
from .schedule import LRSchedule, scaled_lr

log = logging.getLogger(__name__)
ERROR_RULE_EVERY = 50  # steps between checks of the ResNet-110 warm-up rule
DATA_INIT_IMAGES = 5000  # training images a data-dependent initialisation sees (airbench's whitening: 5,000)


class NonFiniteLossError(ReslabError):
    """The loss became NaN or infinite; the run stopped before the optimizer step."""


@dataclass
class History:
    rows: list[dict] = field(default_factory=list)  # one per epoch, as in metrics.jsonl
    run_dir: Path | None = None
    best_metric: float | None = None  # value of train.early_stop_metric at best.pt
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False
    final_eval: dict | None = None  # evaluation with train.eval_tta views, when set
    probe: dict | None = None  # the linear probe's result (finetune.probe_steps > 0)
    model: nn.Module | None = None  # the trained model (final weights; not wrapped by DDP or compile)


@dataclass
class TrainState:
    """Position and running statistics; everything here goes into every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # next micro-batch of the current epoch
    epoch_sums: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss sum, correct, images (all ranks)
    epoch_time: float = 0.0  # seconds spent training in the current epoch
    wall_time: float = 0.0  # seconds of training and evaluation over all sessions
    best_metric: float | None = None
    best_epoch: int | None = None
    best_ema_metric: float | None = None
    evals_since_best: int = 0
    rows: list = field(default_factory=list)
    compile: dict = field(default_factory=dict)  # the train.compile decision and its measurements


def resolve_train_device(name: str, info: DistInfo) -> torch.device:
    """train.device through the one device policy; under DDP each process takes its local GPU."""
    device = resolve_device(name, setting="train.device")
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    return device


def resolve_amp(amp: str, device: torch.device) -> str:
    if amp == "auto":
        return "bf16" if device.type == "cpu" or torch.cuda.is_bf16_supported() else "fp16"
    if amp == "fp16" and device.type != "cuda":
        raise ReslabError("train.amp=fp16 needs a CUDA GPU; use train.amp=bf16 on CPU")
    return amp


def add_classifier_dropout(model: nn.Module, p: float) -> None:
    """Dropout on the classifier's input through a pre-hook, so the state-dict keys stay the zoo's."""
    if p <= 0:
        return
    classifier = model.get_classifier()

    def dropout_input(module, args):
        return (F.dropout(args[0], p, module.training),) + tuple(args[1:])

    classifier.register_forward_pre_hook(dropout_input)


def aux_loss_weight(configured: float, model: nn.Module) -> float:
    """train.aux_weight, or where it is negative the model's own (GoogLeNet 0.3 as Szegedy et al. 2014,
    Inception v3 0.4 as the TensorFlow code that trained it)."""
    return configured if configured >= 0 else float(getattr(model, "aux_loss_weight", 0.3))


def batch_generator(seed: int, epoch: int, batch: int, rank: int) -> torch.Generator:
    """A generator for one batch's random choices (Mixup/CutMix): a pure function of its position."""
    key = ((seed * 1_000_003 + epoch) * 1_000_003 + batch) * 1024 + rank
    return torch.Generator().manual_seed(key % (2**63))


def seed_step(seed: int, step: int, rank: int) -> None:
    """Reseed the global generators (CPU and every GPU) for optimizer step `step`.

    Dropout and drop-path draw from the global generator, and so does anything else in the process
    (a DataLoader iterator drawing its workers' seeds, an evaluation, a user's callback). Reseeding
    from the step's position makes the model's draws at step k the same in a resumed run as in an
    uninterrupted one, whatever drew in between. The rank is part of the seed, so that data-parallel
    processes drop different units.
    """
    torch.manual_seed(derive_seed(seed, step, rank, 0xD809))


def init_from_data(model: nn.Module, data) -> None:
    """Data-dependent initialisation (airbench's patch whitening) for models that have one. A resumed
    run loads its weights over it."""
    if not hasattr(model, "init_from_data"):
        return
    if not hasattr(data.train, "sample_images"):
        raise ReslabError(f"{type(model).__name__} initialises its first layer from training images, which needs "
                          "in-memory data (data.in_memory=auto or yes)")
    device = next(model.parameters()).device
    model.init_from_data(data.train.sample_images(DATA_INIT_IMAGES).to(device))


def apply_freezing(model: nn.Module, freeze_after: dict, epoch: int) -> None:
    """train.freeze_after: parameters named (or under a module named) `key` train for its first N epochs only."""
    if not freeze_after:
        return
    named = dict(model.named_parameters())
    for key, epochs in freeze_after.items():
        chosen = [p for name, p in named.items() if name == key or name.startswith(key + ".")]
        if not chosen:
            raise ReslabError(f"train.freeze_after names '{key}', which is no parameter or module of {type(model).__name__}; "
                              f"parameters look like: {', '.join(list(named)[:4])}")
        for p in chosen:
            p.requires_grad_(epoch < epochs)


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    from ..models import create_model

    m = cfg.model
    model = create_model(m.name, num_classes=num_classes, weights=m.weights or None, **m.options)
    add_classifier_dropout(model, m.dropout)
    return model



def fit(config: TrainConfig, *, data=None, resume: str | Path | None = None, on_step=None, task=None) -> History:
    """Train as `config` says; returns the metric history, the run directory and the best metric.

    data: a `reslab.data.Data` (default: `build_data(config.data, ...)`).
    resume: a run directory or a checkpoint to continue from (the config must be compatible).
    on_step: optional `fn(step, loss)` called after every optimizer step (custom logging, benchmarks).
    task: what is trained (`reslab.train.task`); default `task_for(config)`: classification, or
        self-supervised pre-training when the config's [ssl] section names a method.

    The steps, in order: where to run (`setup_runtime`), the data (fitted to it when fine-tuning),
    the checkpoint to resume from, the model, its head and optimizer (`build_training`), the run
    folder (`open_run`), the loop and what a finished run leaves behind (`train_until_done`, `finish`).
    """
    if task is None:
        task = task_for(config)  # first: a task checks its config before any data is read
    info, device, amp = setup_runtime(config)
    adapted = {}
    if data is None:
        config, adapted = transfer.adapt_to_data(config, info.world_size)
        data = build_training_data(config, info, device)
    cfg = replace(config, model={"num_classes": config.model.num_classes or len(data.classes)})
    resume_state = load_resume_state(resume, cfg)
    ctx = build_training(cfg, info, device, amp, data, on_step, probe=resume_state is None, task=task)
    ctx.adapted = adapted
    if resume_state is not None:
        restore_training(ctx, resume_state, resume)
    meta = open_run(ctx, resume_state, resume)
    history = History(run_dir=ctx.run_dir)
    try:
        train_until_done(ctx, history, meta, resume_state, resume)
    finally:
        if ctx.run_lock is not None:
            ctx.run_lock.release()
    barrier(info)
    state = ctx.state
    history.rows, history.best_metric, history.best_epoch = state.rows, state.best_metric, state.best_epoch
    history.model = ctx.model
    history.probe = ctx.probe
    return history


def setup_runtime(cfg: TrainConfig) -> tuple[DistInfo, torch.device, str]:
    """The process group (under torchrun), this process's device and the resolved AMP mode; seeds torch."""
    wants_cuda = resolve_device(cfg.train.device, setting="train.device").type == "cuda"
    info = init_distributed("cuda" if wants_cuda else "cpu", cfg.train.dist_timeout)
    device = resolve_train_device(cfg.train.device, info)
    amp = resolve_amp(cfg.train.amp, device)
    torch.manual_seed(cfg.train.seed)
    return info, device, amp


def build_training_data(cfg: TrainConfig, info: DistInfo, device: torch.device):
    from ..data import build_data

    return build_data(cfg.data, cfg.train.batch_size, seed=cfg.train.seed, rank=info.rank,
                      world_size=info.world_size, device=device, channels_last=cfg.train.channels_last)  # fmt: skip


def load_resume_state(resume: str | Path | None, cfg: TrainConfig) -> dict | None:
    """The checkpoint to continue from, checked against the config (None without --resume)."""
    if resume is None:
        return None
    state = ckpt_io.load_checkpoint(resume)
    ckpt_io.check_resumable(state["config"], cfg.to_dict(), resume)
    return state


def build_training(cfg: TrainConfig, info: DistInfo, device: torch.device, amp: str, data, on_step,
                   probe: bool = True, task=None) -> _Context:  # fmt: skip
    """The model (frozen stages, linear probe, EMA), the training length, optimizer, schedule and
    scaler, in one context. probe=False skips the linear probe (a resumed run had it already).
    task: what is trained (default: `task_for(cfg)`); it builds the model."""
    task = task if task is not None else task_for(cfg)
    task.cfg = cfg  # with the number of classes resolved
    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank and every resume
    model = task.build_model(cfg.model.num_classes).to(device)
    if not cfg.model.weights:
        init_from_data(model, data)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if info.enabled and cfg.model.sync_bn:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif info.is_main:
            log.warning("model.sync_bn needs CUDA (PyTorch's SyncBatchNorm is GPU-only); keeping per-process BatchNorm")
    weights = transfer.class_weights(transfer.train_labels(data), cfg.model.num_classes, cfg.train.class_balance)
    transfer.freeze_stages(model, cfg.finetune.frozen_stages)
    probe_result = None
    if cfg.finetune.probe_steps > 0 and probe:
        probe_result = transfer.linear_probe(model, data, cfg, device, amp, weights)
    ema = ModelEma(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None

    accum = max(1, cfg.train.accum_steps)
    steps_per_epoch, total_steps = training_length(cfg, len(data.train), accum)
    global_batch = cfg.train.batch_size * info.world_size * accum
    base_lr = scaled_lr(cfg.optim.lr, cfg.optim.lr_per_256, global_batch)
    optimizer = build_optimizer(model, cfg.optim, base_lr, device)
    schedule = LRSchedule(cfg.schedule, base_lr, total_steps, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    lookahead = None
    if cfg.train.lookahead_every > 0:
        lookahead = Lookahead(cfg.train.lookahead_every, cfg.train.lookahead_decay, cfg.train.lookahead_power,
                              total_steps, start_step=int(round(cfg.train.lookahead_start * steps_per_epoch)))
    preprocess = preprocess_for(cfg.to_dict(), data.mean, data.std)
    train_model = wrap_for_training(model, info, device)
    key = setup_key(cfg.model.name, cfg.model.options, cfg.train.batch_size, cfg.data.image_size, amp,
                    cfg.train.channels_last, device)
    compiler = CompilePolicy(cfg.train.compile, train_model, key, total_steps,
                             decide_everywhere=lambda decision: broadcast_object(decision, info))
    return _Context(cfg, info, device, amp, data, model, train_model, optimizer,
                    schedule, scaler, ema, TrainState(), None, list(data.classes), total_steps, steps_per_epoch,
                    accum, preprocess, on_step, class_weights=weights, bn_frozen=transfer.bn_frozen(cfg, cfg.train.batch_size),
                    global_batch=global_batch, base_lr=base_lr, probe=probe_result, task=task, lookahead=lookahead,
                    compiler=compiler)  # fmt: skip


def training_length(cfg: TrainConfig, batches_per_epoch: int, accum: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps) from train.steps or train.epochs; zero is an error."""
    steps_per_epoch = batches_per_epoch // accum
    if steps_per_epoch < 1:
        raise ReslabError(
            f"the training set gives {batches_per_epoch} batch(es) of {cfg.train.batch_size} per process, fewer than "
            f"train.accum_steps={accum}; lower train.batch_size or accum_steps"
        )
    total_steps = cfg.train.steps or math.ceil(cfg.train.epochs * steps_per_epoch)
    if total_steps <= 0:
        raise ReslabError("the training length is zero; set train.epochs or train.steps (e.g. --set train.epochs=10)")
    return steps_per_epoch, total_steps


def wrap_for_training(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """The module that trains: DDP across processes around the bare model (torch.compile around that
    comes from the CompilePolicy, when train.compile says so)."""
    if info.enabled:
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def restore_training(ctx: _Context, resume_state: dict, resume) -> None:
    """Weights, optimizer, scaler, schedule, EMA and position from a checkpoint (the RNG state comes last,
    in train_until_done: building the model and optimizer consume random numbers)."""
    try:
        ctx.model.load_state_dict(resume_state["model"])
    except RuntimeError as e:
        raise ReslabError(
            f"cannot resume from {resume}: its weights do not fit {ctx.cfg.model.name} ({str(e).splitlines()[0]})"
        ) from None
    ctx.optimizer.load_state_dict(resume_state["optimizer"])
    ctx.scaler.load_state_dict(resume_state["scaler"])
    ctx.schedule.load_state_dict(resume_state["schedule"])
    if ctx.ema is not None and resume_state.get("ema") is not None:
        ctx.ema.load_state_dict(resume_state["ema"])
    if ctx.lookahead is not None and resume_state.get("lookahead") is not None:
        ctx.lookahead.load_state_dict(resume_state["lookahead"])
    for key, value in resume_state["state"].items():  # running sums are global (all-reduced every step)
        setattr(ctx.state, key, value)
    ctx.compiler.load_state_dict(ctx.state.compile)
    ctx.saved_step = ctx.state.step


def open_run(ctx: _Context, resume_state: dict | None, resume) -> dict:
    """The run folder (new, or the resumed run's) with config.toml and split.json; returns the meta record."""
    cfg, info, data = ctx.cfg, ctx.info, ctx.data
    run_dir = None
    if info.is_main:
        if resume_state is not None:
            run_dir = Path(resume_state["run_dir"]) if Path(resume_state["run_dir"]).is_dir() else run_folder(resume)
        else:
            run_dir = new_run_dir(cfg.run.dir, cfg.run.name, cfg.model.name)
        # one process trains into a run folder at a time: a second --resume of it is refused
        ctx.run_lock = FolderLock(run_dir, f"the run {run_dir}").__enter__()
        atomic_write_text(run_dir / "config.toml", config_to_toml(cfg))
        if resume_state is not None:  # a kill -9 during a checkpoint write leaves its temporary file
            remove_stale_temporaries(run_dir / "checkpoints")
    ctx.run_dir = Path(broadcast_object(str(run_dir) if run_dir else None, info))
    meta = base_meta(cfg.train.seed, info.world_size, ctx.device)
    meta.update(amp=ctx.amp, total_steps=ctx.total_steps, steps_per_epoch=ctx.steps_per_epoch,
                global_batch=ctx.global_batch, lr=ctx.base_lr, bn_frozen=ctx.bn_frozen,
                class_weights=transfer.describe_balance(ctx.class_weights, ctx.classes))  # fmt: skip
    if ctx.adapted:
        meta["adapted_to_data"] = ctx.adapted
    if ctx.probe is not None:
        meta["linear_probe"] = ctx.probe
    if info.is_main and getattr(data, "holdout_files", None) is not None:
        atomic_write_text(ctx.run_dir / "split.json", json.dumps(
            {"split_seed": cfg.data.split_seed, "fraction": cfg.data.val_fraction or cfg.data.auto_holdout,
             "val": sorted(data.holdout_files)}, indent=1) + "\n")  # fmt: skip
    return meta


def train_until_done(ctx: _Context, history: History, meta: dict, resume_state: dict | None, resume) -> None:
    """Epochs until the last step or early stopping, then `finish`. From here on Ctrl-C and SIGTERM
    stop the run at the next safe point, with a checkpoint (`save_interrupted`)."""
    info, state, run_dir = ctx.info, ctx.state, ctx.run_dir
    with stop_on_signals() as stop:
        ctx.stop = stop
        tb = TensorBoard(run_dir / "tb" if info.is_main and ctx.cfg.run.tensorboard else None)
        progress = Progress(info.is_main and ctx.cfg.run.progress, ctx.total_steps, state.step)
        if resume_state is not None:  # last: building the model and optimizer consumed random numbers
            ckpt_io.restore_rng_state(resume_state["rng"])
            log.info("resumed from %s at step %d (epoch %d, batch %d)", resume, state.step, state.epoch + 1, state.batch)
        try:
            if info.is_main:
                write_meta(run_dir, {**meta, "status": "running", "pid": os.getpid(),
                                     "resumed_from": str(resume) if resume else None})  # fmt: skip
            while state.step < ctx.total_steps and not history.stopped_early:
                finished = train_one_epoch(ctx, tb, progress)
                if finished:
                    history.stopped_early = end_of_epoch(ctx, tb)
            progress.close()
            ctx.trained = True
            finish(ctx, history, meta)
        except KeyboardInterrupt as interrupt:
            save_interrupted(ctx, meta, interrupt)
            history.interrupted = True
            raise
        except NonFiniteLossError:
            if info.is_main:
                write_meta(run_dir, {**meta, "status": "non-finite loss", "step": state.step})
            raise
        except Exception as e:  # a full disk, a lost mount, out of memory: meta.json says so, not "running"
            if info.is_main:
                with contextlib.suppress(OSError):  # on a full disk even this small write may fail
                    write_meta(run_dir, {**meta, "status": "failed", "error": f"{type(e).__name__}: {e}",
                                         "step": state.step, "checkpoint_step": ctx.saved_step})  # fmt: skip
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                kept = f"the checkpoint of step {ctx.saved_step} is intact" if ctx.saved_step else "no checkpoint was written yet"
                raise ReslabError(f"{e.strerror} while writing the run {run_dir} at step {state.step}; {kept}: make room, "
                                  f"then `reslab train --resume {run_dir}`") from e
            raise
        finally:
            progress.close()
            tb.close()


def finish(ctx: "_Context", history: History, meta: dict) -> None:
    """After the last step: the final test-time-augmented evaluation, the safetensors export, `finished`."""
    cfg, state, data = ctx.cfg, ctx.state, ctx.data
    best = ctx.run_dir / "checkpoints" / "best.pt"
    if cfg.train.keep_best and state.best_metric is not None and best.is_file():
        ctx.model.load_state_dict(ckpt_io.load_checkpoint(best)["model"])
        log.info("keeping the best weights (epoch %s, %s %.2f)", state.best_epoch, cfg.train.early_stop_metric, state.best_metric)
    if cfg.train.eval_tta and data.eval is not None:
        tta = evaluate(ctx.model, data.eval_tta(cfg.train.eval_tta), ctx.device, num_classes=cfg.model.num_classes,
                       amp=ctx.amp, channels_last=cfg.train.channels_last, dist_info=ctx.info, keep_predictions=False)
        history.final_eval = {k: tta[k] for k in ("loss", "top1", "top5", "count")}
        if state.rows:
            state.rows[-1].update({f"{cfg.train.eval_tta}_{k}": v for k, v in history.final_eval.items() if k != "count"})
        log.info("%s evaluation: top-1 %.2f%%, top-5 %.2f%%", cfg.train.eval_tta, tta["top1"], tta["top5"])
    if ctx.info.is_main:
        with ctx.stop.critical():
            write_metrics(ctx.run_dir, state.rows)
            exported, exported_classes = ctx.task.export_model(ctx.model, ctx.classes)
            export_safetensors(ctx.run_dir / "model.safetensors", exported, cfg.to_dict(), exported_classes, ctx.preprocess)
            write_meta(ctx.run_dir, {**meta, "status": "finished", "end_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                     "best_metric": state.best_metric, "best_epoch": state.best_epoch})
    ctx.stop.check()


def save_interrupted(ctx: "_Context", meta: dict, interrupt: KeyboardInterrupt) -> None:
    """On Ctrl-C or SIGTERM: checkpoint where the last full step left off (so `--resume` continues
    exactly from there) and say so in meta.json. A stop forced halfway through a step (a second
    signal) keeps the previous checkpoint instead: the half-done step has no consistent state."""
    if not ctx.info.is_main:
        return
    state, last = ctx.state, ctx.run_dir / "checkpoints" / "last.pt"
    cause = signal_name(getattr(interrupt, "signum", signal.SIGINT))
    if ctx.trained:  # stopped after the last step: last.pt is the end of training already
        log.warning("%s: stopped after training, before the export; --resume %s finishes it", cause, ctx.run_dir)
    elif getattr(interrupt, "safe", True):
        ckpt_io.save_checkpoint(last, ctx.checkpoint_state(ctx.step_start_rng))
        ctx.saved_step = state.step
        log.warning("%s: stopped at step %d, checkpointed; resume with --resume %s", cause, state.step, ctx.run_dir)
    elif ctx.saved_step is not None:
        log.warning("%s: stopped during step %d; kept the checkpoint of step %d; resume with --resume %s",
                    cause, state.step + 1, ctx.saved_step, ctx.run_dir)
    else:
        log.warning("%s: stopped during step %d, before any checkpoint; start the run again", cause, state.step + 1)
    write_meta(ctx.run_dir, {**meta, "status": "interrupted", "signal": cause, "step": state.step,
                             "checkpoint_step": ctx.saved_step})


@dataclass
class _Context:
    """Everything one run's loop touches, passed as one object instead of fifteen arguments."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    amp: str
    data: object
    model: nn.Module  # the bare model (weights, checkpoints, evaluation)
    train_model: nn.Module  # the model that trains (DDP and/or compiled wrapper of `model`)
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    ema: ModelEma | None
    state: TrainState
    run_dir: Path | None  # set by open_run
    classes: list
    total_steps: int
    steps_per_epoch: int
    accum: int
    preprocess: object
    on_step: object = None
    stop: StopRequests = field(default_factory=StopRequests)
    saved_step: int | None = None  # the step of checkpoints/last.pt on disk
    trained: bool = False  # every step done (and checkpointed): only the final evaluation and export remain
    run_lock: FolderLock | None = None  # held by the main process while it writes the run folder
    step_start_rng: dict | None = None
    class_weights: torch.Tensor | None = None  # per-class loss weights (train.class_balance)
    bn_frozen: bool = False  # BatchNorm statistics fixed while training (train.bn)
    global_batch: int = 0  # batch_size * world_size * accum_steps
    base_lr: float = 0.0  # optim.lr after the linear scaling rule
    probe: dict | None = None  # the linear probe's result (finetune.probe_steps > 0)
    adapted: dict = field(default_factory=dict)  # what finetune.auto fitted to the data
    task: object = None  # what is trained: reslab.train.task (the model, the loss of a batch, the export)
    lookahead: Lookahead | None = None  # train.lookahead_every
    compiler: CompilePolicy | None = None  # eager or compiled steps (train.compile)

    def checkpoint_state(self, rng: dict | None = None) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "schedule": self.schedule.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "lookahead": self.lookahead.state_dict() if self.lookahead is not None else None,
            "state": {**{k: getattr(self.state, k) for k in TrainState.__dataclass_fields__},
                      "compile": dict(self.compiler.state) if self.compiler is not None else {}},
            "rng": rng or ckpt_io.rng_state(),
            "config": self.cfg.to_dict(),
            "classes": list(self.classes),
            "model_name": self.cfg.model.name,
            "data_mean": [float(m) for m in self.data.mean],
            "data_std": [float(s) for s in self.data.std],
            "run_dir": str(self.run_dir),
        }


def train_step(ctx: _Context, micro_batches: list) -> tuple[float, float, int]:
    """One optimizer step over `accum` micro-batches; returns (loss sum, correct, images) over all ranks.

    The loss is checked for NaN/inf (summed over ranks, so every rank stops together) before
    backward and before the optimizer touches the weights.
    """
    cfg, state = ctx.cfg, ctx.state
    t = cfg.train
    totals = torch.zeros(3, dtype=torch.float64)
    for i, (batch_index, images, labels) in enumerate(micro_batches):
        generator = batch_generator(t.seed, state.epoch, batch_index, ctx.info.rank)
        last = i == len(micro_batches) - 1
        sync = last or not ctx.info.enabled
        with ctx.train_model.no_sync() if not sync and hasattr(ctx.train_model, "no_sync") else contextlib.nullcontext():
            with autocast(ctx.device, ctx.amp):
                out = ctx.task.step(ctx, images, labels, generator)
            loss = out["loss"]
            with torch.no_grad():
                correct = out.get("correct", torch.zeros((), device=loss.device))
                local = torch.stack([loss.detach().double() * labels.shape[0], correct.double(),
                                     torch.tensor(float(labels.shape[0]), dtype=torch.float64, device=loss.device)])
                reduced = all_reduce_sum(local, ctx.info).cpu()
            if not math.isfinite(reduced[0].item()):
                raise NonFiniteLossError(
                    f"the training loss became {reduced[0].item() / reduced[2].item()} at step {state.step + 1} "
                    f"(epoch {state.epoch + 1}, batch {batch_index}); the run stopped before the optimizer step and "
                    f"kept the last good checkpoint in {ctx.run_dir / 'checkpoints'}; lower optim.lr or set train.grad_clip"
                )
            totals += reduced
            ctx.scaler.scale(loss / len(micro_batches)).backward()
    if t.grad_clip > 0:
        ctx.scaler.unscale_(ctx.optimizer)
        nn.utils.clip_grad_norm_(ctx.model.parameters(), t.grad_clip)
    set_lr(ctx.optimizer, ctx.schedule.lr_at(state.step))
    ctx.scaler.step(ctx.optimizer)
    ctx.scaler.update()
    ctx.optimizer.zero_grad(set_to_none=True)
    return totals[0].item(), totals[1].item(), int(totals[2].item())


def train_one_epoch(ctx: _Context, tb: TensorBoard, progress: Progress) -> bool:
    """Train from the current position to the end of the epoch (or of training); True at an epoch end."""
    state = ctx.state
    ctx.train_model.train()
    transfer.eval_frozen_parts(ctx.model, ctx.bn_frozen)
    apply_freezing(ctx.model, ctx.cfg.train.freeze_after, state.epoch)
    if hasattr(ctx.data.train, "set_epoch"):
        ctx.data.train.set_epoch(state.epoch)
    epoch_batches = ctx.steps_per_epoch * ctx.accum
    batches = iter(ctx.data.train.batches(state.epoch, state.batch))
    index = state.batch
    t_start = time.perf_counter() - state.epoch_time
    wall_start = time.perf_counter() - state.wall_time
    while index < epoch_batches and state.step < ctx.total_steps:
        ctx.step_start_rng = ckpt_io.rng_state()
        # waiting for data can be cut short (nothing has changed since the last step), except
        # across processes, which stop after the same step
        with ctx.stop.critical() if ctx.info.enabled else contextlib.nullcontext():
            micro = []
            for _ in range(ctx.accum):
                images, labels = next(batches)
                micro.append((index, images, labels))
                index += 1
        with ctx.stop.critical():
            index = advance_one_step(ctx, micro, index, epoch_batches, t_start, wall_start, tb, progress)
        stop_if_requested(ctx)
    return index >= epoch_batches or state.step >= ctx.total_steps


def advance_one_step(ctx: _Context, micro: list, index: int, epoch_batches: int, t_start: float, wall_start: float,
          tb: TensorBoard, progress: Progress) -> int:
    """One optimizer step and its bookkeeping: a signal waits for the end of it."""
    cfg, state = ctx.cfg, ctx.state
    seed_step(cfg.train.seed, state.step, ctx.info.rank)

    def redo(step=state.step):  # a failed compile is undone and the step rerun eagerly: the same random draws
        ckpt_io.restore_rng_state(ctx.step_start_rng)
        seed_step(cfg.train.seed, step, ctx.info.rank)

    def step_through(module):  # the task's forward goes through ctx.train_model: eager, or compiled
        ctx.train_model = module
        return train_step(ctx, micro)

    loss_sum, correct, count = ctx.compiler.run_step(step_through, redo)
    ctx.step_start_rng = None  # the step is complete: an interrupt from here on saves the current RNG state
    state.step += 1
    ctx.compiler.after_step(state.step)
    if ctx.lookahead is not None:
        ctx.lookahead.step(ctx.model, state.step)
    state.batch = index
    sums = state.epoch_sums
    state.epoch_sums = [sums[0] + loss_sum, sums[1] + correct, sums[2] + count]
    state.epoch_time = time.perf_counter() - t_start
    state.wall_time = time.perf_counter() - wall_start
    ctx.task.after_step(ctx.model, state.step, ctx.total_steps)
    if ctx.ema is not None and state.step % cfg.train.ema_every == 0:
        ctx.ema.update(ctx.model)
    if cfg.schedule.warmup_until_error > 0 and state.step % ERROR_RULE_EVERY == 0:
        error = 100.0 * (1.0 - state.epoch_sums[1] / max(state.epoch_sums[2], 1))
        if ctx.schedule.on_train_error(error):
            log.info("training error %.1f%% < %.0f%% at step %d: lr back to %.3g", error,
                     cfg.schedule.warmup_until_error, state.step, ctx.schedule.lr_at(state.step))
    if ctx.on_step is not None:
        ctx.on_step(state.step, loss_sum / max(count, 1))
    speed = state.epoch_sums[2] / max(state.epoch_time, 1e-9)
    progress.update(state.step, state.epoch + 1, loss_sum / max(count, 1), speed)
    if cfg.run.log_every and state.step % cfg.run.log_every == 0:
        tb.scalars({"loss": loss_sum / max(count, 1), "lr": ctx.optimizer.param_groups[0]["lr"],
                    "images_per_s": speed}, state.step, prefix="train_step/")
    if cfg.train.save_every and state.step % cfg.train.save_every == 0 and index < epoch_batches:
        _save(ctx, "last")
    return index


def stop_if_requested(ctx: _Context) -> None:
    """At a step boundary: stop if a signal came during the step. Data-parallel processes agree
    first (a signal to one process stops them all after the same step)."""
    if ctx.info.enabled:
        with ctx.stop.critical():  # a signal while waiting for the others is decided at the next agreement
            flag = torch.tensor([0.0 if ctx.stop.pending is None else 1.0], device=ctx.device)
            agreed = all_reduce_sum(flag, ctx.info).item()
        if agreed == 0:
            return
        if ctx.stop.pending is None:
            ctx.stop.pending = signal.SIGTERM  # another process got it
    ctx.stop.check()


def end_of_epoch(ctx: _Context, tb: TensorBoard) -> bool:
    """Evaluate, log a row, checkpoint, move to the next epoch; True when early stopping says stop.

    A signal during the evaluation stops at once (nothing has changed since the last step: a
    resumed run evaluates again); the bookkeeping and the checkpoints after it finish first."""
    wall_start = time.perf_counter() - ctx.state.wall_time
    with ctx.stop.critical() if ctx.info.enabled else contextlib.nullcontext():
        if ctx.lookahead is not None:  # airbench: the weights take their average at every epoch end (idempotent)
            ctx.lookahead.sync(ctx.model)
        average_buffers(ctx.model, ctx.info)
        results = evaluate_epoch(ctx)
        task_metrics = ctx.task.epoch_metrics(ctx)  # e.g. a self-supervised run's kNN monitor
    with ctx.stop.critical():
        stop = record_epoch(ctx, tb, results, wall_start, task_metrics)
    stop_if_requested(ctx)
    return stop


def evaluate_epoch(ctx: _Context) -> tuple[dict, dict | None] | None:
    """(model, EMA model) results on the evaluation split when this epoch evaluates, else None."""
    cfg, state, t = ctx.cfg, ctx.state, ctx.cfg.train
    last_epoch = state.step >= ctx.total_steps
    if not ctx.task.reports_accuracy or ctx.data.eval is None or not (last_epoch or (t.eval_every and (state.epoch + 1) % t.eval_every == 0)):
        return None
    kw = dict(num_classes=cfg.model.num_classes, amp=ctx.amp, channels_last=t.channels_last,
              dist_info=ctx.info, keep_predictions=False)
    res = evaluate(ctx.model, ctx.data.eval, ctx.device, **kw)
    ema_res = evaluate(ctx.ema.module, ctx.data.eval, ctx.device, **kw) if ctx.ema is not None else None
    return res, ema_res


def record_epoch(ctx: _Context, tb: TensorBoard, results: tuple[dict, dict | None] | None, wall_start: float,
                 task_metrics: dict | None = None) -> bool:
    """The epoch's row, best metric, schedule and early-stopping updates, and its checkpoints."""
    cfg, state, t = ctx.cfg, ctx.state, ctx.cfg.train
    loss_sum, correct, count = state.epoch_sums
    row = {
        "epoch": state.epoch + 1,
        "step": state.step,
        "lr": ctx.optimizer.param_groups[0]["lr"],
        "train_loss": loss_sum / max(count, 1),
    }
    if ctx.task.reports_accuracy:
        row["train_top1"] = 100.0 * correct / max(count, 1)
    stop = False
    if results is not None:
        res, ema_res = results
        row.update(val_loss=res["loss"], val_top1=res["top1"], val_top5=res["top5"])
        if ema_res is not None:
            row.update(ema_val_loss=ema_res["loss"], ema_val_top1=ema_res["top1"], ema_val_top5=ema_res["top5"])
        if ctx.schedule.on_eval(100.0 - res["top1"]):
            log.info("validation error plateaued: lr divided by %g", 1 / cfg.schedule.gamma)
    row.update(task_metrics or {})
    row["images_per_s"] = count / max(state.epoch_time, 1e-9)
    state.wall_time = time.perf_counter() - wall_start
    row["wall_time"] = state.wall_time
    state.rows.append(row)

    metric_name = t.early_stop_metric
    improved = improved_ema = False
    if metric_name in row:
        value = row[metric_name]
        if _better(value, state.best_metric, metric_name):
            state.best_metric, state.best_epoch, state.evals_since_best = value, row["epoch"], 0
            improved = True
        else:
            state.evals_since_best += 1
            stop = bool(t.early_stop_patience) and state.evals_since_best >= t.early_stop_patience
        ema_value = row.get(f"ema_{metric_name}")
        if ema_value is not None and _better(ema_value, state.best_ema_metric, metric_name):
            state.best_ema_metric, improved_ema = ema_value, True
    elif ctx.data.eval is None:
        improved = True  # no validation set: best is the latest

    msg = f"epoch {row['epoch']} step {row['step']}: loss {row['train_loss']:.4f}"
    if "train_top1" in row:
        msg += f" train {row['train_top1']:.2f}%"
    if "knn_top1" in row:
        msg += f" kNN {row['knn_top1']:.2f}%"
    if "val_top1" in row:
        msg += f" val {row['val_top1']:.2f}% (loss {row['val_loss']:.4f})"
    if "ema_val_top1" in row:
        msg += f" ema {row['ema_val_top1']:.2f}%"
    log.info("%s lr %.3g %.0f img/s", msg, row["lr"], row["images_per_s"])

    state.epoch += 1
    state.batch = 0
    state.epoch_sums = [0.0, 0.0, 0.0]
    state.epoch_time = 0.0
    if stop:
        log.info("early stopping: %s has not improved for %d evaluations", metric_name, t.early_stop_patience)
    if ctx.info.is_main:
        tb.scalars(row, state.step, prefix="epoch/")
        write_metrics(ctx.run_dir, state.rows)
    _save(ctx, "last")
    if improved:
        _save(ctx, "best")
    if improved_ema:
        _save_ema_best(ctx)
    return stop


def _better(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value < best if metric.endswith("loss") else value > best


def _save(ctx: _Context, which: str) -> None:
    if ctx.info.is_main:
        ckpt_io.save_checkpoint(ctx.run_dir / "checkpoints" / f"{which}.pt", ctx.checkpoint_state())
        if which == "last":  # what a stop that cannot checkpoint (a second signal, a full disk) falls back to
            ctx.saved_step = ctx.state.step
    barrier(ctx.info)


def _save_ema_best(ctx: _Context) -> None:
    if ctx.info.is_main:
        state = ctx.checkpoint_state()
        state["model"] = ctx.ema.state_dict()
        ckpt_io.save_checkpoint(ctx.run_dir / "checkpoints" / "best_ema.pt", state)
    barrier(ctx.info)
