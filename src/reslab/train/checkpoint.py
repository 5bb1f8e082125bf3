"""Checkpoints: everything a bit-exact resume needs, written atomically, loadable with weights_only=True.

A checkpoint holds the model, optimizer, GradScaler, EMA and schedule state, the position
(epoch, next batch, step), the running epoch statistics, the metric history and every RNG state
(torch CPU and CUDA, NumPy, Python). The data order and augmentation are pure functions of
(seed, epoch, batch), so the data loader needs no state of its own.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..errors import ReslabError
from ..fileio import atomic_torch_save

FORMAT_VERSION = 1
# What must agree between a checkpoint and the config that resumes it (section, key).
RESUME_KEYS = [
    ("model", "name"),
    ("model", "options"),
    ("model", "num_classes"),
    ("model", "dropout"),
    ("train", "batch_size"),
    ("train", "accum_steps"),
    ("train", "seed"),
    ("optim", "name"),
    ("optim", "no_decay_norm_bias"),  # these two shape the optimizer's parameter groups
    ("optim", "norm_lr_scale"),
    ("data", "path"),
    ("data", "format"),
    ("data", "val_fraction"),
    ("data", "split_seed"),
    ("data", "augment"),
    ("data", "image_size"),
    ("data", "channels"),
    ("data", "limit_per_class"),
    ("data", "views"),
    ("data", "labelled"),
    ("ssl", "method"),
    ("ssl", "proj_hidden"),
    ("ssl", "proj_dim"),
    ("ssl", "pred_hidden"),
    ("ssl", "queue_size"),
]


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        # NumPy's legacy state as plain types: weights_only=True refuses arbitrary objects
        "numpy": _numpy_state(),
        "python": _python_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> list:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def _python_state() -> list:
    version, internal, gauss_next = random.getstate()
    return [version, list(internal), gauss_next]


def save_checkpoint(path: str | Path, state: dict) -> None:
    state = {"format_version": FORMAT_VERSION, **state}
    atomic_torch_save(state, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A training checkpoint (a run folder means its checkpoints/last.pt), read with weights_only=True."""
    from ..inference.runs import read_training_checkpoint

    if Path(path).suffix.lower() == ".safetensors":
        raise ReslabError(f"{path} holds weights only; resuming needs a training checkpoint: the run folder, or its "
                          "checkpoints/last.pt (to start from these weights, set model.weights)")
    return read_training_checkpoint(path, map_location)


def config_differences(saved: dict, current: dict) -> list[str]:
    """The resume-relevant keys whose values differ, as 'section.key: saved -> current'."""
    from .config import TrainConfig

    defaults = TrainConfig().to_dict()  # for keys that checkpoints of older versions do not have
    diffs = []
    for section, key in RESUME_KEYS:
        a = saved.get(section, {}).get(key, defaults[section][key])
        b = current.get(section, {}).get(key, defaults[section][key])
        if _normal(a) != _normal(b):
            diffs.append(f"{section}.{key}: {a!r} in the checkpoint, {b!r} now")
    return diffs


def check_resumable(saved_config: dict, current_config: dict, path) -> None:
    diffs = config_differences(saved_config, current_config)
    if diffs:
        raise ReslabError(
            f"cannot resume from {path}: it was trained with another setup ({'; '.join(diffs)}); "
            "resume with the run's own config.toml or start a new run"
        )


def _normal(v):
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in sorted(v.items())}
    return v
