"""Training configuration: frozen dataclasses read from TOML, overridable with `--set key=value`.

A recipe is a TOML file with one table per section ([model], [data], [optim], [schedule],
[train], [run]); every key has a default, so a recipe only names what it changes. The resolved
config (every field) is written next to every run as `config.toml`.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..data import DataConfig
from ..errors import ReslabError
from ..tomlio import dumps as toml_dumps
from ..tomlio import parse_assignments

# The choices of each section, checked when a config is built (before any data is read).
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("multistep", "plateau", "cosine", "linear", "constant")
SCHEDULE_UNITS = ("epoch", "step")
AMP_MODES = ("off", "bf16", "fp16", "auto")
TTA_VIEWS = ("", "flip", "ten_crop", "flip_shift")
OPTIM_KERNELS = ("auto", "fused", "foreach", "loop")
COMPILE_MODES = ("auto", "on", "off")
BN_MODES = ("train", "frozen", "auto")
CLASS_BALANCE = ("off", "loss", "auto")


def check_choice(key: str, value, choices: tuple) -> None:
    """One clear error for a config value that is not one of its choices."""
    if value not in choices:
        shown = ", ".join(repr(c) if c == "" else c for c in choices)
        raise ReslabError(f"{key} is '{value}'; choose one of {shown}")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet20"  # any name from `reslab models`
    options: dict = field(default_factory=dict)  # builder options, e.g. {shortcut = "A"}
    num_classes: int = 0  # 0 = the number of classes found in the data
    dropout: float = 0.0  # dropout probability on the classifier's input (0 = none, as the paper)
    weights: str = ""  # initial weights: a file or a tag such as "imagenet" ("" = random init)
    sync_bn: bool = False  # SyncBatchNorm across processes (DDP only)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1  # peak learning rate (per 256 images when lr_per_256 is true)
    lr_per_256: bool = False  # linear scaling rule: lr = lr * batch_size * world_size * accum_steps / 256
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False
    betas: tuple = (0.9, 0.999)  # AdamW
    eps: float = 1e-8  # AdamW
    weight_decay: float = 1e-4  # L2 (SGD) or decoupled (AdamW)
    no_decay_norm_bias: bool = False  # exempt BatchNorm weights and all biases from weight decay
    backbone_lr_scale: float = 1.0  # every parameter outside the classifier trains at lr * this (discriminative fine-tuning)
    norm_lr_scale: float = 1.0  # lr multiplier of normalisation-layer parameters (airbench: 64); their L2 is divided by it
    kernel: str = "auto"  # update kernel: auto (fused where PyTorch has it, else foreach) | fused | foreach | loop
    muon_lr: float = 0.0  # > 0: conv filters train with Muon at this peak lr (scheduled like lr), the rest with SGD
    muon_momentum: float = 0.6  # Muon's momentum (Nesterov when optim.nesterov)

    def __post_init__(self):
        check_choice("optim.name", self.name, OPTIMIZERS)
        check_choice("optim.kernel", self.kernel, OPTIM_KERNELS)
        if self.muon_lr < 0 or (self.muon_lr > 0 and (self.name != "sgd" or self.lr <= 0)):
            raise ReslabError("optim.muon_lr > 0 trains the conv filters with Muon beside SGD: it needs optim.name = "
                              f"sgd and optim.lr > 0 (got {self.name}, lr {self.lr:g}, muon_lr {self.muon_lr:g})")
        if self.norm_lr_scale <= 0:
            raise ReslabError(f"optim.norm_lr_scale must be > 0, got {self.norm_lr_scale:g}")


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "multistep"  # multistep | plateau | cosine | linear | constant
    milestones: tuple = ()  # multistep: where the lr is multiplied by gamma, in `unit`
    unit: str = "epoch"  # epoch | step: the unit of milestones and warmup
    gamma: float = 0.1  # multistep and plateau: the factor at each decay
    warmup: float = 0.0  # linear warm-up length in `unit` (0 = none); runs before any schedule
    warmup_start: float = 0.1  # warm-up starts at lr * warmup_start and rises linearly to lr
    min_lr: float = 0.0  # cosine and linear: the final lr; plateau: never decay below it
    plateau_patience: int = 3  # plateau: evaluations without improvement before dividing by 10
    plateau_threshold: float = 0.1  # plateau: an improvement of validation error smaller than this (in %) does not count
    max_reductions: int = 3  # plateau: stop decaying after this many reductions
    warmup_until_error: float = 0.0  # ResNet-110 rule: >0 trains at lr * warmup_until_factor until train error (%) < this
    warmup_until_factor: float = 0.1  # e.g. 0.1: lr 0.01 instead of 0.1 until the error drops below 80%

    def __post_init__(self):
        check_choice("schedule.name", self.name, SCHEDULES)
        check_choice("schedule.unit", self.unit, SCHEDULE_UNITS)


@dataclass(frozen=True)
class TrainSection:
    epochs: float = 0.0  # training length in epochs (0 with finetune.auto: fitted to the data's size); or
    steps: int = 0  # training length in optimizer steps (iterations); takes precedence when > 0
    batch_size: int = 128  # per process; global batch = batch_size * world_size * accum_steps; 0 = fitted to the data (finetune.auto)
    accum_steps: int = 1  # gradient accumulation: micro-batches per optimizer step
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixup (0 = off)
    cutmix_alpha: float = 0.0  # CutMix (0 = off)
    aux_weight: float = -1.0  # auxiliary heads: loss = main + aux_weight * sum(aux); < 0 = the model's own (GoogLeNet 0.3, Inception v3 0.4)
    grad_clip: float = 0.0  # max global gradient norm (0 = no clipping)
    ema_decay: float = 0.0  # weight EMA decay per update, e.g. 0.999 (0 = off)
    ema_every: int = 1  # update the EMA every this many optimizer steps
    lookahead_every: int = 0  # airbench's lookahead: every N steps the weights move to their EMA (0 = off)
    lookahead_decay: float = 0.95  # per step: rho = decay**every * (step / total_steps)**power
    lookahead_power: float = 3.0
    lookahead_start: float = 0.0  # epochs before the first lookahead update
    freeze_after: dict = field(default_factory=dict)  # {"whiten.bias" = 3}: parameters (name or module) trained N epochs only
    amp: str = "off"  # off | bf16 | fp16 (fp16 only on CUDA, with GradScaler) | auto (bf16 where supported)
    channels_last: bool = False  # NHWC memory format (faster convolutions on CPU with bf16 and on tensor cores)
    compile: str | bool = "auto"  # torch.compile: auto (when it pays, measured: docs/training.md) | on | off
    device: str = "auto"  # auto (cuda, then cpu) | cpu | cuda | cuda:1 ...
    seed: int = 0
    eval_every: int = 1  # evaluate every this many epochs (0 = only at the end)
    eval_tta: str = ""  # final evaluation views: "" | flip | ten_crop | flip_shift (airbench's 6 weighted views)
    save_every: int = 0  # also checkpoint every this many steps, mid-epoch (0 = at epoch ends only)
    early_stop_metric: str = "val_top1"  # the metric that picks best.pt and early stopping
    early_stop_patience: int = 0  # stop after this many evaluations without a better metric (0 = never)
    dist_timeout: int = 600  # seconds a process waits for the others before failing (DDP)
    bn: str = "train"  # train | frozen | auto: frozen keeps BatchNorm statistics fixed; auto freezes them for pretrained weights below batch 64
    class_balance: str = "off"  # off | loss | auto: loss weights 1/count per class; auto when the largest class is > 1.5x the smallest
    keep_best: bool = False  # model.safetensors gets best.pt's weights (early stopping's pick), not the last ones

    def __post_init__(self):
        check_choice("train.amp", self.amp, AMP_MODES)
        check_choice("train.eval_tta", self.eval_tta, TTA_VIEWS)
        check_choice("train.bn", self.bn, BN_MODES)
        check_choice("train.class_balance", self.class_balance, CLASS_BALANCE)
        if self.epochs < 0 or self.steps < 0:
            raise ReslabError(f"train.epochs and train.steps must be >= 0, got {self.epochs:g} and {self.steps}")
        if self.batch_size < 0 or self.accum_steps < 1:
            raise ReslabError(
                f"train.batch_size must be >= 1 (0: fitted to the data) and train.accum_steps >= 1, "
                f"got {self.batch_size} and {self.accum_steps}"
            )
        if _positive(self.epochs) and _positive(self.steps):
            raise ReslabError(
                f"train.epochs ({self.epochs:g}) and train.steps ({self.steps}) both set the training length; "
                "keep one and set the other to 0 (e.g. --set train.steps=0)"
            )
        mode = ("on" if self.compile else "off") if isinstance(self.compile, bool) else self.compile
        check_choice("train.compile", mode, COMPILE_MODES)
        object.__setattr__(self, "compile", mode)  # true/false (older configs) read as on/off
        if self.lookahead_every < 0 or not 0.0 <= self.lookahead_decay <= 1.0:
            raise ReslabError("train.lookahead_every must be >= 0 and lookahead_decay in [0, 1], e.g. 5 and 0.95")
        for name, epochs in self.freeze_after.items():
            if not isinstance(epochs, (int, float)) or isinstance(epochs, bool) or epochs < 0:
                raise ReslabError(f"train.freeze_after['{name}'] must be a number of epochs >= 0, got {epochs!r}")


@dataclass(frozen=True)
class FinetuneConfig:
    """Transfer learning from pretrained weights (the `finetune` recipe); see train/transfer.py."""

    auto: bool = False  # fit batch size, epochs and in-memory decoding to the data; use the weights' own normalisation
    probe_steps: int = 0  # full-batch steps of a linear probe on cached frozen-backbone features before fine-tuning (0 = none)
    probe_views: int = 4  # augmented views of each training image whose features the probe caches (plus the plain one)
    probe_weight_decay: float = 1e-3  # L2 of the probe when there is no validation split to choose it on
    frozen_stages: int = 0  # the first N stages of the backbone (model.feature_names, strides 2, 4, 8, ...) stay frozen
    images_per_run: int = 4000  # auto: epochs = this / training images, within [min_epochs, max_epochs]
    min_epochs: int = 4
    max_epochs: int = 30
    max_batch_size: int = 32  # auto: the batch is the largest power of two <= this and <= a quarter of the training set


SSL_METHODS = ("simclr", "moco", "byol")


@dataclass(frozen=True)
class SSLConfig:
    """Self-supervised pre-training (the ssl_* recipes); see reslab/ssl. Labels of the data are ignored."""

    method: str = ""  # "" = supervised training; simclr | moco | byol
    proj_hidden: int = 512  # projection head: Linear-BN-ReLU-Linear, this many hidden units
    proj_dim: int = 128  # projection output (the loss's embedding)
    pred_hidden: int = 512  # byol: the predictor's hidden units
    temperature: float = 0.5  # simclr's NT-Xent (0.5 in SimCLR's CIFAR runs); moco's InfoNCE (0.2 in MoCo v2)
    momentum: float = 0.99  # moco, byol: teacher = momentum * teacher + (1 - momentum) * student, per step
    momentum_schedule: str = "cosine"  # cosine: from `momentum` to 1 over training (BYOL) | constant (MoCo)
    queue_size: int = 4096  # moco: negatives kept from earlier batches
    key_splits: int = 8  # moco: the teacher sees the shuffled batch in this many parts (shuffling BN on one device)
    knn_data: str = ""  # a labelled dataset for the per-epoch kNN monitor ("" = none)
    knn_k: int = 200  # the monitor's neighbours (Wu et al. 2018's protocol)
    knn_temperature: float = 0.1
    knn_every: int = 1  # epochs between kNN evaluations (the last epoch is always evaluated)
    knn_limit_per_class: int = 0  # at most this many bank images per class (0 = the whole training split)

    def __post_init__(self):
        if self.method not in ("", *SSL_METHODS):
            raise ReslabError(f"ssl.method is '{self.method}'; choose one of {', '.join(SSL_METHODS)} (or \"\" for supervised)")
        if self.momentum_schedule not in ("cosine", "constant"):
            raise ReslabError(f"ssl.momentum_schedule is '{self.momentum_schedule}'; choose cosine or constant")
        if not 0.0 <= self.momentum < 1.0:
            raise ReslabError(f"ssl.momentum must be in [0, 1), got {self.momentum}; BYOL uses 0.99 to 0.996")
        if self.temperature <= 0 or self.knn_temperature <= 0:
            raise ReslabError("ssl.temperature and ssl.knn_temperature must be > 0 (e.g. 0.5 and 0.1)")
        if min(self.proj_hidden, self.proj_dim, self.pred_hidden, self.queue_size, self.key_splits, self.knn_k) < 1:
            raise ReslabError("ssl sizes (proj_hidden, proj_dim, pred_hidden, queue_size, key_splits, knn_k) must be >= 1")


@dataclass(frozen=True)
class RunSection:
    name: str = ""  # run directory name ("" = <model>-<date>-<time>)
    dir: str = "runs"  # parent folder of run directories
    log_every: int = 50  # steps between TensorBoard scalars
    tensorboard: bool = True
    progress: bool = True  # rich progress bar (rank 0, on a terminal)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainSection = field(default_factory=TrainSection)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    ssl: SSLConfig = field(default_factory=SSLConfig)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict:
        return config_to_dict(self)


SECTIONS = typing.get_type_hints(TrainConfig)


def recipes_dir() -> Path:
    """The shipped recipes (a copy of the repository's `recipes/` inside the package)."""
    return Path(__file__).resolve().parent.parent / "recipes"


def list_recipes() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


def resolve_recipe(recipe: str | Path) -> Path:
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = recipes_dir() / f"{Path(str(recipe)).stem}.toml"
    if shipped.is_file():
        return shipped
    raise ReslabError(
        f"recipe '{recipe}' is neither a file nor a shipped recipe; shipped recipes are: {', '.join(list_recipes())}"
    )


def load_config(recipe: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> TrainConfig:
    """Read a recipe (a TOML path or a shipped name; None = all defaults), then apply `key=value` overrides."""
    raw: dict = {}
    if recipe is not None:
        path = resolve_recipe(recipe)
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ReslabError(f"recipe {path} is not valid TOML ({e}); fix the line it names") from None
    assignments = parse_assignments(overrides)
    for key, value in assignments.items():
        _set_dotted(raw, key, value)
    _one_training_length(raw, set(assignments))
    return config_from_dict(raw)


def apply_overrides(cfg: TrainConfig, overrides: typing.Sequence[str]) -> TrainConfig:
    """`cfg` with `key=value` overrides (the user's --set) applied, validated as at load."""
    if not overrides:
        return cfg
    raw = config_to_dict(cfg)
    assignments = parse_assignments(overrides)
    for key, value in assignments.items():
        _set_dotted(raw, key, value)
    _one_training_length(raw, set(assignments))
    return config_from_dict(raw)


def _one_training_length(raw: dict, overridden: set[str]) -> None:
    """train.epochs and train.steps both set the length of a run. When an override sets one of them
    and the recipe the other, the override wins and the recipe's is dropped, with a notice; when
    both come from the same place, TrainSection refuses them."""
    train = raw.get("train")
    if not isinstance(train, dict) or not (_positive(train.get("epochs")) and _positive(train.get("steps"))):
        return
    given = [k for k in ("epochs", "steps") if f"train.{k}" in overridden]
    if len(given) != 1:
        return
    keep, drop = given[0], "steps" if given[0] == "epochs" else "epochs"
    log.warning("train.%s=%s from the command line replaces train.%s=%s from the recipe (one of them sets the "
                "training length)", keep, train[keep], drop, train[drop])
    train[drop] = 0


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def config_from_dict(raw: dict) -> TrainConfig:
    sections = {}
    for name, value in raw.items():
        if name not in SECTIONS or name == "to_dict":
            raise ReslabError(f"unknown config section '{name}'{_did_you_mean(name, SECTIONS)}")
        if not isinstance(value, dict):
            raise ReslabError(f"config section '{name}' must be a table of keys, e.g. [{name}]")
        sections[name] = _build_section(SECTIONS[name], value, name)
    return TrainConfig(**sections)


def config_to_dict(cfg) -> dict:
    out = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = config_to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        elif isinstance(v, dict):
            out[f.name] = dict(v)
        else:
            out[f.name] = v
    return out


def config_to_toml(cfg: TrainConfig) -> str:
    """The resolved config as TOML (every field), readable back by `load_config`."""
    return toml_dumps(config_to_dict(cfg))


def replace(cfg: TrainConfig, **sections: dict) -> TrainConfig:
    """A copy with some keys changed: `replace(cfg, train={"steps": 10})`."""
    changed = {name: dataclasses.replace(getattr(cfg, name), **values) for name, values in sections.items()}
    return dataclasses.replace(cfg, **changed)


def _build_section(cls, values: dict, section: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ReslabError(f"unknown config key '{section}.{key}'{_did_you_mean(key, known, section + '.')}")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    return cls(**kwargs)


def _coerce(value, hint, key: str):
    origin = typing.get_origin(hint) or hint
    if origin is typing.Union:  # e.g. `float | None`: keep the value as given
        return value
    if hint is bool or origin is bool:
        if isinstance(value, bool):
            return value
    elif hint is float or origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int or origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # 64e3 in TOML is a float
            return int(value)
    elif hint is str or origin is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin is tuple:
        items = list(value) if isinstance(value, (list, tuple)) else None
        if items is None and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            items = [value]
        if items is not None:
            args = typing.get_args(hint)  # tuple[float, ...], tuple[float, float], or a bare tuple
            if len(args) == 2 and args[1] is Ellipsis:
                if args[0] is float and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                    raise ReslabError(f"config key '{key}' takes numbers (one, or a list like [0.5, 0.2]), got {value!r}")
                return tuple(_coerce(v, args[0], key) for v in items)
            if args and len(items) != len(args):
                raise ReslabError(f"config key '{key}' takes {len(args)} values, got {len(items)}: {value!r}")
            return tuple(_coerce(v, a, key) for v, a in zip(items, args)) if args else tuple(items)
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    else:
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ReslabError(f"config key '{key}' must be a {name}, got {value!r}")


def _set_dotted(raw: dict, key: str, value) -> None:
    parts = key.split(".")
    if len(parts) < 2:
        raise ReslabError(f"override key '{key}' needs a section, e.g. optim.lr or train.epochs")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ReslabError(f"override key '{key}': '{part}' is not a table")
    node[parts[-1]] = value


def _did_you_mean(name: str, known, prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    if close:
        return f"; did you mean {', '.join(prefix + c for c in close)}?"
    return f"; known keys are {', '.join(prefix + k for k in sorted(known))}"
